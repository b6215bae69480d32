//! `geom merge-lora`: a base checkpoint with a LoRA adapter (geom's or
//! PEFT's) merged into its weights, written as a full checkpoint folder.

use std::path::PathBuf;

use crate::model::layers::lora::{merge_adapter, Adapter};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The base checkpoint folder (Hugging Face layout).
    #[arg(long)]
    base: PathBuf,
    /// The adapter folder (adapter_config.json + adapter_model.safetensors, PEFT's format).
    #[arg(long)]
    adapter: PathBuf,
    /// The merged checkpoint folder to write (must not exist or be empty).
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let adapter = Adapter::load(&args.adapter)?;
    let report = merge_adapter(&args.base, &adapter, &args.out, true)?;
    eprintln!(
        "merged {} adapted projections (r {}, α {}{}) into {}: {} tensors changed, {} copied, {} files copied",
        adapter.modules.len(),
        adapter.config.r,
        adapter.config.lora_alpha,
        if adapter.config.use_rslora { ", rsLoRA" } else { "" },
        args.out.display(),
        report.tensors_replaced,
        report.tensors_kept,
        report.files_copied.len()
    );
    Ok(())
}
