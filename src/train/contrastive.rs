//! Text-only contrastive learning with LoRA (LCO-Emb, Sections 3 and 4.1).
//!
//! Each text is one user turn `"{text}\nSummarize the above text in one
//! word:"` through the checkpoint's chat template (the LCO text prompt);
//! its embedding is the final hidden state (after the last RMSNorm) of the
//! last token, L2-normalised. The loss is InfoNCE over a micro-batch of n
//! examples: anchor i against the n positives of the batch (in-batch
//! negatives) plus the hard negatives of the examples that have one,
//! logits `cos / τ`, target its own positive.
//!
//! Only LoRA adapters on the decoder's projections train
//! ([`crate::model::layers::lora`]); the optimiser is AdamW (β 0.9/0.999, ε 1e-8)
//! with a linear warmup then cosine decay to zero (transformers'
//! `get_cosine_schedule_with_warmup`), gradient accumulation, and gradient
//! clipping at a global norm (transformers' default 1.0). Everything is
//! seeded: the data order is a function of (seed, epoch) and the dropout
//! RNG is reseeded at every step, so a run resumed from a checkpoint
//! continues exactly as the uninterrupted run would.
//!
//! Output folder: the final adapter in PEFT's format, `train_log.jsonl`
//! (one line per step: loss, learning rate, gradient norm, throughput),
//! `training_args.json`, and `checkpoint-N/` folders (adapter, optimiser
//! moments, step) every `save_steps`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::backend::Autodiff;
use burn::tensor::activation::log_softmax;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::data::Example;
use crate::error::{GeomError, Result};
use crate::model::layers::lora::{Adapter, LoraConfig, ModuleTree};
use crate::model::Architecture;
use crate::model::{CaptureSpec, DeviceSpec, Embedder, Item};

/// Training settings. Defaults follow LCO-Emb's released code where it
/// sets them (r 64, α 128, dropout 0.05, LR 4e-4, warmup 100, max length
/// 650, τ 0.03) and transformers' Trainer otherwise (AdamW β, ε, no weight
/// decay, clipping at 1.0).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Rank.
    pub r: usize,
    /// α.
    pub alpha: f64,
    /// Adapter dropout.
    pub dropout: f64,
    /// Adapted projections.
    pub targets: Vec<String>,
    /// Peak learning rate.
    pub lr: f64,
    /// Warmup steps (linear from 0).
    pub warmup: usize,
    /// Passes over the data (fractions allowed); ignored with `max_steps`.
    pub epochs: f64,
    /// Optimiser steps (overrides `epochs`).
    pub max_steps: Option<usize>,
    /// Examples per micro-batch (the in-batch negatives).
    pub batch_size: usize,
    /// Micro-batches per optimiser step.
    pub grad_accum: usize,
    /// InfoNCE temperature τ.
    pub temperature: f64,
    /// Tokens per text: a longer text keeps its first `max_len` tokens (the
    /// prompt around it is kept whole, as LCO-Emb).
    pub max_len: usize,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Global gradient-norm clip (0: none).
    pub max_grad_norm: f64,
    /// Seed of the adapter init, the data order and dropout.
    pub seed: u64,
    /// Save `checkpoint-N/` every this many steps (0: only the final adapter).
    pub save_steps: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        let l = LoraConfig::default();
        Self {
            r: l.r,
            alpha: l.alpha,
            dropout: l.dropout,
            targets: l.targets,
            lr: 4e-4,
            warmup: 100,
            epochs: 1.0,
            max_steps: None,
            batch_size: 32,
            grad_accum: 1,
            temperature: 0.03,
            max_len: 650,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            seed: 42,
            save_steps: 0,
        }
    }
}

impl TrainOptions {
    /// The adapter configuration.
    pub fn lora(&self) -> LoraConfig {
        LoraConfig {
            r: self.r,
            alpha: self.alpha,
            dropout: self.dropout,
            targets: self.targets.clone(),
            rslora: false,
        }
    }

    fn validate(&self, n_examples: usize) -> Result<()> {
        self.lora().validate()?;
        if self.batch_size < 2 {
            return Err(GeomError::invalid(
                "--batch-size must be at least 2 (the other examples are the negatives)",
            ));
        }
        if self.grad_accum == 0 || self.max_len == 0 {
            return Err(GeomError::invalid(
                "--grad-accum and --max-len must be at least 1",
            ));
        }
        if self.temperature <= 0.0 || !self.temperature.is_finite() {
            return Err(GeomError::invalid(format!(
                "--temperature {} must be > 0",
                self.temperature
            )));
        }
        if self.lr <= 0.0 || !self.lr.is_finite() {
            return Err(GeomError::invalid(format!("--lr {} must be > 0", self.lr)));
        }
        if n_examples < self.batch_size {
            return Err(GeomError::invalid(format!(
                "{n_examples} training examples, fewer than one batch of {}",
                self.batch_size
            )));
        }
        Ok(())
    }

    /// Optimiser steps for `n` examples: an epoch is `n / batch_size` whole
    /// micro-batches (the remainder is left out, as batches never straddle
    /// two epochs); `epochs` of them, `grad_accum` per step, rounded up.
    pub fn total_steps(&self, n: usize) -> usize {
        self.max_steps.unwrap_or_else(|| {
            let micro = (self.epochs * (n / self.batch_size) as f64).round();
            (micro / self.grad_accum as f64).ceil().max(1.0) as usize
        })
    }

    /// Learning rate of step `s` (0-based).
    pub fn lr_at(&self, s: usize, total: usize) -> f64 {
        if s < self.warmup {
            return self.lr * s as f64 / self.warmup.max(1) as f64;
        }
        let progress = (s - self.warmup) as f64 / (total.saturating_sub(self.warmup)).max(1) as f64;
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos())
    }
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Steps taken in this run (after a resume: the remaining ones).
    pub steps: usize,
    /// Total steps of the schedule.
    pub total_steps: usize,
    /// Loss of each step of this run.
    pub losses: Vec<f64>,
    /// In-batch top-1 accuracy ([`top1`]) of each step of this run.
    pub top1: Vec<f64>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Adapters attached.
    pub adapters: usize,
    /// Trainable parameters.
    pub trainable: usize,
    /// The output folder.
    pub out: PathBuf,
}

/// L2-normalised last-token embeddings of texts under the LCO text prompt,
/// `[n, hidden]`, differentiable through the adapters.
pub fn embed_texts<B: Backend>(
    emb: &Embedder<B>,
    texts: &[&str],
    max_len: usize,
) -> Result<Tensor<B, 2>> {
    let items: Vec<Item> = texts.iter().map(|t| Item::text(*t)).collect();
    let inputs = emb.prepare_truncated(&items, Some(max_len))?;
    let out = emb
        .model()
        .forward(&inputs, &CaptureSpec::none(), emb.device())?;
    let [b, t, h] = out.last_hidden_state.dims();
    // Left padding: every row's last token is at position T − 1.
    let last = out
        .last_hidden_state
        .slice([0..b, t - 1..t, 0..h])
        .reshape([b, h]);
    let norm = last
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .sqrt()
        .clamp_min(1e-12);
    Ok(last / norm)
}

/// InfoNCE: anchors `[n, d]` against candidates `[m, d]` (`m ≥ n`; row i's
/// target is candidate i), logits `a·cᵀ / τ`, mean cross-entropy.
pub fn info_nce<B: Backend>(
    anchors: Tensor<B, 2>,
    candidates: Tensor<B, 2>,
    tau: f64,
) -> Tensor<B, 1> {
    let [n, _] = anchors.dims();
    let [m, _] = candidates.dims();
    let device = anchors.device();
    let logits = anchors.matmul(candidates.transpose()) / tau;
    let mut onehot = vec![0f32; n * m];
    for i in 0..n {
        onehot[i * m + i] = 1.0;
    }
    let onehot = Tensor::<B, 2>::from_data(TensorData::new(onehot, [n, m]), &device);
    (log_softmax(logits, 1) * onehot).sum().neg() / n as f64
}

/// The fraction of anchors `[n, d]` whose most similar candidate `[m, d]` is
/// their own (candidate i): in-batch top-1 retrieval accuracy. A loss below
/// chance with a top-1 near 1/m means the embeddings crowded together
/// rather than learned to discriminate.
pub fn top1<B: Backend>(anchors: Tensor<B, 2>, candidates: Tensor<B, 2>) -> f64 {
    let [n, _] = anchors.dims();
    let best: Vec<i64> = anchors
        .matmul(candidates.transpose())
        .argmax(1)
        .into_data()
        .convert::<i64>()
        .to_vec()
        .expect("integer indices");
    best.iter()
        .enumerate()
        .filter(|(i, &j)| j == *i as i64)
        .count() as f64
        / n as f64
}

/// One micro-batch's InfoNCE loss (differentiable) and its in-batch top-1
/// accuracy ([`top1`]).
pub struct BatchLoss<B: Backend> {
    /// Mean InfoNCE loss.
    pub loss: Tensor<B, 1>,
    /// In-batch top-1 retrieval accuracy of the anchors.
    pub top1: f64,
}

/// The loss of one micro-batch: anchors, positives, then the negatives that
/// exist, embedded in one padded batch.
pub fn batch_loss<B: Backend>(
    emb: &Embedder<B>,
    batch: &[&Example],
    tau: f64,
    max_len: usize,
) -> Result<BatchLoss<B>> {
    let n = batch.len();
    let mut texts: Vec<&str> = batch.iter().map(|e| e.anchor.as_str()).collect();
    texts.extend(batch.iter().map(|e| e.positive.as_str()));
    texts.extend(batch.iter().filter_map(|e| e.negative.as_deref()));
    let z = embed_texts(emb, &texts, max_len)?;
    let [total, d] = z.dims();
    let anchors = z.clone().slice([0..n, 0..d]);
    let candidates = z.slice([n..total, 0..d]);
    Ok(BatchLoss {
        top1: top1(anchors.clone().detach(), candidates.clone().detach()),
        loss: info_nce(anchors, candidates, tau),
    })
}

/// The example indices of micro-batch `k` (0-based, counted over the whole
/// run): epochs are seeded permutations, batches never straddle two.
fn batch_indices(k: usize, n: usize, batch: usize, seed: u64) -> Vec<usize> {
    let per_epoch = n / batch;
    let (epoch, i) = (k / per_epoch, k % per_epoch);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(
        seed.wrapping_add(epoch as u64),
    ));
    order[i * batch..(i + 1) * batch].to_vec()
}

/// `checkpoint-N/trainer_state.json`.
#[derive(Debug, Serialize, Deserialize)]
struct TrainerState {
    step: usize,
    total_steps: usize,
    options: TrainOptions,
    base_model: String,
}

/// Trains adapters on `examples` for the checkpoint `model_dir` into `out`.
/// With `resume`, continues from the newest `checkpoint-N/` in `out`.
pub fn train_cl(
    model_dir: &Path,
    examples: &[Example],
    out: &Path,
    opts: &TrainOptions,
    device: DeviceSpec,
    resume: bool,
    progress: bool,
) -> Result<TrainReport> {
    opts.validate(examples.len())?;
    crate::with_backend!(device, |B, dev| run::<Autodiff<B>>(
        model_dir, examples, out, opts, &dev, resume, progress
    ))
}

#[allow(clippy::too_many_arguments)]
fn run<B: AutodiffBackend>(
    model_dir: &Path,
    examples: &[Example],
    out: &Path,
    opts: &TrainOptions,
    device: &B::Device,
    resume: bool,
    progress: bool,
) -> Result<TrainReport> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GeomError::Io { path, source }
    };
    let total = opts.total_steps(examples.len());
    let base_model = model_dir.display().to_string();
    // Text-only CL never runs the vision tower: it stays on disk.
    let mut emb = Embedder::<B>::from_dir_text_only(model_dir, device)?;
    // Where to start.
    let mut start = 0;
    let mut moments: Option<Vec<(Vec<f32>, Vec<f32>)>> = None;
    let log_path = out.join("train_log.jsonl");
    if resume {
        let Some((step, dir)) = latest_checkpoint(out)? else {
            return Err(GeomError::invalid(format!(
                "--resume: no checkpoint-N folder in {} (train with --save-steps to write them)",
                out.display()
            )));
        };
        let state: TrainerState = read_json(&dir.join("trainer_state.json"))?;
        if state.options.seed != opts.seed
            || state.options.batch_size != opts.batch_size
            || state.options.r != opts.r
            || state.total_steps != total
        {
            return Err(GeomError::invalid(format!(
                "--resume: {} was written with other settings (seed, batch size, rank or schedule differ); resume with the same command",
                dir.display()
            )));
        }
        let adapter = Adapter::load(&dir)?;
        emb.model_mut().text_mut().attach_adapter(&adapter, device)?;
        moments = Some(read_moments(&dir.join("optimizer.safetensors"))?);
        start = step;
        eprintln!("resuming from {} (step {step} of {total})", dir.display());
    } else {
        if out.join("adapter_model.safetensors").exists() || log_path.exists() {
            return Err(GeomError::invalid(format!(
                "{} already holds a training run; choose another --out, or --resume it",
                out.display()
            )));
        }
        B::seed(device, opts.seed);
        emb.model_mut().text_mut().attach_lora(&opts.lora(), device)?;
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    std::fs::write(
        out.join("training_args.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "base_model": base_model, "examples": examples.len(), "total_steps": total, "options": opts,
        }))
        .expect("serialisable"),
    )
    .map_err(io(out))?;
    emb.model_mut().text_mut().set_lora_training(true);
    let lora = opts.lora();
    // Trainable tensors: every adapter's A and B.
    let mut adapters = 0;
    let mut trainable = 0;
    for (_, p) in emb.model_mut().text_mut().projections_mut() {
        if let Some(l) = p.lora.as_mut() {
            l.a = l.a.clone().require_grad();
            l.b = l.b.clone().require_grad();
            adapters += 1;
            trainable +=
                l.a.dims().iter().product::<usize>() + l.b.dims().iter().product::<usize>();
        }
    }
    let shapes: Vec<[usize; 2]> = params(&mut emb).iter().map(|t| t.dims()).collect();
    let mut m: Vec<Tensor<B::InnerBackend, 2>> = Vec::new();
    let mut v: Vec<Tensor<B::InnerBackend, 2>> = Vec::new();
    for (i, s) in shapes.iter().enumerate() {
        match &moments {
            Some(mv) => {
                m.push(Tensor::from_data(
                    TensorData::new(mv[i].0.clone(), *s),
                    device,
                ));
                v.push(Tensor::from_data(
                    TensorData::new(mv[i].1.clone(), *s),
                    device,
                ));
            }
            None => {
                m.push(Tensor::zeros(*s, device));
                v.push(Tensor::zeros(*s, device));
            }
        }
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(io(&log_path))?;
    let bar = if progress {
        let b = ProgressBar::new(total as u64);
        b.set_style(
            ProgressStyle::with_template(
                "{bar:30} {pos}/{len} steps  {msg}  [{elapsed_precise} < {eta_precise}]",
            )
            .expect("valid template"),
        );
        b.set_position(start as u64);
        b
    } else {
        ProgressBar::hidden()
    };
    let t0 = Instant::now();
    let mut losses = Vec::new();
    let mut top1s = Vec::new();
    let (beta1, beta2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    for step in start..total {
        let ts = Instant::now();
        // Dropout and nothing else draws from the backend RNG: reseeding per
        // step makes a resumed run identical to an uninterrupted one.
        B::seed(
            device,
            opts.seed.wrapping_mul(1_000_003).wrapping_add(step as u64),
        );
        let mut grads: Option<Vec<Tensor<B::InnerBackend, 2>>> = None;
        let (mut loss_sum, mut top1_sum) = (0.0, 0.0);
        for micro in 0..opts.grad_accum {
            let k = step * opts.grad_accum + micro;
            let idx = batch_indices(k, examples.len(), opts.batch_size, opts.seed);
            let batch: Vec<&Example> = idx.iter().map(|&i| &examples[i]).collect();
            let BatchLoss { loss, top1 } =
                batch_loss(&emb, &batch, opts.temperature, opts.max_len)?;
            loss_sum += scalar(loss.clone());
            top1_sum += top1;
            let g = (loss / opts.grad_accum as f64).backward();
            let these: Vec<Tensor<B::InnerBackend, 2>> = params(&mut emb)
                .iter()
                .map(|t| {
                    t.grad(&g)
                        .unwrap_or_else(|| Tensor::zeros(t.dims(), device))
                })
                .collect();
            grads = Some(match grads {
                None => these,
                Some(acc) => acc.into_iter().zip(these).map(|(a, b)| a + b).collect(),
            });
        }
        let mut grads = grads.expect("grad_accum ≥ 1");
        let norm = grads
            .iter()
            .map(|g| scalar(g.clone().powi_scalar(2).sum()))
            .sum::<f64>()
            .sqrt();
        if opts.max_grad_norm > 0.0 && norm > opts.max_grad_norm {
            let c = opts.max_grad_norm / (norm + 1e-6);
            grads = grads.into_iter().map(|g| g * c).collect();
        }
        // AdamW on the inner (non-differentiable) tensors.
        let lr = opts.lr_at(step, total);
        let t = (step + 1) as i32;
        let (bc1, bc2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
        let mut ps = params(&mut emb);
        for (i, g) in grads.into_iter().enumerate() {
            m[i] = m[i].clone() * beta1 + g.clone() * (1.0 - beta1);
            v[i] = v[i].clone() * beta2 + g.powi_scalar(2) * (1.0 - beta2);
            let p = ps[i].clone().inner();
            let update = (m[i].clone() / bc1) / ((v[i].clone() / bc2).sqrt() + eps);
            let p = p.clone() - update * lr - p * (lr * opts.weight_decay);
            *ps[i] = Tensor::from_inner(p).require_grad();
        }
        drop(ps);
        let loss = loss_sum / opts.grad_accum as f64;
        let top1 = top1_sum / opts.grad_accum as f64;
        losses.push(loss);
        top1s.push(top1);
        let n_ex = opts.batch_size * opts.grad_accum;
        let line = serde_json::json!({
            "step": step + 1, "loss": loss, "top1": top1, "lr": lr, "grad_norm": norm,
            "examples_per_s": n_ex as f64 / ts.elapsed().as_secs_f64(),
            "elapsed_s": t0.elapsed().as_secs_f64(),
        });
        writeln!(log, "{line}").map_err(io(&log_path))?;
        bar.set_message(format!(
            "loss {loss:.4}  top-1 {top1:.2}  lr {lr:.2e}  {:.1} ex/s",
            n_ex as f64 / ts.elapsed().as_secs_f64()
        ));
        bar.inc(1);
        if opts.save_steps > 0 && (step + 1) % opts.save_steps == 0 && step + 1 < total {
            let dir = out.join(format!("checkpoint-{}", step + 1));
            save_adapter(&mut emb, &lora, &base_model, &dir)?;
            write_moments(&dir.join("optimizer.safetensors"), &m, &v)?;
            std::fs::write(
                dir.join("trainer_state.json"),
                serde_json::to_string_pretty(&TrainerState {
                    step: step + 1,
                    total_steps: total,
                    options: opts.clone(),
                    base_model: base_model.clone(),
                })
                .expect("serialisable"),
            )
            .map_err(io(&dir))?;
        }
    }
    bar.finish_and_clear();
    save_adapter(&mut emb, &lora, &base_model, out)?;
    Ok(TrainReport {
        steps: total - start,
        total_steps: total,
        losses,
        top1: top1s,
        seconds: t0.elapsed().as_secs_f64(),
        adapters,
        trainable,
        out: out.to_path_buf(),
    })
}

/// A one-element tensor's value.
fn scalar<B: Backend>(t: Tensor<B, 1>) -> f64 {
    use burn::tensor::ElementConversion;
    t.into_scalar().elem::<f64>()
}

/// The trainable tensors, in a fixed order (projections, then A before B).
fn params<B: Backend>(emb: &mut Embedder<B>) -> Vec<&mut Tensor<B, 2>> {
    let mut out = Vec::new();
    for (_, p) in emb.model_mut().text_mut().projections_mut() {
        if let Some(l) = p.lora.as_mut() {
            out.push(&mut l.a);
            out.push(&mut l.b);
        }
    }
    out
}

fn save_adapter<B: Backend>(
    emb: &mut Embedder<B>,
    lora: &LoraConfig,
    base: &str,
    dir: &Path,
) -> Result<()> {
    let mut adapter = emb.model_mut().text_mut().adapter(lora, base)?;
    // PEFT names the decoder after the class it wrapped: Qwen2.5-VL's
    // `model.language_model.layers` (transformers ≥ 4.52), the Omni thinker's
    // `model.layers` (as LCO-Embedding-Omni's adapters).
    adapter.tree = match emb.model().architecture() {
        Architecture::Qwen2_5Vl => ModuleTree::LanguageModel,
        Architecture::Qwen2_5Omni => ModuleTree::Model,
    };
    adapter.save(dir)
}

fn latest_checkpoint(out: &Path) -> Result<Option<(usize, PathBuf)>> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return Ok(None);
    };
    Ok(entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n: usize = name.strip_prefix("checkpoint-")?.parse().ok()?;
            e.path()
                .join("trainer_state.json")
                .exists()
                .then(|| (n, e.path()))
        })
        .max_by_key(|(n, _)| *n))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| GeomError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| GeomError::invalid(format!("{}: {e}", path.display())))
}

fn write_moments<B: Backend>(path: &Path, m: &[Tensor<B, 2>], v: &[Tensor<B, 2>]) -> Result<()> {
    let mut data = Vec::new();
    for (i, (a, b)) in m.iter().zip(v).enumerate() {
        for (name, t) in [("m", a), ("v", b)] {
            let shape = t.dims().to_vec();
            let vals: Vec<f32> = t
                .clone()
                .into_data()
                .convert::<f32>()
                .to_vec()
                .map_err(|e| GeomError::invalid(format!("optimiser state: {e:?}")))?;
            data.push((
                format!("{name}.{i:05}"),
                vals.iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect::<Vec<u8>>(),
                shape,
            ));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = data
        .iter()
        .map(|(k, b, s)| {
            (
                k.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .expect("shape matches"),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path)
        .map_err(|e| GeomError::invalid(format!("{}: {e}", path.display())))
}

fn read_moments(path: &Path) -> Result<Vec<(Vec<f32>, Vec<f32>)>> {
    let bytes = std::fs::read(path).map_err(|source| GeomError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| GeomError::invalid(format!("{}: {e}", path.display())))?;
    let f = |name: &str| -> Result<Vec<f32>> {
        let t = st
            .tensor(name)
            .map_err(|e| GeomError::invalid(format!("{}: {e}", path.display())))?;
        Ok(t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    (0..st.len() / 2)
        .map(|i| Ok((f(&format!("m.{i:05}"))?, f(&format!("v.{i:05}"))?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let o = TrainOptions {
            lr: 1.0,
            warmup: 10,
            ..Default::default()
        };
        assert_eq!(o.lr_at(0, 110), 0.0);
        assert!((o.lr_at(5, 110) - 0.5).abs() < 1e-12);
        assert!((o.lr_at(10, 110) - 1.0).abs() < 1e-12);
        assert!((o.lr_at(60, 110) - 0.5).abs() < 1e-12);
        assert!(o.lr_at(109, 110) < 1e-3);
    }

    #[test]
    fn top1_counts_anchors_whose_own_candidate_is_nearest() {
        type B = crate::model::Cpu;
        let t = |v: Vec<f32>, r: usize| {
            Tensor::<B, 2>::from_data(TensorData::new(v, [r, 2]), &Default::default())
        };
        let anchors = || t(vec![1.0, 0.0, 0.0, 1.0], 2);
        // Own candidates nearest (a hard negative in third place).
        assert_eq!(
            top1(anchors(), t(vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.6], 3)),
            1.0
        );
        // Anchor 0 is nearest to candidate 1, anchor 1 still to its own.
        assert_eq!(top1(anchors(), t(vec![0.5, 0.1, 0.9, 0.8], 2)), 0.5);
        // Neither.
        assert_eq!(top1(anchors(), t(vec![0.0, 1.0, 1.0, 0.0], 2)), 0.0);
    }

    #[test]
    fn epochs_count_whole_batches() {
        let o = |epochs: f64, batch_size: usize, grad_accum: usize| TrainOptions {
            epochs,
            batch_size,
            grad_accum,
            ..Default::default()
        };
        // 700 examples are 21 whole batches of 32: two epochs are 42 steps,
        // not ceil(1400 / 32) = 44 (which would start a third epoch).
        assert_eq!(o(2.0, 32, 1).total_steps(700), 42);
        assert_eq!(o(2.0, 32, 4).total_steps(700), 11);
        assert_eq!(o(0.5, 32, 1).total_steps(700), 11);
        assert_eq!(o(1.0, 700, 1).total_steps(700), 1);
        let capped = TrainOptions {
            max_steps: Some(5),
            ..o(2.0, 32, 1)
        };
        assert_eq!(capped.total_steps(700), 5);
    }

    #[test]
    fn batches_cover_each_epoch_once_and_are_seeded() {
        let n = 10;
        let mut seen: Vec<usize> = (0..5).flat_map(|k| batch_indices(k, n, 2, 7)).collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(batch_indices(3, n, 2, 7), batch_indices(3, n, 2, 7));
        assert_ne!(batch_indices(0, n, 2, 7), batch_indices(5, n, 2, 7)); // epoch 2 reshuffled
    }
}
