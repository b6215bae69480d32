//! `geom extract`: a manifest through the tiny fixture checkpoint into a
//! store — values equal to embedding the pairs directly, bad files stop the
//! run with the line and the file (or are skipped and recorded), and a run
//! killed mid-way resumes to the same values as an uninterrupted one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use geom::model::{Cpu, Embedder, Item, Pooling};
use geom::store::Store;

fn fx() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2_5_vl")
}

const CAPTIONS: [&str; 6] = [
    "A small square picture.",
    "A wide picture with a red disc on a dark ground.",
    "A tall narrow picture.",
    "A large picture, bigger than the pixel budget of the processor.",
    "A tiny picture.",
    "Stripes.",
];
const IMAGES: [&str; 5] = [
    "img_64x64.png",
    "img_120x70.png",
    "img_50x90.png",
    "img_200x150.png",
    "img_20x30.png",
];

/// `n` pairs cycling through the fixture images, with an optional extra
/// line appended.
fn manifest(dir: &Path, n: usize, extra: Option<&str>) -> PathBuf {
    let mut body = String::new();
    for i in 0..n {
        let img = fx().join("images").join(IMAGES[i % IMAGES.len()]);
        body.push_str(
            &serde_json::json!({
                "id": format!("p{i:02}"),
                "text": format!("{} (pair {i})", CAPTIONS[i % CAPTIONS.len()]),
                "image": img,
            })
            .to_string(),
        );
        body.push('\n');
    }
    if let Some(e) = extra {
        body.push_str(e);
        body.push('\n');
    }
    let p = dir.join("pairs.jsonl");
    std::fs::write(&p, body).unwrap();
    p
}

fn geom(args: &[&str], env: Option<(&str, &str)>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_geom"));
    c.args(args);
    if let Some((k, v)) = env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn extract(pairs: &Path, out: &Path, more: &[&str], env: Option<(&str, &str)>) -> Output {
    let model = fx().join("model");
    let mut args = vec![
        "extract",
        "--model",
        model.to_str().unwrap(),
        "--pairs",
        pairs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(more);
    geom(&args, env)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn layers(store: &Path, modality: &str) -> Vec<ndarray::Array2<f32>> {
    let s = Store::open(store).unwrap();
    let n = s.modality(modality).unwrap().n_layers;
    (0..n).map(|l| s.read_layer(modality, l).unwrap()).collect()
}

#[test]
fn extraction_equals_embedding_each_pair_directly() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = manifest(dir.path(), 7, None);
    let out = dir.path().join("s.h5");
    // Batches of 3, sorted by size inside the window: order must not leak.
    let o = extract(&pairs, &out, &["--batch-size", "3"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let store = Store::open(&out).unwrap();
    let ids: Vec<String> = (0..7).map(|i| format!("p{i:02}")).collect();
    assert_eq!(store.ids("text").unwrap(), ids);
    assert_eq!(store.ids("image").unwrap(), ids);
    assert_eq!(store.meta().pooling, "last");
    assert_eq!(store.meta().model_fingerprint.len(), 16);
    // The same pairs one at a time through the library.
    let device = Default::default();
    let emb = Embedder::<Cpu>::from_dir(&fx().join("model"), &device).unwrap();
    let (text, image) = (layers(&out, "text"), layers(&out, "image"));
    for i in 0..7 {
        let t = format!("{} (pair {i})", CAPTIONS[i % CAPTIONS.len()]);
        let img = geom::input::image::load_image(&fx().join("images").join(IMAGES[i % 5])).unwrap();
        for (states, item) in [(&text, Item::text(t)), (&image, Item::Images(vec![img]))] {
            let alone = emb.hidden_states(&[item], Pooling::LastToken).unwrap();
            for (l, a) in alone.iter().enumerate() {
                let err = (&states[l].row(i) - &a.row(0))
                    .mapv(f32::abs)
                    .fold(0f32, |m, &x| m.max(x));
                assert!(err < 1e-5, "pair {i} layer {l}: {err:e}");
            }
        }
    }
}

#[test]
fn a_broken_image_stops_with_line_and_file_or_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n truncated").unwrap();
    let line = serde_json::json!({"id": "bad", "text": "a caption", "image": bad}).to_string();
    let pairs = manifest(dir.path(), 4, Some(&line));
    let out = dir.path().join("s.h5");
    let o = extract(&pairs, &out, &[], None);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("pairs.jsonl:5") && lines[0].contains("broken.png"),
        "{err}"
    );
    assert!(
        !out.exists(),
        "nothing is created before the files are checked"
    );
    // --skip-bad: the other pairs, and the skipped one recorded.
    let o = extract(&pairs, &out, &["--skip-bad"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("skipped pair 'bad' (line 5)"),
        "{}",
        stderr(&o)
    );
    let store = Store::open(&out).unwrap();
    assert_eq!(store.modality("image").unwrap().rows_done, 4);
    let skipped: serde_json::Value = serde_json::from_str(&store.root_attr("skipped")).unwrap();
    assert_eq!(skipped[0]["id"], "bad");
    assert_eq!(skipped[0]["line"], 5);
    // A malformed manifest line and a duplicate id.
    std::fs::write(
        &pairs,
        "{\"id\": \"a\", \"text\": \"x\"}\n{\"id\": \"a\", \"text\": \"y\"}\n",
    )
    .unwrap();
    let o = extract(&pairs, &dir.path().join("t.h5"), &[], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("pairs.jsonl:2: duplicate id 'a'"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn killed_run_resumes_to_the_uninterrupted_values() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = manifest(dir.path(), 12, None);
    let full = dir.path().join("full.h5");
    let o = extract(&pairs, &full, &["--batch-size", "1"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    // Windows of 8 rows: die (like SIGKILL: no destructors, no flush) while
    // writing the second text window, after its data but before rows_done.
    let part = dir.path().join("part.h5");
    let o = extract(
        &pairs,
        &part,
        &["--batch-size", "1"],
        Some(("GEOM_TEST_ABORT_AFTER_ROWS", "12")),
    );
    assert!(!o.status.success());
    let s = Store::open(&part).unwrap();
    assert_eq!(s.modality("text").unwrap().rows_done, 8);
    assert_eq!(s.modality("image").unwrap().rows_done, 0);
    drop(s);
    // Without --resume the store is refused; with another pooling too.
    let o = extract(&pairs, &part, &["--batch-size", "1"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--resume"), "{}", stderr(&o));
    let o = extract(&pairs, &part, &["--resume", "--pooling", "mean"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("pooling is 'last'"), "{}", stderr(&o));
    // The same command with --resume finishes every row exactly once.
    let o = extract(&pairs, &part, &["--batch-size", "1", "--resume"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("16 rows computed"));
    for m in ["text", "image"] {
        let (a, b) = (layers(&full, m), layers(&part, m));
        assert_eq!(a, b, "{m}");
        assert_eq!(
            Store::open(&full).unwrap().ids(m).unwrap(),
            Store::open(&part).unwrap().ids(m).unwrap()
        );
    }
}

#[test]
fn presets_resolve_under_geom_data_or_say_where_they_looked() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.h5");
    let model = fx().join("model");
    let run = |data: &Path| {
        Command::new(env!("CARGO_BIN_EXE_geom"))
            .args([
                "extract",
                "--model",
                model.to_str().unwrap(),
                "--pairs",
                "pixmo",
            ])
            .args(["--out", out.to_str().unwrap(), "--limit", "3"])
            .env("GEOM_DATA", data)
            .output()
            .unwrap()
    };
    let o = run(dir.path());
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("pixmo/pairs.jsonl") && err.contains("GEOM_DATA="),
        "{err}"
    );
    // Put a manifest where the preset looks: it is found, --limit applies.
    std::fs::create_dir_all(dir.path().join("pixmo")).unwrap();
    let m = manifest(dir.path(), 5, None);
    std::fs::rename(&m, dir.path().join("pixmo/pairs.jsonl")).unwrap();
    let o = run(dir.path());
    assert!(o.status.success(), "{}", stderr(&o));
    let s = Store::open(&out).unwrap();
    assert_eq!(s.meta().dataset, "pixmo");
    assert_eq!(s.modality("text").unwrap().n_rows, 3);
}

/// `geom anisotropy --model DIR --pairs P` extracts into the cache once and
/// reuses it; `geom compare` takes checkpoint folders the same way.
#[test]
fn analyses_on_a_model_use_the_extraction_cache() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = manifest(dir.path(), 12, None);
    let cache = dir.path().join("cache");
    let model = fx().join("model");
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend([
            "--pairs",
            pairs.to_str().unwrap(),
            "--cache-dir",
            cache.to_str().unwrap(),
        ]);
        geom(&all, None)
    };
    let m = format!("base={}", model.display());
    let first = run(&["anisotropy", "--model", &m, "--format", "json"]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("extracting 12 pairs"),
        "{}",
        stderr(&first)
    );
    let second = run(&["anisotropy", "--model", &m, "--format", "json"]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("using the cached"),
        "{}",
        stderr(&second)
    );
    assert_eq!(first.stdout, second.stdout);
    let j: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(j["modalities"]["text"].as_array().unwrap().len(), 4);
    // One store (beside it, the lock file extraction takes).
    let stores = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "h5"))
        .count();
    assert_eq!(stores, 1);
    let o = run(&[
        "kernel-align",
        "--model",
        &m,
        "--k",
        "3",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("using the cached"), "{}", stderr(&o));
    // compare: the same weights in the flat hub layout give zero differences.
    let after = format!("hub={}", fx().join("model_sharded").display());
    let o = run(&[
        "compare", "--before", &m, "--after", &after, "--k", "3", "--format", "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for c in j["curves"].as_array().unwrap() {
        for d in c["delta"].as_array().unwrap() {
            // null: NaN, the embedding layer where kNN is undefined (every row one vector).
            assert!(d.as_f64().is_none_or(|x| x.abs() < 1e-6), "{c}");
        }
    }
    // --pairs without --model is an error.
    let o = geom(&["anisotropy", "--pairs", pairs.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
