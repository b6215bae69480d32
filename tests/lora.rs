//! LoRA against PEFT and torch (`tests/fixtures/lora/`, made by
//! `scripts/gen_lora_fixtures.py` with peft 0.21.2, transformers 4.57.6):
//! PEFT adapters merge to PEFT's `merge_and_unload` weights, the InfoNCE
//! loss and its gradients on a fixed batch equal torch's, geom's own
//! adapters round-trip through PEFT's format, and `geom train-cl` →
//! `geom merge-lora` → `geom compare` runs end to end (with resume).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::backend::Autodiff;
use geom::model::layers::lora::{merge_adapter, Adapter};
use geom::model::{Embedder, Flex};
use geom::train::contrastive::batch_loss;
use geom::train::data::Example;
use safetensors::SafeTensors;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/lora")
}

/// Every tensor of a safetensors file as f32 (F32 or F64 stored), with its shape.
fn read_all(path: &Path) -> BTreeMap<String, (Vec<f32>, Vec<usize>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut out = BTreeMap::new();
    for name in st.names() {
        let t = st.tensor(name).unwrap();
        let v: Vec<f32> = match t.dtype() {
            safetensors::Dtype::F32 => t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            safetensors::Dtype::F64 => t
                .data()
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            safetensors::Dtype::I64 => t
                .data()
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            _ => continue,
        };
        out.insert(name.to_string(), (v, t.shape().to_vec()));
    }
    out
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn peft_adapters_merge_to_peft_weights() {
    let base = root().join("tests/fixtures/qwen2_5_vl/model");
    for (adapter, merged) in [
        ("adapter", "merged.safetensors"),
        ("adapter_rslora", "merged_rslora.safetensors"),
    ] {
        let a = Adapter::load(&fixtures().join(adapter)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("merged");
        merge_adapter(&base, &a, &out, false).unwrap();
        let got = read_all(&out.join("model.safetensors"));
        let want = read_all(&fixtures().join(merged));
        let mut worst = 0f32;
        for (k, (w, shape)) in &want {
            let (g, gs) = &got[k];
            assert_eq!(gs, shape, "{k}");
            worst = worst.max(max_abs_diff(g, w));
        }
        assert!(
            worst < 1e-6,
            "{adapter}: merged weights differ from PEFT's by {worst}"
        );
        // Only the adapted tensors changed.
        let before = read_all(&base.join("model.safetensors"));
        for (k, (v, _)) in &got {
            if !want.contains_key(k) {
                assert_eq!(v, &before[k].0, "{k} must be copied unchanged");
            }
        }
        // The merged folder is a checkpoint geom loads.
        geom::model::Qwen2_5Vl::<Flex>::load(&out, &Default::default()).unwrap();
        for f in [
            "config.json",
            "tokenizer.json",
            "chat_template.jinja",
            "preprocessor_config.json",
        ] {
            assert!(out.join(f).exists(), "{f} not copied");
        }
    }
}

type Ad = Autodiff<Flex>;

#[test]
fn infonce_loss_and_gradients_match_torch() {
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("infonce.json")).unwrap())
            .unwrap();
    let want = read_all(&fixtures().join("infonce.safetensors"));
    let device: burn::tensor::Device<Ad> = Default::default();
    let mut emb =
        Embedder::<Ad>::from_dir(&root().join("tests/fixtures/qwen2_5_vl/model"), &device).unwrap();
    let adapter = Adapter::load(&fixtures().join("adapter")).unwrap();
    emb.model_mut()
        .text_mut()
        .attach_adapter(&adapter, &device)
        .unwrap();
    let mut names = Vec::new();
    for (name, p) in emb.model_mut().text_mut().projections_mut() {
        if let Some(l) = p.lora.as_mut() {
            l.a = l.a.clone().require_grad();
            l.b = l.b.clone().require_grad();
            names.push(name);
        }
    }
    assert_eq!(names.len(), 21);
    let triplets = meta["infonce"]["triplets"].as_array().unwrap();
    let examples: Vec<Example> = triplets
        .iter()
        .enumerate()
        .map(|(i, t)| Example {
            anchor: t["anchor"].as_str().unwrap().into(),
            positive: t["positive"].as_str().unwrap().into(),
            negative: t["negative"].as_str().map(String::from),
            line: i + 1,
        })
        .collect();
    let batch: Vec<&Example> = examples.iter().collect();
    // The same token ids as the processor.
    let items: Vec<geom::model::Item> = examples
        .iter()
        .map(|e| e.anchor.as_str())
        .chain(examples.iter().map(|e| e.positive.as_str()))
        .chain(examples.iter().filter_map(|e| e.negative.as_deref()))
        .map(geom::model::Item::text)
        .collect();
    let inputs = emb.prepare(&items).unwrap();
    let ids: Vec<f32> = inputs
        .input_ids
        .concat()
        .iter()
        .map(|&x| x as f32)
        .collect();
    assert_eq!(
        ids, want["input_ids"].0,
        "token ids differ from the processor's"
    );

    let out = batch_loss(&emb, &batch, 0.03, 650).unwrap();
    assert!((0.0..=1.0).contains(&out.top1), "top-1 {}", out.top1);
    let loss = out.loss;
    let got_loss: f64 = loss.clone().into_scalar().into();
    let want_loss = want["loss_f64"].0[0] as f64;
    assert!(
        (got_loss - want_loss).abs() < 1e-4,
        "loss {got_loss} vs torch {want_loss}"
    );
    let grads = loss.backward();
    let mut worst = 0f32;
    for (name, p) in emb.model_mut().text_mut().projections_mut() {
        let Some(l) = &p.lora else { continue };
        let key = format!(
            "grad.base_model.model.{}",
            name.replacen("model.", "model.language_model.", 1)
        );
        for (t, half) in [(&l.a, "lora_A"), (&l.b, "lora_B")] {
            let g = t.grad(&grads).expect("a gradient");
            let [rows, cols] = g.dims();
            let g: Vec<f32> = g.into_data().to_vec().unwrap();
            // Burn's [in, r] / [r, out] are PEFT's transposes.
            let mut gt = vec![0f32; g.len()];
            for i in 0..rows {
                for j in 0..cols {
                    gt[j * rows + i] = g[i * cols + j];
                }
            }
            let (w, _) = &want[&format!("{key}.{half}.weight")];
            worst = worst.max(max_abs_diff(&gt, w));
        }
    }
    assert!(worst < 1e-4, "gradients differ from torch's by {worst}");
    eprintln!(
        "InfoNCE: loss {got_loss:.7} (torch {want_loss:.7}), max gradient difference {worst:.2e}"
    );

    // Pairs only: in-batch negatives, no hard negative.
    let pairs: Vec<Example> = examples
        .iter()
        .map(|e| Example {
            negative: None,
            ..e.clone()
        })
        .collect();
    let batch: Vec<&Example> = pairs.iter().collect();
    let lp: f64 = batch_loss(&emb, &batch, 0.03, 650)
        .unwrap()
        .loss
        .into_scalar()
        .into();
    let want_pairs = want["loss_pairs_f64"].0[0] as f64;
    assert!(
        (lp - want_pairs).abs() < 1e-4,
        "pairs loss {lp} vs torch {want_pairs}"
    );
}

#[test]
fn geom_adapters_round_trip_through_peft_format() {
    let device = Default::default();
    let mut emb =
        Embedder::<Flex>::from_dir(&root().join("tests/fixtures/qwen2_5_vl/model"), &device)
            .unwrap();
    let adapter = Adapter::load(&fixtures().join("adapter")).unwrap();
    emb.model_mut()
        .text_mut()
        .attach_adapter(&adapter, &device)
        .unwrap();
    let cfg = geom::model::layers::lora::LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        ..Default::default()
    };
    let back = emb.model_mut().text_mut().adapter(&cfg, "base").unwrap();
    let dir = tempfile::tempdir().unwrap();
    back.save(dir.path()).unwrap();
    let saved = read_all(&dir.path().join("adapter_model.safetensors"));
    let orig = read_all(&fixtures().join("adapter/adapter_model.safetensors"));
    assert_eq!(
        saved.keys().collect::<Vec<_>>(),
        orig.keys().collect::<Vec<_>>(),
        "PEFT key names"
    );
    for (k, (v, s)) in &orig {
        assert_eq!(&saved[k].1, s, "{k}");
        assert_eq!(&saved[k].0, v, "{k}");
    }
    // An adapter with the model's plain forward: attaching changes the output.
    let items = [geom::model::Item::text("A man is reading a book.")];
    let with = emb
        .hidden_states(&items, geom::model::Pooling::LastToken)
        .unwrap();
    let plain =
        Embedder::<Flex>::from_dir(&root().join("tests/fixtures/qwen2_5_vl/model"), &device)
            .unwrap()
            .hidden_states(&items, geom::model::Pooling::LastToken)
            .unwrap();
    assert_eq!(with[0], plain[0], "the embedding layer has no adapter");
    assert!(max_abs_diff(with[3].as_slice().unwrap(), plain[3].as_slice().unwrap()) > 1e-4);
}

fn geom(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_geom"))
        .args(args)
        .env("GEOM_CACHE", cache)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    String::from_utf8_lossy(&o.stdout).into_owned() + &err
}

/// Loss per step from train_log.jsonl.
/// The loss of every step in `train_log.jsonl`; every line also carries the
/// step's in-batch top-1 accuracy, a fraction.
fn losses(dir: &Path) -> Vec<f64> {
    std::fs::read_to_string(dir.join("train_log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v = serde_json::from_str::<Value>(l).unwrap();
            let top1 = v["top1"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&top1), "{l}");
            v["loss"].as_f64().unwrap()
        })
        .collect()
}

/// train-cl on the demo's NLI sample lowers the loss; merge-lora and
/// compare run on the result; an interrupted run resumed from its
/// checkpoint ends with the same adapter as an uninterrupted one.
#[test]
fn train_merge_compare_and_resume_on_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let demo = geom::data::demo::Demo::materialize_in(&cache).unwrap();
    let base = demo.before().0;
    let nli = demo.nli();
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train-cl",
            "--model",
            base.to_str().unwrap(),
            "--data",
            nli.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--r",
            "8",
            "--alpha",
            "16",
            "--batch-size",
            "16",
            "--max-steps",
            "16",
            "--warmup",
            "2",
            "--lr",
            "1e-3",
            "--seed",
            "3",
        ];
        args.extend_from_slice(extra);
        geom(&args, &cache)
    };
    let a = dir.path().join("a");
    ok(&run(&a, &["--save-steps", "8"]));
    let l = losses(&a);
    assert_eq!(l.len(), 16);
    let head: f64 = l[..4].iter().sum::<f64>() / 4.0;
    let tail: f64 = l[12..].iter().sum::<f64>() / 4.0;
    eprintln!("train-cl on the demo NLI sample: mean loss of steps 1-4 {head:.4}, of steps 13-16 {tail:.4}");
    assert!(tail < head, "training must lower the loss: {l:?}");

    // Resume: a copy of the run stopped after its step-8 checkpoint.
    let b = dir.path().join("b");
    std::fs::create_dir_all(&b).unwrap();
    let ck = a.join("checkpoint-8");
    let b_ck = b.join("checkpoint-8");
    std::fs::create_dir_all(&b_ck).unwrap();
    for f in std::fs::read_dir(&ck).unwrap().flatten() {
        std::fs::copy(f.path(), b_ck.join(f.file_name())).unwrap();
    }
    ok(&run(&b, &["--save-steps", "8", "--resume"]));
    let (wa, wb) = (
        read_all(&a.join("adapter_model.safetensors")),
        read_all(&b.join("adapter_model.safetensors")),
    );
    for (k, (v, _)) in &wa {
        assert!(max_abs_diff(v, &wb[k].0) < 1e-6, "{k}: resumed run differs");
    }
    // Starting over into a used folder is refused.
    let o = run(&a, &[]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Merge, then compare before and after on the demo pairs.
    let merged = dir.path().join("merged");
    ok(&geom(
        &[
            "merge-lora",
            "--base",
            base.to_str().unwrap(),
            "--adapter",
            a.to_str().unwrap(),
            "--out",
            merged.to_str().unwrap(),
        ],
        &cache,
    ));
    let out = ok(&geom(
        &[
            "compare",
            "--before",
            &format!("base={}", base.display()),
            "--after",
            &format!("cl={}", merged.display()),
            "--pairs",
            "demo",
            "--format",
            "json",
        ],
        &cache,
    ));
    let json_line = out.lines().find(|l| l.starts_with('{')).unwrap();
    let j: Value = serde_json::from_str(json_line).unwrap();
    let text = &j["curves"][0];
    assert_eq!(text["name"], "anisotropy text");
    eprintln!(
        "text anisotropy, last layer: before {} after {}",
        text["before"][8], text["after"][8]
    );
}

/// The shipped demo's "after CL" checkpoint (`make demo-after`: geom
/// train-cl, 210 steps) has lower text anisotropy than "before" at the last
/// layer, as text-only CL does in the paper. A short run (the 16 steps
/// above) is not enough: at τ = 0.03 a random model's embeddings first
/// crowd together, then spread (the torch reference,
/// scripts/cl_reference.py, does the same). Image anisotropy is printed.
#[test]
fn demo_after_cl_lowers_text_anisotropy() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(&geom(
        &["compare", "--format", "json"],
        &dir.path().join("cache"),
    ));
    let json_line = out.lines().find(|l| l.starts_with('{')).unwrap();
    let j: Value = serde_json::from_str(json_line).unwrap();
    let curve = |name: &str| {
        let c = j["curves"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no curve {name}: {j}"));
        let last = |k: &str| c[k].as_array().unwrap().last().unwrap().as_f64().unwrap();
        (last("before"), last("after"))
    };
    let (tb, ta) = curve("anisotropy text");
    let (ib, ia) = curve("anisotropy image");
    eprintln!("demo, last layer: text anisotropy {tb:.4} -> {ta:.4}, image {ib:.4} -> {ia:.4}");
    assert!(
        ta < tb - 0.05,
        "text-only CL must lower text anisotropy: {tb} -> {ta}"
    );
}

/// `--max-len` cuts the text, not the prompt: a long text keeps its first N
/// tokens inside a whole prompt (LCO-Emb's collator), so every row still
/// ends with the instruction and the generation prompt.
#[test]
fn max_len_cuts_the_text_and_keeps_the_prompt() {
    use geom::model::Item;
    let dir = root().join("tests/fixtures/qwen2_5_vl/model");
    let emb = Embedder::<Flex>::from_dir_text_only(&dir, &Default::default()).unwrap();
    let tok = emb.tokenizer();
    let long = "a red circle and a blue square on a green background, ".repeat(8);
    let short = "a red circle";
    // Short enough for `short` to stay whole, far too short for `long`.
    let n = tok.encode(short).unwrap().len();
    assert!(tok.encode(&long).unwrap().len() > 2 * n);
    let one = |text: &str, max: Option<usize>| {
        emb.prepare_truncated(&[Item::text(text)], max)
            .unwrap()
            .input_ids[0]
            .clone()
    };
    let whole = one(&long, None);
    let cut = one(&long, Some(n));
    assert!(cut.len() < whole.len(), "{} vs {}", cut.len(), whole.len());
    // Exactly the first n tokens of the text, rendered like any text.
    let first = tok.decode(&tok.encode(&long).unwrap()[..n]).unwrap();
    assert_eq!(cut, one(&first, None));
    // The same prompt ending (instruction, end of turn, assistant header)
    // as the uncut text; a text within the limit is not touched.
    let tail = 10;
    assert_eq!(cut[cut.len() - tail..], whole[whole.len() - tail..]);
    assert_eq!(one(short, Some(n)), one(short, None));
}

/// Bad training data and a bad adapter: one clear error, exit 2.
#[test]
fn bad_training_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let data = dir.path().join("bad.jsonl");
    std::fs::write(
        &data,
        "{\"anchor\": \"a\", \"positive\": \"b\"}\n{\"anchor\": \"c\"}\n",
    )
    .unwrap();
    let base = root().join("tests/fixtures/qwen2_5_vl/model");
    let o = geom(
        &[
            "train-cl",
            "--model",
            base.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            dir.path().join("o").to_str().unwrap(),
        ],
        &cache,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("bad.jsonl:2") && err.contains("positive"),
        "{err}"
    );
    let o = geom(
        &[
            "merge-lora",
            "--base",
            base.to_str().unwrap(),
            "--adapter",
            dir.path().to_str().unwrap(),
            "--out",
            dir.path().join("m").to_str().unwrap(),
        ],
        &cache,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("adapter_config.json"), "{err}");
    assert!(!dir.path().join("m").exists());
}
