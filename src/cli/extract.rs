//! `geom extract`: a manifest of pairs through a checkpoint into a store.

use std::path::PathBuf;

use crate::data::extract::{extract, ExtractOptions};
use crate::data::preset::resolve_pairs;
use crate::data::Manifest;
use crate::error::GeomError;
use crate::model::{DeviceSpec, Embedder, Pooling};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint folder (Hugging Face layout).
    #[arg(long)]
    model: PathBuf,
    /// The pairs: a JSONL manifest ({"id", "text", "image" | "audio" | "video"} per line), a preset
    /// name (demo, pixmo, msrvtt, audiocaps; data under $GEOM_DATA) or a preset .toml.
    #[arg(long)]
    pairs: String,
    /// Output store (.h5); must not exist unless --resume.
    #[arg(long)]
    out: PathBuf,
    /// Items per forward pass.
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    /// cpu, cpu:flex, cpu:ndarray, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// last (LCO-Emb), mean, or a token position.
    #[arg(long, default_value = "last")]
    pooling: String,
    /// Continue an interrupted store (same model, pairs, prompts and pooling).
    #[arg(long)]
    resume: bool,
    /// Leave out pairs whose files are missing or corrupt (recorded in the store).
    #[arg(long)]
    skip_bad: bool,
    /// Keep the first N pairs (a preset's default: the paper's 1000).
    #[arg(long)]
    limit: Option<usize>,
    /// Keep a seeded random sample of N pairs (the paper used 1000).
    #[arg(long)]
    sample: Option<usize>,
    /// Seed of --sample.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Dataset name recorded in the store (default: the manifest's file name).
    #[arg(long)]
    dataset: Option<String>,
    /// Qwen2.5-Omni: embed each video file with its audio track interleaved
    /// (use_audio_in_video; off by default, as LCO-Emb's embeddings).
    #[arg(long)]
    audio_in_video: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let pooling: Pooling = a.pooling.parse()?;
    let device: DeviceSpec = a.device.parse()?;
    if a.batch_size == 0 {
        return Err(GeomError::invalid("--batch-size must be at least 1").into());
    }
    let pairs = resolve_pairs(&a.pairs)?;
    let mut manifest = Manifest::load(&pairs.manifest)?;
    if let Some(n) = a.limit.or(pairs.limit) {
        manifest = manifest.limit(n);
    }
    if let Some(n) = a.sample {
        manifest = manifest.sample(n, a.seed);
    }
    let dataset = a.dataset.clone().unwrap_or(pairs.dataset);
    let opts = ExtractOptions {
        batch_size: a.batch_size,
        pooling,
        skip_bad: a.skip_bad,
        resume: a.resume,
        progress: true,
        audio_in_video: a.audio_in_video,
    };
    let report = crate::with_backend!(device, |B, dev| {
        let emb = Embedder::<B>::from_dir(&a.model, &dev)?;
        extract(&emb, &a.model, &manifest, &dataset, &a.out, &opts)?
    });
    for (id, line, reason) in &report.skipped {
        eprintln!("skipped pair '{id}' (line {line}): {reason}");
    }
    println!(
        "{}: {} pairs × {} ({} rows computed in {:.1} s){}",
        a.out.display(),
        report.rows,
        manifest.modalities().join(" + "),
        report.computed,
        report.seconds,
        if report.skipped.is_empty() {
            String::new()
        } else {
            format!(
                ", {} pairs skipped (listed above and in the store's 'skipped' attribute)",
                report.skipped.len()
            )
        }
    );
    Ok(())
}
