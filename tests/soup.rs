//! `geom soup`: weighted averages of copies of the tiny fixture checkpoint
//! and of PEFT adapters on it, and one clear line with exit code 2 for every
//! bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use geom::checkpoint::load::Checkpoint;
use geom::checkpoint::rewrite::rewrite_checkpoint;
use geom::model::{Cpu, Qwen2_5Vl};

fn fx(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/qwen2_5_vl")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

fn geom(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_geom"))
        .args(args)
        .output()
        .unwrap()
}

fn p(s: &str) -> &Path {
    Path::new(s)
}

/// Exit code 2 and one line on stderr containing every `needle`.
fn user_error(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "stderr: {err}");
    assert!(err.starts_with("error: "), "stderr: {err}");
    for n in needles {
        assert!(err.contains(n), "'{n}' not in: {err}");
    }
}

fn tensors(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let c = Checkpoint::open(dir).unwrap();
    c.keys()
        .map(|k| (k.to_string(), c.tensor_f32(k).unwrap().0))
        .collect()
}

#[test]
fn weighted_soup_of_two_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    copy_dir(&fx("model_sharded"), &a);
    let b = tmp.path().join("b");
    rewrite_checkpoint(&fx("model"), &b, |_, _, mut v| {
        v.iter_mut().for_each(|x| *x = 3.0 * *x + 1.0);
        Ok(Some(v))
    })
    .unwrap();
    let out = tmp.path().join("soup");
    let r = geom(&[
        p("soup"),
        &a,
        &b,
        p("--out"),
        &out,
        p("--weights"),
        p("0.25,0.75"),
    ]);
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.contains("soup of 2 checkpoints (weights 0.2500, 0.7500)"),
        "{stdout}"
    );
    // The first input's layout: three shards and the index.
    assert!(out.join("model.safetensors.index.json").exists());
    assert!(out.join("model-00003-of-00003.safetensors").exists());
    for ((ka, va), (ko, vo)) in tensors(&a).into_iter().zip(tensors(&out)) {
        assert_eq!(ka, ko);
        for (x, y) in va.iter().zip(&vo) {
            let want = 0.25 * x + 0.75 * (3.0 * x + 1.0);
            assert!(
                (y - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{ka}: {y} vs {want}"
            );
        }
    }
    Qwen2_5Vl::<Cpu>::load(&out, &Default::default()).unwrap();
}

/// A soup of two PEFT adapters (plain and rsLoRA, made by peft) merged into
/// the base equals the soup of the two merged checkpoints; an adapter and a
/// checkpoint do not mix.
#[test]
fn soup_of_adapters_merges_to_the_soup_of_the_merged_models() {
    let tmp = tempfile::tempdir().unwrap();
    let lora = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lora");
    let (x, y) = (lora.join("adapter"), lora.join("adapter_rslora"));
    let merge = |adapter: &Path, out: &Path| {
        let r = geom(&[
            p("merge-lora"),
            p("--base"),
            &fx("model"),
            p("--adapter"),
            adapter,
            p("--out"),
            out,
        ]);
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    };
    let (mx, my) = (tmp.path().join("mx"), tmp.path().join("my"));
    merge(&x, &mx);
    merge(&y, &my);
    let soup_ckpt = tmp.path().join("soup_ckpt");
    let r = geom(&[
        p("soup"),
        &mx,
        &my,
        p("--out"),
        &soup_ckpt,
        p("--weights"),
        p("1,3"),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));

    let soup_ad = tmp.path().join("soup_adapter");
    let r = geom(&[
        p("soup"),
        &x,
        &y,
        p("--out"),
        &soup_ad,
        p("--weights"),
        p("1,3"),
    ]);
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(
        stdout.contains("soup of 2 adapters (weights 0.2500, 0.7500"),
        "{stdout}"
    );
    assert!(soup_ad.join("adapter_config.json").exists());
    let merged = tmp.path().join("merged_soup");
    merge(&soup_ad, &merged);
    let mut worst = 0f32;
    for ((ka, va), (kb, vb)) in tensors(&soup_ckpt).into_iter().zip(tensors(&merged)) {
        assert_eq!(ka, kb);
        for (a, b) in va.iter().zip(&vb) {
            worst = worst.max((a - b).abs());
        }
    }
    assert!(worst < 1e-5, "adapter soup vs checkpoint soup: {worst}");

    user_error(
        &geom(&[p("soup"), &x, &mx, p("--out"), &tmp.path().join("mixed")]),
        &["adapter folder", "mx"],
    );
    assert!(!tmp.path().join("mixed").exists());
}

#[test]
fn equal_soup_of_one_model_in_two_layouts_is_that_model() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    copy_dir(&fx("model"), &a);
    copy_dir(&fx("model_sharded"), &b);
    let out = tmp.path().join("nested/soup");
    let r = geom(&[p("soup"), &a, &b, p("--out"), &out]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(
        std::fs::read(out.join("model.safetensors")).unwrap(),
        std::fs::read(a.join("model.safetensors")).unwrap()
    );
    for f in ["config.json", "tokenizer.json", "chat_template.jinja"] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(a.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn bad_inputs_exit_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    copy_dir(&fx("model"), &a);
    let out = tmp.path().join("soup");

    let not_ckpt = tmp.path().join("empty");
    std::fs::create_dir(&not_ckpt).unwrap();
    let r = geom(&[p("soup"), &a, &not_ckpt, p("--out"), &out]);
    user_error(&r, &["empty", "not a checkpoint folder"]);
    let r = geom(&[p("soup"), &a, &tmp.path().join("missing"), p("--out"), &out]);
    user_error(&r, &["missing", "no such folder"]);

    for (weights, needles) in [
        ("1,1,1", &["3 weights for 2 checkpoints"][..]),
        ("0.5,-0.5", &["weight 2 is -0.5", "positive"][..]),
        ("-1,2", &["weight 1 is -1"][..]),
        ("0.5,x", &["--weights: 'x' is not a number"][..]),
    ] {
        let r = geom(&[
            p("soup"),
            &a,
            &a,
            p("--out"),
            &out,
            p("--weights"),
            p(weights),
        ]);
        user_error(&r, needles);
    }
    assert!(!out.exists());

    // Another architecture: one tensor only.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let bytes: Vec<u8> = [1f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &bytes).unwrap();
    safetensors::serialize_to_file(
        [("model.norm.weight", view)],
        None,
        &other.join("model.safetensors"),
    )
    .unwrap();
    let r = geom(&[p("soup"), &a, &other, p("--out"), &out]);
    user_error(&r, &["tensor '", "one architecture"]);
    assert!(!out.exists());

    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "keep").unwrap();
    let r = geom(&[p("soup"), &a, &a, p("--out"), &out]);
    user_error(&r, &[&out.display().to_string(), "not empty"]);
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "keep"
    );
}
