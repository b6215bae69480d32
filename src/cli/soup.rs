//! `geom soup`: a weighted average of checkpoint folders of one
//! architecture, or of LoRA adapters of one base (the model soup of
//! LCO-Emb's Table 2).

use std::path::{Path, PathBuf};

use crate::error::GeomError;
use crate::model::layers::lora::Adapter;
use crate::checkpoint::soup::soup_adapters;
use crate::checkpoint::rewrite::{soup_checkpoints_with, soup_weights};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint folders (Hugging Face layout, same architecture; the
    /// output takes the first one's layout, config, tokenizer and other
    /// files), or adapter folders (adapter_config.json; the output is an
    /// adapter whose merged update is the weighted average of theirs).
    #[arg(required = true, num_args = 2.., value_name = "CHECKPOINT|ADAPTER")]
    inputs: Vec<PathBuf>,
    /// Output folder; must not exist (or be empty).
    #[arg(long)]
    out: PathBuf,
    /// One positive weight per checkpoint, comma-separated (e.g. 0.5,0.5);
    /// normalised to sum 1. Default: equal weights.
    #[arg(long, allow_hyphen_values = true)]
    weights: Option<String>,
}

/// An adapter folder: it has `adapter_config.json`.
fn is_adapter(dir: &Path) -> bool {
    dir.join("adapter_config.json").is_file()
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let weights = a.weights.as_deref().map(parse_weights).transpose()?;
    let normalised = soup_weights(a.inputs.len(), weights.as_deref())?;
    let adapters = a.inputs.iter().filter(|d| is_adapter(d)).count();
    if adapters == a.inputs.len() {
        return soup_adapter_folders(&a, &normalised);
    }
    if adapters > 0 {
        let (ad, ck) = (
            a.inputs
                .iter()
                .find(|d| is_adapter(d))
                .expect("one adapter"),
            a.inputs.iter().find(|d| !is_adapter(d)).expect("one other"),
        );
        return Err(GeomError::invalid(format!(
            "{} is an adapter folder (adapter_config.json) but {} is not; soup adapters with adapters, or merge each (geom merge-lora) and soup the checkpoints",
            ad.display(),
            ck.display()
        ))
        .into());
    }
    let report = soup_checkpoints_with(&a.inputs, weights.as_deref(), &a.out, true)?;
    for name in &report.files_skipped {
        eprintln!(
            "not copied: {name} (a .safetensors file of {} that is not part of its checkpoint)",
            a.inputs[0].display()
        );
    }
    let w: Vec<String> = normalised.iter().map(|w| format!("{w:.4}")).collect();
    println!(
        "{}: soup of {} checkpoints (weights {}): {} tensors averaged, {} identical in all kept as they are, {} shard(s), {} other files, {:.1} MB written",
        a.out.display(),
        a.inputs.len(),
        w.join(", "),
        report.tensors_replaced,
        report.tensors_kept,
        report.shards,
        report.files_copied.len(),
        report.bytes_written as f64 / 1e6
    );
    Ok(())
}

/// The soup of adapter folders, written as an adapter folder.
fn soup_adapter_folders(a: &Args, weights: &[f64]) -> anyhow::Result<()> {
    crate::checkpoint::rewrite::check_out(&a.out)?;
    let adapters = a
        .inputs
        .iter()
        .map(|d| Adapter::load(d))
        .collect::<Result<Vec<_>, _>>()?;
    let soup = soup_adapters(&adapters, weights)?;
    soup.save(&a.out)?;
    let w: Vec<String> = weights.iter().map(|w| format!("{w:.4}")).collect();
    let ranks: Vec<String> = adapters.iter().map(|d| d.config.r.to_string()).collect();
    let max_rank = soup.modules.values().map(|m| m.r).max().unwrap_or(0);
    println!(
        "{}: soup of {} adapters (weights {}; ranks {} → up to {}): {} modules; merge it with geom merge-lora --base BASE --adapter {}",
        a.out.display(),
        adapters.len(),
        w.join(", "),
        ranks.join(" + "),
        max_rank,
        soup.modules.len(),
        a.out.display()
    );
    Ok(())
}

/// `0.5,0.5` → `[0.5, 0.5]`; signs and ranges are checked by `soup_weights`.
fn parse_weights(s: &str) -> Result<Vec<f64>, GeomError> {
    s.split(',')
        .map(|x| {
            x.trim().parse::<f64>().map_err(|_| {
                GeomError::invalid(format!(
                    "--weights: '{}' is not a number (expected one positive weight per checkpoint, e.g. 0.5,0.5)",
                    x.trim()
                ))
            })
        })
        .collect()
}
