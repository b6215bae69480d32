//! Tests of checkpoint rewriting and soups (the parent module, `rewrite.rs`).

use super::*;

type Tensors = BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>;

fn fx(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/qwen2_5_vl")
        .join(name)
}

/// Every tensor of a checkpoint folder (key as stored → dtype, shape,
/// bytes) and each file's `__metadata__`, read independently of `Source`.
fn read(dir: &Path) -> (Tensors, BTreeMap<String, Option<HashMap<String, String>>>) {
    let (_, names) = shard_names(dir).unwrap();
    let mut tensors = Tensors::new();
    let mut metas = BTreeMap::new();
    for n in names {
        let bytes = std::fs::read(dir.join(&n)).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        metas.insert(n.clone(), meta.metadata().clone());
        let st = SafeTensors::deserialize(&bytes).unwrap();
        for (k, v) in st.iter() {
            tensors.insert(
                k.to_string(),
                (v.dtype(), v.shape().to_vec(), v.data().to_vec()),
            );
        }
    }
    (tensors, metas)
}

fn other_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| {
            let n = e.file_name().into_string().unwrap();
            e.path().is_file() && !n.ends_with(".safetensors")
        })
        .map(|e| {
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn f32s(b: &[u8]) -> Vec<f32> {
    decode(Dtype::F32, b)
}

fn loads(dir: &Path) {
    crate::model::Qwen2_5Vl::<crate::model::Cpu>::load(dir, &Default::default())
        .unwrap_or_else(|e| panic!("{} does not load: {e}", dir.display()));
}

/// No `.NAME.partial-*` folder left beside `out`.
fn no_partial(parent: &Path) {
    for e in std::fs::read_dir(parent).unwrap() {
        let n = e.unwrap().file_name().into_string().unwrap();
        assert!(!n.contains(".partial-"), "left behind: {n}");
    }
}

/// A tiny checkpoint with BF16, F16, F32 and I64 tensors and a config.
fn tiny(dir: &Path, bf16: &[f32], shape: &[usize]) {
    std::fs::create_dir_all(dir).unwrap();
    let t = |dtype, shape: &[usize], data: Vec<u8>| (dtype, shape.to_vec(), data);
    let tensors = [
        ("w.bf16", t(Dtype::BF16, shape, encode(Dtype::BF16, bf16))),
        (
            "w.f16",
            t(Dtype::F16, &[2], encode(Dtype::F16, &[0.5, -3.0])),
        ),
        (
            "w.f32",
            t(Dtype::F32, &[3], encode(Dtype::F32, &[1.0, 2.0, 3.0])),
        ),
        (
            "ids",
            t(
                Dtype::I64,
                &[2],
                [7i64, 9].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        ),
    ];
    let views: Vec<(&str, OutTensor<'_>)> = tensors
        .iter()
        .map(|(k, (dtype, shape, data))| {
            (
                *k,
                OutTensor {
                    dtype: *dtype,
                    shape,
                    data: Cow::Borrowed(data),
                },
            )
        })
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(
        views.iter().map(|(k, t)| (*k, t)),
        Some(meta),
        &dir.join(SINGLE),
    )
    .unwrap();
    std::fs::write(dir.join("config.json"), "{\"tiny\": true}\n").unwrap();
}

#[test]
fn identity_rewrite_single_and_sharded() {
    for name in ["model", "model_sharded"] {
        let base = fx(name);
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("copy");
        let mut seen = 0;
        let r = rewrite_checkpoint(&base, &out, |_, _, _| {
            seen += 1;
            Ok(None)
        })
        .unwrap();
        let (a, ma) = read(&base);
        let (b, mb) = read(&out);
        assert_eq!(a, b, "{name}: tensors differ");
        assert_eq!(ma, mb, "{name}: shard names or __metadata__ differ");
        assert!(mb.values().all(|m| m.as_ref().unwrap()["format"] == "pt"));
        assert_eq!(other_files(&base), other_files(&out), "{name}: other files");
        assert_eq!((r.tensors_replaced, r.tensors_kept), (0, a.len()));
        assert_eq!(seen, a.len());
        assert_eq!(r.shards, ma.len());
        assert!(r.files_copied.contains(&"tokenizer.json".to_string()));
        assert!(r.files_skipped.is_empty());
        let on_disk: u64 = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum();
        assert_eq!(r.bytes_written, on_disk);
        no_partial(tmp.path());
        loads(&out);
    }
}

#[test]
fn index_total_size_stays_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("copy");
    rewrite_checkpoint(&fx("model_sharded"), &out, |_, _, v| Ok(Some(v))).unwrap();
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join(INDEX)).unwrap()).unwrap();
    let data: usize = read(&out).0.values().map(|t| t.2.len()).sum();
    assert_eq!(index["metadata"]["total_size"].as_u64(), Some(data as u64));

    // A wrong total_size in the input is corrected in the copy.
    let base = tmp.path().join("base");
    std::fs::create_dir(&base).unwrap();
    for e in std::fs::read_dir(fx("model_sharded")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), base.join(e.file_name())).unwrap();
    }
    let mut v = index.clone();
    v["metadata"]["total_size"] = 1.into();
    std::fs::write(base.join(INDEX), v.to_string()).unwrap();
    let out2 = tmp.path().join("copy2");
    rewrite_checkpoint(&base, &out2, |_, _, _| Ok(None)).unwrap();
    let fixed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out2.join(INDEX)).unwrap()).unwrap();
    assert_eq!(fixed["metadata"]["total_size"].as_u64(), Some(data as u64));
    assert_eq!(fixed["weight_map"], index["weight_map"]);
    loads(&out2);
}

#[test]
fn replacing_one_tensor_changes_only_that_one() {
    let base = fx("model_sharded");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("plus1");
    let key = "model.norm.weight";
    let r = rewrite_checkpoint(&base, &out, |k, shape, mut v| {
        if k != key {
            return Ok(None);
        }
        assert_eq!(v.len(), shape.iter().product::<usize>());
        v.iter_mut().for_each(|x| *x += 1.0);
        Ok(Some(v))
    })
    .unwrap();
    assert_eq!(r.tensors_replaced, 1);
    let (a, _) = read(&base);
    let (b, _) = read(&out);
    for (k, ta) in &a {
        let tb = &b[k];
        if k == key {
            let (va, vb) = (f32s(&ta.2), f32s(&tb.2));
            assert!(va.iter().zip(&vb).all(|(x, y)| *y == *x + 1.0));
        } else {
            assert_eq!(ta, tb, "{k} changed");
        }
    }
    loads(&out);
}

#[test]
fn bf16_and_f16_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("tiny");
    let x = [1.0f32, -2.5, 0.1, 3.0e-3];
    tiny(&base, &x, &[2, 2]);

    // Values given back unchanged: identical bytes in every dtype.
    let same = tmp.path().join("same");
    let mut keys = Vec::new();
    let r = rewrite_checkpoint(&base, &same, |k, _, v| {
        keys.push(k.to_string());
        Ok(Some(v))
    })
    .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        ["w.bf16", "w.f16", "w.f32"],
        "the I64 tensor is not offered"
    );
    assert_eq!((r.tensors_replaced, r.tensors_kept), (3, 1));
    assert_eq!(read(&base), read(&same));

    // New values are rounded to nearest, ties to even.
    let (h, q) = (2f32.powi(-8), 2f32.powi(-9));
    let new = [1.0 + h, 1.0 + 3.0 * h, 1.0 + q, -2.0 - h];
    let out = tmp.path().join("rounded");
    rewrite_checkpoint(&base, &out, |k, _, v| {
        Ok((k == "w.bf16").then(|| new.to_vec()).or(Some(v)))
    })
    .unwrap();
    let (t, metas) = read(&out);
    let (dtype, shape, bytes) = &t["w.bf16"];
    assert_eq!((*dtype, shape.as_slice()), (Dtype::BF16, &[2usize, 2][..]));
    assert_eq!(decode(Dtype::BF16, bytes), [1.0, 1.0 + 4.0 * h, 1.0, -2.0]);
    assert_eq!(decode(Dtype::F16, &t["w.f16"].2), [0.5, -3.0]);
    assert_eq!(t["ids"], read(&base).0["ids"]);
    assert_eq!(metas[SINGLE].as_ref().unwrap()["format"], "pt");
    assert_eq!(
        std::fs::read(out.join("config.json")).unwrap(),
        b"{\"tiny\": true}\n"
    );
}

#[test]
fn soup_of_a_checkpoint_with_itself_is_itself() {
    let tmp = tempfile::tempdir().unwrap();
    // Two layouts of the same weights: the output takes the first's.
    let out = tmp.path().join("soup");
    let r = soup_checkpoints(&[fx("model"), fx("model_sharded")], None, &out).unwrap();
    assert_eq!(read(&fx("model")), read(&out));
    assert_eq!(other_files(&fx("model")), other_files(&out));
    assert_eq!(
        r.tensors_replaced, 0,
        "identical tensors are copied as they are"
    );
    loads(&out);

    // Bit-exact through the arithmetic too (bf16, two equal weights).
    let base = tmp.path().join("tiny");
    tiny(&base, &[1.0, -2.5, 0.1, 3.0e-3], &[4]);
    let out = tmp.path().join("soup_tiny");
    let src = Source::open(&base).unwrap();
    let r = write_checkpoint(
        &src,
        &out,
        &mut |_, _, mut v: Vec<f32>| {
            v.iter_mut()
                .for_each(|x| *x = (0.5 * *x as f64 + 0.5 * *x as f64) as f32);
            Ok(Some(v))
        },
        false,
    )
    .unwrap();
    assert_eq!(r.tensors_replaced, 3);
    assert_eq!(read(&base), read(&out));
}

#[test]
fn soup_takes_the_weighted_average() {
    let tmp = tempfile::tempdir().unwrap();
    let a = fx("model_sharded");
    let b = tmp.path().join("b");
    // b = 3a + 1, so 0.25 a + 0.75 b = 2.5 a + 0.75.
    rewrite_checkpoint(&a, &b, |_, _, mut v| {
        v.iter_mut().for_each(|x| *x = 3.0 * *x + 1.0);
        Ok(Some(v))
    })
    .unwrap();
    let out = tmp.path().join("soup");
    // Weights are normalised: 1 and 3 are 0.25 and 0.75.
    let r = soup_checkpoints(&[a.clone(), b], Some(&[1.0, 3.0]), &out).unwrap();
    let (ta, ma) = read(&a);
    let (to, mo) = read(&out);
    assert_eq!(ma, mo);
    assert_eq!(r.tensors_replaced, ta.len());
    for (k, t) in &ta {
        let (x, y) = (f32s(&t.2), f32s(&to[k].2));
        for (x, y) in x.iter().zip(&y) {
            let want = 0.25 * *x as f64 + 0.75 * (3.0 * *x + 1.0) as f64;
            assert!(
                (*y as f64 - want).abs() <= 1e-6 * want.abs().max(1.0),
                "{k}"
            );
        }
    }
    loads(&out);
}

#[test]
fn soup_refuses_mismatched_checkpoints() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    tiny(&a, &[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    tiny(&b, &[1.0, 2.0, 3.0, 4.0], &[4]);
    let out = tmp.path().join("soup");
    let e = soup_checkpoints(&[a.clone(), b.clone()], None, &out)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'w.bf16'") && e.contains("[2, 2]") && e.contains("[4]"),
        "{e}"
    );
    assert!(
        e.contains(&a.display().to_string()) && e.contains(&b.display().to_string()),
        "{e}"
    );
    assert!(!out.exists());

    let e = soup_checkpoints(&[a.clone(), fx("model")], None, &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("is in") && e.contains("but not in"), "{e}");
    assert!(!out.exists());
    no_partial(tmp.path());
}

#[test]
fn soup_weights_are_checked() {
    assert_eq!(soup_weights(2, None).unwrap(), [0.5, 0.5]);
    assert_eq!(soup_weights(2, Some(&[1.0, 3.0])).unwrap(), [0.25, 0.75]);
    let e = soup_weights(3, Some(&[0.5, 0.5])).unwrap_err().to_string();
    assert!(e.contains("2 weights for 3 checkpoints"), "{e}");
    let e = soup_weights(2, Some(&[0.5, -0.5])).unwrap_err().to_string();
    assert!(e.contains("weight 2 is -0.5"), "{e}");
    assert!(soup_weights(2, Some(&[0.0, 1.0])).is_err());
    assert!(soup_weights(1, Some(&[f64::NAN])).is_err());
    assert!(soup_weights(0, None).is_err());
}

#[test]
fn existing_out_is_refused_and_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "mine").unwrap();
    let e = rewrite_checkpoint(&fx("model"), &out, |_, _, _| Ok(None))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&out.display().to_string()) && e.contains("not empty"),
        "{e}"
    );
    let e = soup_checkpoints(&[fx("model"), fx("model")], None, &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not empty"), "{e}");
    let names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["keep.txt"]);
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap(),
        "mine"
    );
    no_partial(tmp.path());

    // An existing empty folder is fine.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    rewrite_checkpoint(&fx("model"), &empty, |_, _, _| Ok(None)).unwrap();
    assert!(empty.join(SINGLE).exists());
}

#[test]
fn a_failed_rewrite_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    // Fails on the third shard, after two were written.
    let mut n = 0;
    let e = rewrite_checkpoint(&fx("model_sharded"), &out, |_, _, v| {
        n += 1;
        if n == 80 {
            return Err(GeomError::invalid("stop"));
        }
        Ok(Some(v))
    })
    .unwrap_err();
    assert_eq!(e.to_string(), "stop");
    assert!(!out.exists());
    no_partial(tmp.path());

    let e = rewrite_checkpoint(&fx("model"), &out, |_, _, _| Ok(Some(vec![0.0])))
        .unwrap_err()
        .to_string();
    assert!(e.contains("returned 1 values for shape"), "{e}");
    assert!(!out.exists());
    no_partial(tmp.path());
}

#[test]
fn not_a_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let e = rewrite_checkpoint(tmp.path(), &out, |_, _, _| Ok(None))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a checkpoint folder"), "{e}");
    let e = soup_checkpoints(&[fx("model"), tmp.path().join("nope")], None, &out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope") && e.contains("no such folder"), "{e}");
    assert!(!out.exists());
}

#[test]
fn stray_safetensors_are_not_copied() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    std::fs::create_dir(&base).unwrap();
    for e in std::fs::read_dir(fx("model_sharded")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), base.join(e.file_name())).unwrap();
    }
    std::fs::copy(fx("model").join(SINGLE), base.join(SINGLE)).unwrap();
    std::fs::create_dir(base.join("sub")).unwrap();
    let out = tmp.path().join("out");
    let r = rewrite_checkpoint(&base, &out, |_, _, _| Ok(None)).unwrap();
    assert_eq!(r.files_skipped, [SINGLE]);
    assert!(!out.join(SINGLE).exists() && !out.join("sub").exists());
    loads(&out);
}
