//! `geom extract --pairs <preset.toml>` on PixMo-Cap parquet shards (the
//! fixture of scripts/gen_pixmo_fixture.py): one URL-only shard with 2 of its
//! 5 images downloaded (named as molmo's downloader names them), one shard
//! with the images embedded. The shards are converted into a manifest under
//! the cache, once; a URL whose image was not downloaded stops the run with
//! the expected file, or is left out with --skip-bad.

use std::path::{Path, PathBuf};
use std::process::Output;

use geom::store::Store;

fn fx() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A preset file pointing at the fixture shards (absolute paths, so
/// GEOM_DATA plays no part).
fn preset(dir: &Path, parquet: &str) -> PathBuf {
    let pixmo = fx().join("pixmo");
    let t = dir.join("pixmo-fixture.toml");
    std::fs::write(
        &t,
        format!(
            "name = \"pixmo-fixture\"\ndescription = \"the PixMo-Cap fixture\"\nmodalities = [\"text\", \"image\"]\n\
             parquet = \"{}\"\nimages = \"{}\"\n",
            pixmo.join("data").join(parquet).display(),
            pixmo.join("images").display()
        ),
    )
    .unwrap();
    t
}

fn extract(pairs: &Path, out: &Path, cache: &Path, more: &[&str]) -> Output {
    let model = fx().join("qwen2_5_vl/model");
    std::process::Command::new(env!("CARGO_BIN_EXE_geom"))
        .args(["extract", "--model"])
        .arg(&model)
        .arg("--pairs")
        .arg(pairs)
        .arg("--out")
        .arg(out)
        .args(more)
        .env("GEOM_CACHE", cache)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn extract_reads_parquet_shards_through_a_preset() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let pairs = preset(dir.path(), "train-*.parquet");
    // 3 of the URL shard's images were never downloaded: the run stops at
    // the first, naming the file it expected.
    let out = dir.path().join("s.h5");
    let o = extract(&pairs, &out, &cache, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("converting 2 parquet shard(s)")
            && err.contains("3 of 10 pairs have no image file"),
        "{err}"
    );
    assert!(
        err.contains("pair 'pixmo-0-2'") && err.contains("--skip-bad"),
        "{err}"
    );
    assert!(!out.exists());
    // --skip-bad: the 2 downloaded and the 5 embedded images; the manifest is
    // converted once (the cache is reused).
    let o = extract(&pairs, &out, &cache, &["--skip-bad"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("converting"), "{err}");
    assert!(err.contains("skipped pair 'pixmo-0-4'"), "{err}");
    let store = Store::open(&out).unwrap();
    let ids = store.ids("image").unwrap();
    assert_eq!(
        ids,
        [
            "pixmo-0-0",
            "pixmo-0-1",
            "pixmo-1-0",
            "pixmo-1-1",
            "pixmo-1-2",
            "pixmo-1-3",
            "pixmo-1-4"
        ]
    );
    assert_eq!(store.ids("text").unwrap(), ids);
    assert_eq!(store.modality("text").unwrap().rows_done, 7);
    assert_eq!(store.meta().dataset, "pixmo-fixture");
    // The embedded shard alone needs no skipping, and --limit applies.
    let out = dir.path().join("t.h5");
    let pairs = preset(dir.path(), "train-00001-of-*.parquet");
    let o = extract(&pairs, &out, &cache, &["--limit", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        Store::open(&out)
            .unwrap()
            .modality("image")
            .unwrap()
            .rows_done,
        3
    );
}

#[test]
fn a_missing_images_folder_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("p.toml");
    std::fs::write(
        &t,
        format!(
            "name = \"p\"\ndescription = \"d\"\nmodalities = [\"text\", \"image\"]\nparquet = \"{}\"\nimages = \"{}\"\n",
            fx().join("pixmo/data/train-00000-of-00002.parquet").display(),
            dir.path().join("no-images").display()
        ),
    )
    .unwrap();
    let o = extract(&t, &dir.path().join("s.h5"), &dir.path().join("cache"), &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("no-images") && lines[0].contains("SHA-256 of its URL"),
        "{err}"
    );
}
