//! Text-only contrastive LoRA on Qwen2.5-Omni, end to end: `geom train-cl`
//! on the thinker of a hub-layout checkpoint (bf16 shards, talker and
//! token2wav beside), the adapter in PEFT's key tree for the thinker
//! (`base_model.model.model.layers.N…`, as LCO-Embedding-Omni's), then
//! `geom merge-lora` and `geom soup` writing the whole folder back with every
//! tensor they do not change byte-identical.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::SafeTensors;

fn hub() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen2_5_omni/model_hub")
}

fn geom(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_geom"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every tensor of a folder's safetensors: name → (dtype, shape, bytes).
fn tensors(dir: &Path) -> BTreeMap<String, (String, Vec<usize>, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            let bytes = std::fs::read(&p).unwrap();
            let st = SafeTensors::deserialize(&bytes).unwrap();
            for (name, v) in st.tensors() {
                out.insert(
                    name.to_string(),
                    (format!("{:?}", v.dtype()), v.shape().to_vec(), v.data().to_vec()),
                );
            }
        }
    }
    out
}

#[test]
fn train_cl_merge_and_soup_on_an_omni_hub_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nli.jsonl");
    let rows: Vec<String> = (0..8)
        .map(|i| {
            format!(
                r#"{{"anchor": "A person number {i} walks a dog.", "positive": "Someone walks a dog ({i}).", "negative": "Nobody is outside at {i}."}}"#
            )
        })
        .collect();
    std::fs::write(&data, rows.join("\n")).unwrap();
    let adapter = dir.path().join("adapter");
    let (hub_s, data_s, adapter_s) = (
        hub().to_str().unwrap().to_string(),
        data.to_str().unwrap().to_string(),
        adapter.to_str().unwrap().to_string(),
    );
    ok(&geom(&[
        "train-cl", "--model", &hub_s, "--data", &data_s, "--out", &adapter_s, "--r", "4",
        "--alpha", "8", "--batch-size", "4", "--max-steps", "2", "--lr", "1e-3", "--seed", "1",
    ]));
    // PEFT's key tree of the thinker, every decoder projection adapted.
    let keys: Vec<String> = tensors(&adapter).into_keys().collect();
    assert!(
        keys.iter()
            .all(|k| k.starts_with("base_model.model.model.layers.")),
        "{keys:?}"
    );
    assert_eq!(keys.len(), 3 * 7 * 2, "3 layers × 7 projections × (A, B)");

    // Merge: the decoder's projections change, nothing else does.
    let merged = dir.path().join("merged");
    ok(&geom(&[
        "merge-lora", "--base", &hub_s, "--adapter", &adapter_s, "--out",
        merged.to_str().unwrap(),
    ]));
    let before = tensors(&hub());
    let after = tensors(&merged);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    let mut changed = 0;
    for (k, (dtype, shape, bytes)) in &before {
        let (d2, s2, b2) = &after[k];
        assert_eq!((dtype, shape), (d2, s2), "{k}");
        let adapted = k.starts_with("thinker.model.layers.") && k.ends_with("_proj.weight");
        if adapted {
            changed += usize::from(bytes != b2);
        } else {
            assert_eq!(bytes, b2, "{k} must be byte-identical");
        }
    }
    assert!(changed > 0, "the merge changed no projection");
    for f in ["config.json", "preprocessor_config.json", "chat_template.json", "tokenizer.json"] {
        assert_eq!(
            std::fs::read(hub().join(f)).unwrap(),
            std::fs::read(merged.join(f)).unwrap(),
            "{f}"
        );
    }
    // The merged folder is an Omni checkpoint geom embeds audio with.
    let emb = geom::model::Embedder::<geom::model::Cpu>::from_dir(&merged, &Default::default())
        .unwrap();
    assert_eq!(emb.modalities(), ["text", "image", "audio", "video"]);

    // Soup of the base and the merged folder: again only projections move.
    let soup = dir.path().join("soup");
    ok(&geom(&[
        "soup", "--out", soup.to_str().unwrap(), &hub_s, merged.to_str().unwrap(),
    ]));
    let souped = tensors(&soup);
    for (k, (_, _, bytes)) in &before {
        if !(k.starts_with("thinker.model.layers.") && k.ends_with("_proj.weight")) {
            assert_eq!(bytes, &souped[k].2, "{k} must be byte-identical in the soup");
        }
    }
}
