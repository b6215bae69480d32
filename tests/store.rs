//! The hidden-state store: round trip, resume after interruption, interop
//! with h5py, `.npy` import.

use std::process::Command;

use geom::store::{default_layer_names, import_npy, ModalitySpec, Store, StoreMeta, StoreWriter};
use ndarray::{s, Array3};

fn data(l: usize, n: usize, d: usize, seed: f32) -> Array3<f32> {
    Array3::from_shape_fn((l, n, d), |(a, b, c)| {
        seed + a as f32 * 100.0 + b as f32 + c as f32 * 0.01
    })
}

fn meta() -> StoreMeta {
    StoreMeta {
        model: "tests/model".into(),
        model_fingerprint: "abc123".into(),
        dataset: "unit".into(),
        pooling: "last".into(),
        created_by: "geom tests".into(),
    }
}

fn spec(name: &str, l: usize, n: usize, d: usize) -> ModalitySpec {
    ModalitySpec {
        name: name.into(),
        n_layers: l,
        n_rows: n,
        dim: d,
        layer_names: default_layer_names(l),
        prompt: format!("{{{name}}}\nSummarize the above {name} in one word:"),
    }
}

fn ids(r: std::ops::Range<usize>) -> Vec<String> {
    r.map(|i| format!("pair-{i}")).collect()
}

#[test]
fn write_then_read_one_layer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.h5");
    let (text, image) = (data(4, 300, 8, 0.0), data(4, 300, 6, 0.5));
    let mut w = StoreWriter::create(
        &path,
        &meta(),
        &[spec("text", 4, 300, 8), spec("image", 4, 300, 6)],
    )
    .unwrap();
    for (start, end) in [(0, 100), (100, 256), (256, 300)] {
        w.append("text", &ids(start..end), text.slice(s![.., start..end, ..]))
            .unwrap();
        w.append(
            "image",
            &ids(start..end),
            image.slice(s![.., start..end, ..]),
        )
        .unwrap();
    }
    w.finish().unwrap();

    let st = Store::open(&path).unwrap();
    assert_eq!(st.meta(), &meta());
    assert_eq!(st.modality_names(), vec!["text", "image"]);
    let info = st.modality("image").unwrap();
    assert_eq!(
        (info.n_layers, info.n_rows, info.rows_done, info.dim),
        (4, 300, 300, 6)
    );
    assert_eq!(info.layer_names[0], "embeddings");
    assert_eq!(
        info.prompt,
        "{image}\nSummarize the above image in one word:"
    );
    for l in 0..4 {
        assert_eq!(st.read_layer("text", l).unwrap(), text.slice(s![l, .., ..]));
        assert_eq!(
            st.read_layer("image", l).unwrap(),
            image.slice(s![l, .., ..])
        );
    }
    assert_eq!(st.ids("text").unwrap(), ids(0..300));
    let e = st.read_layer("audio", 0).err().unwrap().to_string();
    assert!(e.contains("'audio'") && e.contains("text, image"), "{e}");
    let e = st.read_layer("text", 4).err().unwrap().to_string();
    assert!(e.contains("layer 4") && e.contains("4 layers"), "{e}");
}

#[test]
fn resume_continues_after_the_rows_done() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.h5");
    let text = data(3, 50, 4, 1.0);
    {
        let mut w = StoreWriter::create(&path, &meta(), &[spec("text", 3, 50, 4)]).unwrap();
        w.append("text", &ids(0..20), text.slice(s![.., 0..20, ..]))
            .unwrap();
        // dropped without finish()
    }
    let st = Store::open(&path).unwrap();
    assert_eq!(st.modality("text").unwrap().rows_done, 20);
    assert_eq!(st.read_layer("text", 2).unwrap().nrows(), 20);
    drop(st);
    let mut w = StoreWriter::resume(&path).unwrap();
    assert_eq!(w.rows_done("text").unwrap(), 20);
    w.append("text", &ids(20..50), text.slice(s![.., 20..50, ..]))
        .unwrap();
    let e = w
        .append("text", &ids(50..51), text.slice(s![.., 0..1, ..]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("exceed its 50 rows"), "{e}");
    w.finish().unwrap();
    let st = Store::open(&path).unwrap();
    assert_eq!(st.read_layer("text", 1).unwrap(), text.slice(s![1, .., ..]));
}

#[test]
fn create_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.h5");
    std::fs::write(&path, b"precious").unwrap();
    let e = StoreWriter::create(&path, &meta(), &[spec("text", 1, 2, 2)])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

/// A process killed mid-batch (abort: no destructors, no flush, as SIGKILL)
/// leaves a store that opens and reports the batches completed before.
#[test]
fn killed_mid_batch_reports_completed_rows_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let text = data(2, 2500, 4, 0.0);
    let image = data(2, 2500, 3, 7.0);
    let tp = dir.path().join("text.npy");
    let ip = dir.path().join("image.npy");
    ndarray_npy::write_npy(&tp, &text).unwrap();
    ndarray_npy::write_npy(&ip, &image).unwrap();
    let out = dir.path().join("s.h5");
    let status = Command::new(env!("CARGO_BIN_EXE_geom"))
        .args(["store", "import", "--modality"])
        .arg(format!("text={},image={}", tp.display(), ip.display()))
        .arg("--out")
        .arg(&out)
        .env("GEOM_TEST_ABORT_AFTER_ROWS", "2048")
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the import should have been aborted");
    // Import batches are 1024 rows: the second batch's data was written but
    // its rows_done was not, so only the first batch counts.
    let st = Store::open(&out).unwrap();
    assert_eq!(st.modality("text").unwrap().rows_done, 1024);
    assert_eq!(st.modality("image").unwrap().rows_done, 0);
    assert_eq!(
        st.read_layer("text", 1).unwrap(),
        text.slice(s![1, 0..1024, ..])
    );
    drop(st);
    // Resume and finish: values equal an uninterrupted write.
    let mut w = StoreWriter::resume(&out).unwrap();
    let done = w.rows_done("text").unwrap();
    w.append("text", &ids(done..2500), text.slice(s![.., done..2500, ..]))
        .unwrap();
    w.append("image", &ids(0..2500), image.slice(s![.., .., ..]))
        .unwrap();
    w.finish().unwrap();
    let st = Store::open(&out).unwrap();
    for l in 0..2 {
        assert_eq!(st.read_layer("text", l).unwrap(), text.slice(s![l, .., ..]));
        assert_eq!(
            st.read_layer("image", l).unwrap(),
            image.slice(s![l, .., ..])
        );
    }
}

#[test]
fn import_npy_float64_and_mismatched_rows() {
    let dir = tempfile::tempdir().unwrap();
    let a = data(3, 10, 5, 0.0).mapv(|v| v as f64);
    let b = data(3, 11, 5, 0.0);
    let ap = dir.path().join("a.npy");
    let bp = dir.path().join("b.npy");
    ndarray_npy::write_npy(&ap, &a).unwrap();
    ndarray_npy::write_npy(&bp, &b).unwrap();
    let out = dir.path().join("s.h5");
    import_npy(&[("text".into(), ap.clone())], &out, &meta()).unwrap();
    let st = Store::open(&out).unwrap();
    assert_eq!(
        st.read_layer("text", 2).unwrap(),
        a.slice(s![2, .., ..]).mapv(|v| v as f32)
    );
    let e = import_npy(
        &[("text".into(), ap), ("image".into(), bp.clone())],
        &dir.path().join("t.h5"),
        &meta(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("N = 11") && e.contains("N = 10"), "{e}");
    assert!(
        !dir.path().join("t.h5").exists(),
        "nothing is created on a shape error"
    );
    let e = import_npy(&[("smell".into(), bp)], &dir.path().join("u.h5"), &meta())
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown modality 'smell'"), "{e}");
}

fn python_with_h5py() -> Option<&'static str> {
    let ok = Command::new("python3")
        .args(["-c", "import h5py, numpy"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if ok {
        Some("python3")
    } else if std::env::var("GEOM_SKIP_PYTHON").is_ok() {
        None
    } else {
        panic!("python3 with h5py and numpy is needed for the interop tests (make test installs them; set GEOM_SKIP_PYTHON=1 to skip)")
    }
}

/// geom writes, h5py reads (the README's three-line recipe); h5py writes, geom reads.
#[test]
fn h5py_interop_both_ways() {
    let Some(py) = python_with_h5py() else { return };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.h5");
    let text = data(3, 7, 5, 0.25);
    let mut w = StoreWriter::create(&path, &meta(), &[spec("text", 3, 7, 5)]).unwrap();
    w.append("text", &ids(0..7), text.view()).unwrap();
    w.finish().unwrap();
    let script = r#"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
hidden = f["text/hidden"][2]          # layer 2: [N, D]
ids = [s.decode() if isinstance(s, bytes) else s for s in f["text/ids"][:]]
assert f.attrs["geom_store_version"] == 1, f.attrs["geom_store_version"]
assert f["text"].attrs["rows_done"] == 7
assert f["text/hidden"].chunks == (1, 7, 5), f["text/hidden"].chunks
assert ids[3] == "pair-3", ids
np.save(sys.argv[2], hidden)
"#;
    let out = dir.path().join("layer2.npy");
    let st = Command::new(py)
        .args(["-c", script])
        .arg(&path)
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let back: ndarray::Array2<f32> = ndarray_npy::read_npy(&out).unwrap();
    assert_eq!(back, text.slice(s![2, .., ..]));

    // And the other way: a store written by h5py (schema v1) opens in geom.
    let written = dir.path().join("h5py.h5");
    let script = r#"
import sys, h5py, numpy as np
vlen = h5py.string_dtype("utf-8")
with h5py.File(sys.argv[1], "w", libver="earliest") as f:
    f.attrs["geom_store_version"] = np.uint32(1)
    for k, v in [("model", "h5py test"), ("model_fingerprint", "x"), ("dataset", "d"), ("pooling", "last"), ("created_by", "h5py")]:
        f.attrs[k] = v
    for m, dim in [("text", 6), ("image", 4)]:
        g = f.create_group(m)
        g.create_dataset("hidden", data=np.arange(3 * 5 * dim, dtype=np.float32).reshape(3, 5, dim), chunks=(1, 5, dim))
        g.create_dataset("ids", data=np.array([f"demo-{i:04d}" for i in range(5)], dtype=object), dtype=vlen)
        g.attrs["rows_done"] = np.uint64(5)
        g.attrs.create("layer_names", np.array(["embeddings", "layers.0", "layers.1.final_norm"], dtype=object), dtype=vlen)
        g.attrs["prompt"] = ""
"#;
    let st = Command::new(py)
        .args(["-c", script])
        .arg(&written)
        .status()
        .unwrap();
    assert!(st.success());
    let st = Store::open(&written).unwrap();
    assert_eq!(st.modality_names(), vec!["text", "image"]);
    assert_eq!(st.ids("image").unwrap()[0], "demo-0000");
    assert_eq!(
        st.read_layer("image", 2).unwrap()[[1, 3]],
        (2 * 20 + 4 + 3) as f32
    );
}

#[test]
fn opening_what_is_not_a_store_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let e = Store::open(&dir.path().join("missing.h5"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("missing.h5") && e.contains("no such file"),
        "{e}"
    );
    let txt = dir.path().join("notes.h5");
    std::fs::write(&txt, "hello").unwrap();
    let e = Store::open(&txt).err().unwrap().to_string();
    assert!(
        e.contains("notes.h5") && e.contains("not an HDF5 file"),
        "{e}"
    );
    let plain = dir.path().join("plain.h5");
    hdf5::File::create(&plain)
        .unwrap()
        .create_group("text")
        .unwrap();
    let e = Store::open(&plain).err().unwrap().to_string();
    assert!(e.contains("geom_store_version"), "{e}");
}
