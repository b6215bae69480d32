//! The `geom` binary: outputs in the documented formats, and user errors
//! as one clear line with exit code 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use geom::store::{default_layer_names, ModalitySpec, StoreMeta, StoreWriter};
use ndarray::Array3;
use serde_json::Value;

/// Runs the binary with its cache (the demo's checkpoints extracted once) in
/// cargo's temporary folder, shared by the tests (extraction takes a lock).
fn geom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_geom"))
        .args(args)
        .env(
            "GEOM_CACHE",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("geom-cache"),
        )
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
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

/// A store with text and image of `n_text` / `n_image` rows, 5 layers, seeded values.
fn make_store(dir: &Path, name: &str, n_text: usize, n_image: usize) -> PathBuf {
    let path = dir.join(name);
    let spec = |m: &str, n: usize, d: usize| ModalitySpec {
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
    let mut w = StoreWriter::create(
        &path,
        &meta,
        &[spec("text", n_text, 6), spec("image", n_image, 4)],
    )
    .unwrap();
    let mut state = 12345u64;
    let mut rnd = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    let t = Array3::from_shape_fn((5, n_text, 6), |(l, _, c)| {
        rnd() + 0.1 * l as f32 * (c == 0) as u8 as f32
    });
    let i = Array3::from_shape_fn((5, n_image, 4), |_| rnd());
    let ids = |n: usize| (0..n).map(|r| r.to_string()).collect::<Vec<_>>();
    w.append("text", &ids(n_text), t.view()).unwrap();
    w.append("image", &ids(n_image), i.view()).unwrap();
    w.finish().unwrap();
    path
}

#[test]
fn demo_default_prints_the_anisotropy_table() {
    let o = geom(&["anisotropy", "--layers", "all"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("layer") && out.contains("text") && out.contains("image"),
        "{out}"
    );
    assert!(
        out.contains("== before CL ==") && out.contains("== after CL =="),
        "{out}"
    );
    let err = stderr(&o);
    assert!(
        err.contains("embedded demo") && err.contains("random weights"),
        "the demo must say what its checkpoints are: {err}"
    );
}

/// The demo default honours the extraction flags: `--cache-dir` receives the
/// demo's files and both extracted stores.
#[test]
fn demo_default_uses_the_given_cache_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let o = geom(&[
        "anisotropy",
        "--cache-dir",
        cache.to_str().unwrap(),
        "--batch-size",
        "64",
        "--layers",
        "-1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names: Vec<String> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("geom-demo-")),
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".h5")).count(),
        2,
        "{names:?}"
    );
    let o = geom(&["compare", "--device", "gpu:7"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a bad --device is an error, demo or not"
    );
    assert!(stderr(&o).contains("gpu:7"), "{}", stderr(&o));
}

/// The demo's other entry points: `kernel-align --pairs demo` with the
/// demo's checkpoints, `compare` with no argument, and `figure` on the
/// demo's config; the embedding layer (all rows one vector) has no
/// neighbours, so its alignment is NaN, not a perfect 1.0.
#[test]
fn demo_pairs_compare_and_figure() {
    let o = geom(&["compare", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(
        (j["before"].as_str(), j["after"].as_str()),
        (Some("before CL"), Some("after CL"))
    );
    let knn = j["curves"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "mutual_knn image-text")
        .unwrap();
    assert!(
        knn["before"][0].is_null(),
        "layer 0 must be NaN (null in JSON): {knn}"
    );
    assert!(knn["before"][8].as_f64().unwrap() > 0.0);
    // Different checkpoints give different curves (the cache tells them apart).
    let aniso = &j["curves"][0];
    assert_ne!(aniso["before"][4], aniso["after"][4], "{aniso}");

    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    // The demo's checkpoints as folders, through --model and --pairs demo.
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("geom-cache");
    let root = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("geom-demo-")
                && p.is_dir()
        })
        .unwrap();
    let o = geom(&[
        "kernel-align",
        "--model",
        &format!("base={}", root.join("before").display()),
        "--pairs",
        "demo",
        "--layers",
        "all",
        "--format",
        "csv",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 1 + 9, "{}", stdout(&o));
    assert!(stderr(&o).contains("using the cached"), "{}", stderr(&o));

    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/figures/demo.toml");
    let o = geom(&[
        "figure",
        config.to_str().unwrap(),
        "--out",
        demo.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for ext in ["svg", "png", "json", "csv"] {
        assert!(demo.with_extension(ext).exists(), "{ext}");
    }
    let j: Value =
        serde_json::from_str(&std::fs::read_to_string(demo.with_extension("json")).unwrap())
            .unwrap();
    assert_eq!(j["panels"][0]["curves"].as_array().unwrap().len(), 4); // text, image × before, after

    // A config naming an unset variable, or an unknown field: exit 2, named.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "kind = \"anisotropy\"\npairs = \"demo\"\n[[models]]\nlabel = \"x\"\npath = \"${GEOM_UNSET_FOR_TEST}/m\"\n").unwrap();
    user_error(
        &geom(&["figure", bad.to_str().unwrap()]),
        &["bad.toml", "models[0].path", "GEOM_UNSET_FOR_TEST"],
    );
    std::fs::write(&bad, "kind = \"anisotropy\"\npairs = \"demo\"\ncolour = 1\n[[models]]\nlabel = \"x\"\npath = \"demo:before\"\n").unwrap();
    user_error(
        &geom(&["figure", bad.to_str().unwrap()]),
        &["bad.toml", "colour"],
    );
}

#[test]
fn anisotropy_json_and_csv_follow_the_documented_format() {
    let dir = tempfile::tempdir().unwrap();
    let s = make_store(dir.path(), "s.h5", 40, 40);
    let s = s.to_str().unwrap();
    let o = geom(&[
        "anisotropy",
        "--store",
        s,
        "--layers",
        "0,-1",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["metric"], "anisotropy");
    assert_eq!(j["layers"], serde_json::json!([0, 4]));
    assert_eq!(j["modalities"]["text"].as_array().unwrap().len(), 2);
    assert_eq!(j["modalities"]["image"].as_array().unwrap().len(), 2);
    // A negative layer is a value, not a flag, even as its own argument.
    let o = geom(&[
        "anisotropy",
        "--store",
        s,
        "--layers",
        "-1",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["layers"], serde_json::json!([4]));
    let o = geom(&[
        "anisotropy",
        "--store",
        s,
        "--layers",
        "1..3",
        "--modality",
        "text",
        "--format",
        "csv",
    ]);
    let csv = stdout(&o);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "metric,modality_or_pair,layer,value");
    assert_eq!(lines.len(), 3);
    assert!(lines[1].starts_with("anisotropy,text,1,"), "{csv}");
}

#[test]
fn kernel_align_layerwise_and_all_pairs_json() {
    let dir = tempfile::tempdir().unwrap();
    let s = make_store(dir.path(), "s.h5", 60, 60);
    let s = s.to_str().unwrap();
    let o = geom(&[
        "kernel-align",
        "--store",
        s,
        "--a",
        "image",
        "--b",
        "text",
        "--metric",
        "mutual-knn",
        "--k",
        "5",
        "--layers",
        "all",
        "--format",
        "json",
        "--permutations",
        "20",
        "--bootstrap",
        "20",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["metric"], "mutual_knn");
    assert_eq!(j["k"], 5);
    assert_eq!(
        (j["a"].as_str(), j["b"].as_str()),
        (Some("image"), Some("text"))
    );
    assert_eq!(j["values"].as_array().unwrap().len(), 5);
    assert_eq!(j["p_values"].as_array().unwrap().len(), 5);
    assert_eq!(j["ci"].as_array().unwrap().len(), 5);
    let chance = j["chance"][0].as_f64().unwrap();
    assert!((chance - 5.0 / 59.0).abs() < 1e-12);

    let o = geom(&[
        "kernel-align",
        "--store",
        s,
        "--metric",
        "cka",
        "--mode",
        "all-pairs",
        "--layers",
        "0..3",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["metric"], "cka");
    assert!(j.get("k").is_none());
    let m = j["matrix"].as_array().unwrap();
    assert_eq!((m.len(), m[0].as_array().unwrap().len()), (3, 3));
    let best = j["best"]["value"].as_f64().unwrap();
    let max = m
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
        .fold(f64::MIN, f64::max);
    assert_eq!(best, max);
    assert_eq!(j["values"].as_array().unwrap().len(), 3, "the diagonal");
}

#[test]
fn out_dir_gets_results_and_figures() {
    let dir = tempfile::tempdir().unwrap();
    let s = make_store(dir.path(), "s.h5", 40, 40);
    let out = dir.path().join("res");
    let o = geom(&[
        "anisotropy",
        "--store",
        &format!("before={}", s.display()),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    for f in [
        "anisotropy.json",
        "anisotropy.csv",
        "figure1-anisotropy.svg",
        "figure1-anisotropy.png",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let o = geom(&[
        "kernel-align",
        "--store",
        s.to_str().unwrap(),
        "--k",
        "3",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("mutual_knn.json").exists() && out.join("figure2-mutual_knn.png").exists());
    // geom plot redraws from the JSON.
    let fig = dir.path().join("replot");
    let o = geom(&[
        "plot",
        out.join("mutual_knn.json").to_str().unwrap(),
        "--out",
        fig.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(fig.with_extension("svg").exists() && fig.with_extension("png").exists());
}

#[test]
fn user_errors_exit_2_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let s = make_store(dir.path(), "s.h5", 30, 30);
    let s = s.to_str().unwrap();
    user_error(
        &geom(&["anisotropy", "--store", s, "--modality", "audio"]),
        &["'audio'", "text, image"],
    );
    user_error(
        &geom(&["anisotropy", "--store", s, "--layers", "9"]),
        &["layer 9", "5 layers"],
    );
    user_error(
        &geom(&["anisotropy", "--store", s, "--layers", "x"]),
        &["'x'"],
    );
    user_error(
        &geom(&["kernel-align", "--store", s, "--k", "30"]),
        &["k = 30", "N = 30"],
    );
    user_error(
        &geom(&["kernel-align", "--store", s, "--metric", "nope"]),
        &["'nope'", "mutual-knn"],
    );
    let bad = make_store(dir.path(), "uneven.h5", 30, 25);
    user_error(
        &geom(&["kernel-align", "--store", bad.to_str().unwrap()]),
        &["has 25 rows", "has 30"],
    );
    user_error(
        &geom(&["anisotropy", "--store", "does/not/exist.h5"]),
        &["does/not/exist.h5"],
    );
    let txt = dir.path().join("notes.txt");
    std::fs::write(&txt, "hello").unwrap();
    user_error(
        &geom(&["store", "info", txt.to_str().unwrap()]),
        &["notes.txt", "not a geom store"],
    );
    // Import onto an existing file: refused, the file is untouched.
    let npy = dir.path().join("x.npy");
    ndarray_npy::write_npy(&npy, &Array3::<f32>::zeros((2, 3, 4))).unwrap();
    let before = std::fs::read(s).unwrap();
    user_error(
        &geom(&[
            "store",
            "import",
            "--modality",
            &format!("text={}", npy.display()),
            "--out",
            s,
        ]),
        &["already exists"],
    );
    assert_eq!(std::fs::read(s).unwrap(), before);
    // A .npy that is not [L, N, D].
    let flat = dir.path().join("flat.npy");
    ndarray_npy::write_npy(&flat, &ndarray::Array2::<f32>::zeros((3, 4))).unwrap();
    let out = dir.path().join("new.h5");
    user_error(
        &geom(&[
            "store",
            "import",
            "--modality",
            &format!("text={}", flat.display()),
            "--out",
            out.to_str().unwrap(),
        ]),
        &["flat.npy", "[layers, rows, dim]"],
    );
    assert!(!out.exists());
    // Clap's own usage errors also exit 2.
    assert_eq!(
        geom(&["anisotropy", "--format", "yaml"]).status.code(),
        Some(2)
    );
}

#[test]
fn store_import_and_info() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.npy");
    let i = dir.path().join("i.npy");
    ndarray_npy::write_npy(
        &t,
        &Array3::<f32>::from_shape_fn((3, 8, 4), |(a, b, c)| (a + b * c) as f32 + 1.0),
    )
    .unwrap();
    ndarray_npy::write_npy(
        &i,
        &Array3::<f32>::from_shape_fn((3, 8, 2), |(a, b, c)| (a * b + c) as f32 + 1.0),
    )
    .unwrap();
    let out = dir.path().join("s.h5");
    let o = geom(&[
        "store",
        "import",
        "--modality",
        &format!("text={},image={}", t.display(), i.display()),
        "--out",
        out.to_str().unwrap(),
        "--dataset",
        "mine",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = geom(&["store", "info", out.to_str().unwrap(), "--format", "json"]);
    let j: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(j["geom_store_version"], 1);
    assert_eq!(j["attributes"]["dataset"], "mine");
    assert_eq!(j["modalities"][1]["name"], "image");
    assert_eq!(j["modalities"][1]["dim"], 2);
    let o = geom(&["store", "info", out.to_str().unwrap()]);
    assert!(stdout(&o).contains("rows_done"), "{}", stdout(&o));
}

/// `geom embed` on the tiny fixture checkpoint: a text, an image and a video
/// in one batch, written as [layers, items, hidden] .npy; bad inputs exit 2
/// and an existing output is never overwritten.
#[cfg(feature = "model")]
#[test]
fn embed_writes_every_layer_and_rejects_bad_input() {
    let fx = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2_5_vl");
    let model = fx.join("model");
    let model = model.to_str().unwrap();
    let image = fx.join("images/img_120x70.png");
    let video = fx.join("video");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("states.npy");
    let o = geom(&[
        "embed",
        "--model",
        model,
        "--text",
        "A red disc.",
        "--image",
        image.to_str().unwrap(),
        "--video",
        video.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("video"), "{}", stdout(&o));
    let a: Array3<f32> = ndarray_npy::read_npy(&out).unwrap();
    assert_eq!(a.dim(), (4, 3, 64));
    // The same texts alone give the same states (padding does not leak).
    let out1 = dir.path().join("text.npy");
    let o = geom(&[
        "embed",
        "--model",
        model,
        "--text",
        "A red disc.",
        "--out",
        out1.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let b: Array3<f32> = ndarray_npy::read_npy(&out1).unwrap();
    for l in 0..4 {
        for d in 0..64 {
            assert!((a[[l, 0, d]] - b[[l, 0, d]]).abs() < 1e-5);
        }
    }
    // An existing output is refused and left as it was.
    let before = std::fs::read(&out1).unwrap();
    let o = geom(&[
        "embed",
        "--model",
        model,
        "--text",
        "x",
        "--out",
        out1.to_str().unwrap(),
    ]);
    user_error(&o, &["text.npy", "already exists"]);
    assert_eq!(std::fs::read(&out1).unwrap(), before);
    // A file that is not an image.
    let bad = dir.path().join("broken.png");
    std::fs::write(&bad, b"not a png").unwrap();
    let o = geom(&["embed", "--model", model, "--image", bad.to_str().unwrap()]);
    user_error(&o, &["broken.png"]);
    // No model there.
    let o = geom(&[
        "embed",
        "--model",
        dir.path().to_str().unwrap(),
        "--text",
        "x",
    ]);
    user_error(&o, &["config.json"]);
    // Unknown device, unknown pooling.
    let o = geom(&["embed", "--model", model, "--text", "x", "--device", "tpu"]);
    user_error(&o, &["tpu", "cpu:ndarray, cuda or cuda:N"]);
    let o = geom(&["embed", "--model", model, "--text", "x", "--pooling", "max"]);
    user_error(&o, &["max", "last, mean"]);
}

/// `geom compare`: before/after side by side with differences, the JSON
/// curves, both figures; mismatched stores exit 2.
#[test]
fn compare_before_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let a = make_store(dir.path(), "a.h5", 40, 40);
    let b = make_store(dir.path(), "b.h5", 40, 40);
    let out = dir.path().join("cmp");
    let o = geom(&[
        "compare",
        "--before",
        &format!("base={}", a.display()),
        "--after",
        &format!("cl={}", b.display()),
        "--format",
        "json",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let curves = j["curves"].as_array().unwrap();
    assert_eq!(curves.len(), 3, "{j}"); // anisotropy text, image; mutual kNN image-text
    assert_eq!(curves[2]["name"], "mutual_knn image-text");
    for c in curves {
        let (bf, af, d) = (&c["before"], &c["after"], &c["delta"]);
        for i in 0..bf.as_array().unwrap().len() {
            let want = af[i].as_f64().unwrap() - bf[i].as_f64().unwrap();
            assert!((d[i].as_f64().unwrap() - want).abs() < 1e-12);
        }
    }
    for f in [
        "compare.json",
        "compare.csv",
        "compare-anisotropy.png",
        "compare-alignment.svg",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let c = make_store(dir.path(), "c.h5", 30, 30);
    let o = geom(&[
        "compare",
        "--before",
        a.to_str().unwrap(),
        "--after",
        c.to_str().unwrap(),
    ]);
    user_error(&o, &["c.h5", "same model depth and pairs"]);
}
