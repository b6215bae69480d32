//! `geom store import` and `geom store info`.

use std::path::PathBuf;

use crate::error::GeomError;
use crate::report::{table, Format};
use crate::store::{import_npy, Store, StoreMeta};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Build a store from [L, N, D] .npy arrays (float32 or float64).
    Import {
        /// Modalities as NAME=FILE pairs, comma-separated: text=a.npy,image=b.npy
        #[arg(long, value_name = "NAME=FILE,...")]
        modality: String,
        /// Output store (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Model the arrays come from (stored as an attribute).
        #[arg(long, default_value = "")]
        model: String,
        /// Dataset the rows come from (stored as an attribute; used as the figure panel title).
        #[arg(long, default_value = "")]
        dataset: String,
        /// Pooling used by the tool that produced the arrays.
        #[arg(long, default_value = "")]
        pooling: String,
    },
    /// Show a store's attributes and modalities.
    Info {
        /// The store.
        store: PathBuf,
        /// table or json.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

pub fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Import {
            modality,
            out,
            model,
            dataset,
            pooling,
        } => {
            let mut inputs = Vec::new();
            for item in modality.split(',') {
                let (name, file) = item.split_once('=').ok_or_else(|| {
                    GeomError::invalid(format!(
                        "--modality item '{item}': expected NAME=FILE (e.g. text=a.npy)"
                    ))
                })?;
                inputs.push((name.trim().to_string(), PathBuf::from(file.trim())));
            }
            let meta = StoreMeta {
                model,
                model_fingerprint: String::new(),
                dataset,
                pooling,
                created_by: format!("geom {} (store import)", env!("CARGO_PKG_VERSION")),
            };
            import_npy(&inputs, &out, &meta)?;
            let store = Store::open(&out)?;
            for m in store.modalities() {
                eprintln!(
                    "imported {}: [{}, {}, {}]",
                    m.name, m.n_layers, m.rows_done, m.dim
                );
            }
            eprintln!("wrote {}", out.display());
            Ok(())
        }
        Command::Info { store, format } => {
            let s = Store::open(&store)?;
            match format {
                Format::Json => {
                    let j = serde_json::json!({
                        "path": store,
                        "geom_store_version": s.version(),
                        "attributes": s.meta(),
                        "modalities": s.modalities(),
                    });
                    println!("{}", serde_json::to_string_pretty(&j)?);
                }
                _ => {
                    let m = s.meta();
                    println!("store    {}", store.display());
                    println!("version  {}", s.version());
                    for (k, v) in [
                        ("model", &m.model),
                        ("fingerprint", &m.model_fingerprint),
                        ("dataset", &m.dataset),
                        ("pooling", &m.pooling),
                        ("created_by", &m.created_by),
                    ] {
                        println!("{k:<8} {}", if v.is_empty() { "-" } else { v });
                    }
                    println!();
                    let headers: Vec<String> = [
                        "modality",
                        "layers",
                        "rows_done",
                        "rows",
                        "dim",
                        "first layer",
                        "last layer",
                    ]
                    .map(String::from)
                    .into();
                    let rows: Vec<Vec<String>> = s
                        .modalities()
                        .iter()
                        .map(|i| {
                            vec![
                                i.name.clone(),
                                i.n_layers.to_string(),
                                i.rows_done.to_string(),
                                i.n_rows.to_string(),
                                i.dim.to_string(),
                                i.layer_names.first().cloned().unwrap_or_default(),
                                i.layer_names.last().cloned().unwrap_or_default(),
                            ]
                        })
                        .collect();
                    print!("{}", table(&headers, &rows));
                }
            }
            Ok(())
        }
    }
}
