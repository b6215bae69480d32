//! `geom train-cl`: text-only contrastive learning with LoRA adapters on a
//! checkpoint's language decoder (LCO-Emb), writing a PEFT adapter.

use std::path::PathBuf;

use crate::model::layers::lora::{merge_adapter, Adapter};
use crate::train::contrastive::{train_cl, TrainOptions};
use crate::train::data::load_examples;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The base checkpoint folder (Hugging Face layout).
    #[arg(long)]
    model: PathBuf,
    /// Training data: .jsonl, .csv or .tsv with anchor, positive[, negative] (all-NLI layout).
    #[arg(long)]
    data: PathBuf,
    /// Output folder: the adapter, train_log.jsonl, training_args.json, checkpoint-N/.
    #[arg(long)]
    out: PathBuf,
    /// LoRA rank.
    #[arg(long, default_value_t = 64)]
    r: usize,
    /// LoRA α (the update is scaled by α / r).
    #[arg(long, default_value_t = 128.0)]
    alpha: f64,
    /// Dropout on the adapters' input.
    #[arg(long, default_value_t = 0.05)]
    lora_dropout: f64,
    /// Adapted projections, comma-separated.
    #[arg(
        long,
        default_value = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    )]
    targets: String,
    /// Peak learning rate (AdamW).
    #[arg(long, default_value_t = 4e-4)]
    lr: f64,
    /// Linear warmup steps, then cosine decay to zero.
    #[arg(long, default_value_t = 100)]
    warmup: usize,
    /// Passes over the data.
    #[arg(long, default_value_t = 1.0)]
    epochs: f64,
    /// Optimiser steps (overrides --epochs).
    #[arg(long)]
    max_steps: Option<usize>,
    /// Examples per micro-batch (each one's positive is the others' negative).
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Micro-batches per optimiser step.
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    /// InfoNCE temperature.
    #[arg(long, default_value_t = 0.03)]
    temperature: f64,
    /// Tokens per text (a longer text keeps its first N; the prompt around it stays whole, as LCO-Emb)
    #[arg(long, default_value_t = 650)]
    max_len: usize,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// Clip the global gradient norm (0: off).
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f64,
    /// Seed of the adapter init, data order and dropout.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Write checkpoint-N/ every N steps (0: only the final adapter).
    #[arg(long, default_value_t = 0)]
    save_steps: usize,
    /// Continue from the newest checkpoint-N/ in --out (same command otherwise).
    #[arg(long)]
    resume: bool,
    /// cpu, cpu:flex, cpu:ndarray, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Also write the merged checkpoint (base + adapter) to this folder.
    #[arg(long)]
    merge_into: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let examples = load_examples(&args.data)?;
    let opts = TrainOptions {
        r: args.r,
        alpha: args.alpha,
        dropout: args.lora_dropout,
        targets: args
            .targets
            .split(',')
            .map(|s| s.trim().to_string())
            .collect(),
        lr: args.lr,
        warmup: args.warmup,
        epochs: args.epochs,
        max_steps: args.max_steps,
        batch_size: args.batch_size,
        grad_accum: args.grad_accum,
        temperature: args.temperature,
        max_len: args.max_len,
        weight_decay: args.weight_decay,
        max_grad_norm: args.max_grad_norm,
        seed: args.seed,
        save_steps: args.save_steps,
    };
    let device = args.device.parse()?;
    let n_neg = examples.iter().filter(|e| e.negative.is_some()).count();
    eprintln!(
        "training LoRA (r {}, α {}) on {} examples ({n_neg} with a hard negative) for {} steps",
        opts.r,
        opts.alpha,
        examples.len(),
        opts.total_steps(examples.len())
    );
    let report = train_cl(
        &args.model,
        &examples,
        &args.out,
        &opts,
        device,
        args.resume,
        true,
    )?;
    let (first, last) = (report.losses.first(), report.losses.last());
    if let (Some(f), Some(l)) = (first, last) {
        // Top-1 of one batch moves in steps of 1/batch: mean of up to 10 steps.
        let k = report.top1.len().min(10);
        let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
        let (t0, t1) = (
            mean(&report.top1[..k]),
            mean(&report.top1[report.top1.len() - k..]),
        );
        eprintln!(
            "{} steps in {:.1} s ({} adapters, {} trainable parameters): loss {f:.4} → {l:.4}, in-batch top-1 {t0:.2} → {t1:.2} (mean of the first and last {k} steps); adapter in {}",
            report.steps,
            report.seconds,
            report.adapters,
            report.trainable,
            report.out.display()
        );
    }
    if let Some(dir) = &args.merge_into {
        let adapter = Adapter::load(&args.out)?;
        merge_adapter(&args.model, &adapter, dir, true)?;
        eprintln!("merged checkpoint in {}", dir.display());
    }
    Ok(())
}
