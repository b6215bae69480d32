//! `geom scatter`: the table, the JSON and the files of `--out`, and user
//! errors (layer out of range, unknown modality, mismatched stores, k too
//! large) as one clear line with exit code 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use geom::store::{default_layer_names, ModalitySpec, StoreMeta, StoreWriter};
use ndarray::Array3;
use serde_json::Value;

fn geom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_geom"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a user error: exit 2, one `error:` line naming every `needles`, no panic.
fn user_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "expected exit 2, stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    for n in needles {
        assert!(lines[0].contains(n), "'{n}' missing from: {}", lines[0]);
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// A store of `n` text–image pairs, 5 layers, `dim_text`/`dim_image` wide;
/// image rows sit `offset` away from text rows along the first axis.
fn make_store(dir: &Path, name: &str, n: usize, dims: (usize, usize), offset: f32) -> PathBuf {
    let path = dir.join(name);
    let spec = |m: &str, d: usize| ModalitySpec {
        name: m.into(),
        n_layers: 5,
        n_rows: n,
        dim: d,
        layer_names: default_layer_names(5),
        prompt: String::new(),
    };
    let meta = StoreMeta {
        dataset: "tiny".into(),
        ..Default::default()
    };
    let mut w =
        StoreWriter::create(&path, &meta, &[spec("text", dims.0), spec("image", dims.1)]).unwrap();
    let mut state = 2024u64 + n as u64;
    let mut rnd = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    let t = Array3::from_shape_fn((5, n, dims.0), |_| rnd());
    let i = Array3::from_shape_fn((5, n, dims.1), |(l, _, c)| {
        rnd() + if c == 0 { offset * l as f32 } else { 0.0 }
    });
    let ids: Vec<String> = (0..n).map(|r| format!("pair-{r}")).collect();
    w.append("text", &ids, t.view()).unwrap();
    w.append("image", &ids, i.view()).unwrap();
    w.finish().unwrap();
    path
}

#[test]
fn table_json_and_out_files() {
    let dir = tempfile::tempdir().unwrap();
    let before = make_store(dir.path(), "before.h5", 60, (8, 8), 1.0);
    let after = make_store(dir.path(), "after.h5", 60, (8, 8), 0.0);
    let (b, a) = (
        format!("base={}", before.display()),
        format!("cl={}", after.display()),
    );
    // Table: one row per panel, the last layer by default.
    let o = geom(&["scatter", "--before", &b, "--after", &a]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for h in [
        "panel",
        "layer",
        "fit",
        "rows",
        "PC1",
        "PC2",
        "trust (k=10)",
        "gap",
    ] {
        assert!(out.contains(h), "header '{h}' missing: {out}");
    }
    let rows: Vec<&str> = out.lines().skip(2).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows[0].contains("base") && rows[0].contains(" 4 ") && rows[0].contains("image+text"));
    assert!(rows[1].contains("cl"));

    // JSON and --out: scatter.json equals stdout, the figure in both formats.
    let dest = dir.path().join("fig");
    let o = geom(&[
        "scatter",
        "--before",
        &b,
        "--after",
        &a,
        "--layer",
        "2",
        "--max-points",
        "40",
        "--k",
        "5",
        "--format",
        "json",
        "--out",
        dest.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(dest.join("scatter.json")).unwrap()).unwrap();
    assert_eq!(j, file);
    assert_eq!(j["metric"], "scatter");
    assert_eq!(j["layer"], 2);
    assert_eq!(j["basis"], "joint");
    assert_eq!(
        (j["a"].as_str(), j["b"].as_str()),
        (Some("image"), Some("text"))
    );
    assert_eq!(j["rows"].as_array().unwrap().len(), 40);
    assert!(j["ids"][0].as_str().unwrap().starts_with("pair-"));
    let panels = j["panels"].as_array().unwrap();
    assert_eq!(panels.len(), 2);
    let gap = |p: &Value| p["fits"][0]["gap"].as_f64().unwrap();
    for p in panels {
        let f = &p["fits"][0];
        let r = f["explained_variance_ratio"].as_array().unwrap();
        let (r1, r2) = (r[0].as_f64().unwrap(), r[1].as_f64().unwrap());
        assert!(r1 >= r2 && r1 + r2 <= 1.0 + 1e-12, "{f}");
        let t = f["trustworthiness"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&t), "{f}");
        assert_eq!(p["points"]["image"]["x"].as_array().unwrap().len(), 40);
        assert_eq!(p["points"]["text"]["y"].as_array().unwrap().len(), 40);
    }
    // The "before" store has its image rows 2 units off the text rows at layer 2.
    assert!(gap(&panels[0]) > 2.0 * gap(&panels[1]), "{j}");
    for f in ["scatter_layer2.svg", "scatter_layer2.png"] {
        assert!(dest.join(f).exists(), "{f}");
    }
    let svg = std::fs::read_to_string(dest.join("scatter_layer2.svg")).unwrap();
    assert!(svg.contains("base") && svg.contains("PC1 (") && svg.contains("trustworthiness"));
    let png = std::fs::read(dest.join("scatter_layer2.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");

    // One store, separate bases (different widths are fine then), CSV.
    let wide = make_store(dir.path(), "wide.h5", 30, (6, 4), 0.5);
    let o = geom(&[
        "scatter",
        "--store",
        wide.to_str().unwrap(),
        "--basis",
        "separate",
        "--k",
        "3",
        "--format",
        "csv",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = stdout(&o);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "panel,layer,fit,rows,pc1_ratio,pc2_ratio,k,trustworthiness,gap"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[1].starts_with("wide,4,image,30,") && lines[1].ends_with(','));
    assert!(lines[2].starts_with("wide,4,text,30,"));
}

#[test]
fn user_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let s = make_store(dir.path(), "s.h5", 30, (8, 8), 1.0);
    let t = make_store(dir.path(), "t.h5", 20, (8, 8), 1.0);
    let w = make_store(dir.path(), "w.h5", 30, (6, 4), 1.0);
    let (s, t, w) = (
        s.to_str().unwrap(),
        t.to_str().unwrap(),
        w.to_str().unwrap(),
    );
    let o = geom(&["scatter", "--store", s, "--layer", "7"]);
    user_error(&o, &["layer 7", "5 layers"]);
    let o = geom(&["scatter", "--store", s, "--layer", "-6"]);
    user_error(&o, &["layer -6"]);
    let o = geom(&["scatter", "--store", s, "--a", "audio", "--b", "text"]);
    user_error(&o, &["audio", "text, image"]);
    let o = geom(&["scatter", "--store", s, "--a", "image"]);
    user_error(&o, &["both --a and --b"]);
    let o = geom(&["scatter", "--before", s, "--after", t]);
    user_error(&o, &["20 pairs", "has 30", "same pairs"]);
    // Joint fit of 60 points: k must stay below 30.
    let o = geom(&["scatter", "--store", s, "--k", "30"]);
    user_error(&o, &["k = 30", "60 points"]);
    let o = geom(&["scatter", "--store", w]);
    user_error(&o, &["equally wide", "--basis separate"]);
    // --before without --after: clap's usage error, exit 2.
    let o = geom(&["scatter", "--before", s]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = geom(&[
        "scatter",
        "--store",
        dir.path().join("none.h5").to_str().unwrap(),
    ]);
    user_error(&o, &["none.h5"]);
}
