//! Embeds `assets/demo/` (the demo checkpoints and paired sample) into the
//! binary when the `model` feature is on: `$OUT_DIR/demo_files.rs` holds
//! `DEMO_FILES: &[(&str, &[u8])]`, relative path and contents of every file,
//! sorted by path. Without the feature the list is empty.

use std::path::{Path, PathBuf};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let demo = root.join("assets/demo");
    println!("cargo:rerun-if-changed=assets/demo");
    let mut files = Vec::new();
    if std::env::var_os("CARGO_FEATURE_MODEL").is_some() {
        walk(&demo, &mut files);
    }
    files.sort();
    let mut src =
        String::from("/// Every file of `assets/demo/`: path relative to it, contents.\n");
    src.push_str("pub(crate) static DEMO_FILES: &[(&str, &[u8])] = &[\n");
    for f in &files {
        let rel = f
            .strip_prefix(&demo)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        src.push_str(&format!(
            "    ({rel:?}, include_bytes!({:?})),\n",
            f.to_string_lossy()
        ));
    }
    src.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("demo_files.rs");
    std::fs::write(out, src).unwrap();
}
