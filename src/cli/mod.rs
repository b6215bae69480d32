//! The `geom` command line (clap derive). One file per subcommand; this
//! file parses, dispatches and maps errors to exit codes:
//! 0 success, 2 user error (bad path, layer, value, shape), 1 anything else.

use clap::{Parser, Subcommand};

mod align;
mod anisotropy;
mod common;
mod compare;
#[cfg(feature = "model")]
mod embed;
#[cfg(feature = "model")]
mod extract;
mod figure;
#[cfg(feature = "model")]
mod merge_lora;
mod plot;
mod scatter;
#[cfg(feature = "model")]
mod soup;
#[cfg(feature = "model")]
mod source;
mod store;
#[cfg(feature = "model")]
mod train_cl;

/// Layer-wise geometry of multimodal LLM hidden states.
#[derive(Debug, Parser)]
#[command(name = "geom", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Anisotropy (mean pairwise cosine) per layer and modality.
    Anisotropy(anisotropy::Args),
    /// Kernel alignment (mutual kNN, CKA, ...) between two modalities per layer.
    KernelAlign(align::Args),
    /// Draw figures from results written with --format json or --out.
    Plot(plot::Args),
    /// A figure from a config naming checkpoints and datasets (configs/figures/figure1.toml, figure2.toml).
    Figure(figure::Args),
    /// A checkpoint before and after, side by side: anisotropy and mutual kNN per layer, with differences.
    Compare(compare::Args),
    /// One layer of two modalities projected to a plane (PCA), before and after side by side (the paper's Figure 3).
    Scatter(scatter::Args),
    /// Every layer's pooled hidden state of texts, images and videos, from a checkpoint folder.
    #[cfg(feature = "model")]
    Embed(embed::Args),
    /// Every hidden state of every pair of a manifest, pooled, into a store.
    #[cfg(feature = "model")]
    Extract(extract::Args),
    /// Text-only contrastive learning (InfoNCE) of LoRA adapters on a checkpoint's decoder.
    #[cfg(feature = "model")]
    TrainCl(train_cl::Args),
    /// A base checkpoint with a LoRA adapter merged in, as a full checkpoint folder.
    #[cfg(feature = "model")]
    MergeLora(merge_lora::Args),
    /// Weighted average of checkpoints of one architecture, or of LoRA adapters of one base (a model soup, LCO-Emb Table 2).
    #[cfg(feature = "model")]
    Soup(soup::Args),
    /// Create and inspect hidden-state stores.
    #[command(subcommand)]
    Store(store::Command),
}

/// Runs the CLI with the process arguments; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            if is_user_error(&e) {
                2
            } else {
                1
            }
        }
    }
}

/// Runs a parsed command.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Anisotropy(a) => anisotropy::run(a),
        Command::KernelAlign(a) => align::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Figure(a) => figure::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Scatter(a) => scatter::run(a),
        #[cfg(feature = "model")]
        Command::Embed(a) => embed::run(a),
        #[cfg(feature = "model")]
        Command::Extract(a) => extract::run(a),
        Command::Store(c) => store::run(c),
        #[cfg(feature = "model")]
        Command::Soup(a) => soup::run(a),
        #[cfg(feature = "model")]
        Command::TrainCl(a) => train_cl::run(a),
        #[cfg(feature = "model")]
        Command::MergeLora(a) => merge_lora::run(a),
    }
}

/// The error and its causes on one line, without repeating a cause already
/// contained in its parent's message.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if out.contains(&msg) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&msg);
    }
    out
}

fn is_user_error(e: &anyhow::Error) -> bool {
    e.chain()
        .any(|c| c.downcast_ref::<crate::GeomError>().is_some())
}
