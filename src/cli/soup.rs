//! `geom soup`: a weighted average of checkpoint folders of one
//! architecture (the model soup of LCO-Emb's Table 2).

use std::path::PathBuf;

use crate::error::GeomError;
use crate::model::rewrite::{soup_checkpoints_with, soup_weights};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint folders (Hugging Face layout, same architecture). The
    /// output takes the first one's layout, config, tokenizer and other files.
    #[arg(required = true, num_args = 2.., value_name = "CHECKPOINT")]
    inputs: Vec<PathBuf>,
    /// Output folder; must not exist (or be empty).
    #[arg(long)]
    out: PathBuf,
    /// One positive weight per checkpoint, comma-separated (e.g. 0.5,0.5);
    /// normalised to sum 1. Default: equal weights.
    #[arg(long, allow_hyphen_values = true)]
    weights: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let weights = a.weights.as_deref().map(parse_weights).transpose()?;
    let normalised = soup_weights(a.inputs.len(), weights.as_deref())?;
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
