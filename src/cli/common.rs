//! Pieces shared by the analysis subcommands: store arguments, output.

use std::path::{Path, PathBuf};

use crate::error::{GeomError, Result};
use crate::report::Format;
use crate::store::Store;

/// A store named on the command line as `[LABEL=]PATH`.
#[derive(Debug, Clone)]
pub struct StoreArg {
    /// Legend label (defaults to the file stem).
    pub label: String,
    /// Path of the store.
    pub path: PathBuf,
}

impl std::str::FromStr for StoreArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (label, path) = match s.split_once('=') {
            Some((l, p)) if !l.is_empty() && !l.contains('/') => (l.to_string(), PathBuf::from(p)),
            _ => {
                let p = PathBuf::from(s);
                let stem = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| s.to_string());
                (stem, p)
            }
        };
        if path.as_os_str().is_empty() {
            return Err(format!("'{s}': expected [LABEL=]PATH"));
        }
        Ok(StoreArg { label, path })
    }
}

/// Opens every store, or the embedded demo pair when none is given (its
/// checkpoints extracted with `extraction`'s device, batch size and cache).
pub fn open_stores(args: &[StoreArg], extraction: &Extraction) -> Result<Vec<(String, Store)>> {
    let args = if args.is_empty() {
        demo_stores(extraction)?
    } else {
        args.to_vec()
    };
    args.iter()
        .map(|a| Ok((a.label.clone(), Store::open(&a.path)?)))
        .collect()
}

/// The embedded demo's stores: its checkpoint pair through the model on its
/// paired sample (extracted once into the cache).
#[cfg(feature = "model")]
fn demo_stores(extraction: &Extraction) -> Result<Vec<StoreArg>> {
    super::source::demo_stores(
        &extraction.device,
        extraction.batch_size,
        extraction.cache_dir.as_deref(),
    )
}

#[cfg(not(feature = "model"))]
fn demo_stores(_: &Extraction) -> Result<Vec<StoreArg>> {
    Err(GeomError::invalid(
        "no --store given, and the embedded demo needs geom built with the `model` feature (the default)",
    ))
}

/// Prints a note when a store says its states are synthetic.
pub fn warn_if_synthetic(label: &str, store: &Store) {
    if store
        .meta()
        .model
        .to_ascii_lowercase()
        .contains("synthetic")
    {
        eprintln!(
            "note: store '{label}' holds synthetic states (model = \"{}\")",
            store.meta().model
        );
    }
}

/// A label made safe for a file name (`before CL` → `before-CL`).
pub fn slug(label: &str) -> String {
    let s: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    s.trim_matches('-').to_string()
}

/// A figure footnote when any of the stores holds synthetic states or the
/// embedded demo's (random-weight) checkpoints.
pub fn synthetic_footnote(stores: &[(String, Store)]) -> Option<String> {
    let models = || stores.iter().map(|(_, s)| s.meta().model.as_str());
    if models().any(|m| m.to_ascii_lowercase().contains("synthetic")) {
        return Some("SYNTHETIC hidden states, not a real model's".to_string());
    }
    #[cfg(feature = "model")]
    if models().any(crate::data::demo::is_demo_model) {
        return crate::data::demo::Demo::materialize()
            .ok()
            .map(|d| d.provenance());
    }
    None
}

/// Prints a result on stdout in the chosen format.
pub fn emit(format: Format, table: String, json: &serde_json::Value, csv: String) {
    match format {
        Format::Table => print!("{table}"),
        Format::Json => println!("{}", serde_json::to_string(json).expect("serialisable")),
        Format::Csv => print!("{csv}"),
    }
}

/// Writes the JSON and CSV results into `dir` as `<stem>.json` and `<stem>.csv`.
pub fn write_results(
    dir: &Path,
    stem: &str,
    json: &serde_json::Value,
    csv: &str,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|source| GeomError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let jp = dir.join(format!("{stem}.json"));
    let cp = dir.join(format!("{stem}.csv"));
    write_file(
        &jp,
        &serde_json::to_string_pretty(json).expect("serialisable"),
    )?;
    write_file(&cp, csv)?;
    Ok(vec![jp, cp])
}

/// Writes a file atomically (temporary file + rename), so an interrupted
/// run never leaves a half-written result in place of an old one.
pub fn write_file(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|source| GeomError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// Parses `a,b,c` modality lists, checking each against the store.
pub fn parse_modalities(spec: Option<&str>, store: &Store) -> Result<Vec<String>> {
    match spec {
        None => Ok(store.modality_names()),
        Some(s) => s
            .split(',')
            .map(|m| {
                let m = m.trim();
                store.modality(m).map(|i| i.name.clone())
            })
            .collect(),
    }
}

/// Prints the paths written.
pub fn report_written(paths: &[PathBuf]) {
    for p in paths {
        eprintln!("wrote {}", p.display());
    }
}

/// `--model DIR --pairs P`: analyse checkpoints directly (their hidden
/// states are extracted into a cache once, then reused).
#[derive(Debug, Clone, clap::Args)]
pub struct ModelSource {
    /// Checkpoint folder, `[LABEL=]DIR` (repeatable; e.g. before=base after=cl). Needs --pairs.
    #[arg(long = "model", value_name = "[LABEL=]DIR")]
    pub models: Vec<StoreArg>,
    #[command(flatten)]
    pub extraction: Extraction,
}

/// How checkpoints given instead of stores are extracted.
#[derive(Debug, Clone, clap::Args)]
pub struct Extraction {
    /// Pairs for checkpoint folders: a preset (demo, pixmo, msrvtt, audiocaps), a manifest .jsonl or a preset .toml.
    #[arg(long)]
    pub pairs: Option<String>,
    /// Device for checkpoint folders: cpu, cpu:flex, cpu:ndarray, cuda or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Items per forward pass when extracting.
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    /// Cache of extracted stores (default $GEOM_CACHE, else $XDG_CACHE_HOME/geom, else ~/.cache/geom).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

impl ModelSource {
    /// The given stores followed by the stores of the given checkpoints.
    pub fn with_stores(&self, stores: &[StoreArg]) -> Result<Vec<StoreArg>> {
        let mut all = stores.to_vec();
        all.extend(self.extraction.stores_of(&self.models)?);
        Ok(all)
    }
}

impl Extraction {
    /// The stores of checkpoint folders (`[LABEL=]DIR`), extracting what
    /// the cache does not hold yet.
    pub fn stores_of(&self, models: &[StoreArg]) -> Result<Vec<StoreArg>> {
        if models.is_empty() {
            if self.pairs.is_some() {
                return Err(GeomError::invalid(
                    "--pairs needs a checkpoint folder (--model DIR) whose hidden states to extract",
                ));
            }
            return Ok(Vec::new());
        }
        #[cfg(feature = "model")]
        return super::source::model_stores(
            models,
            self.pairs.as_deref(),
            &self.device,
            self.batch_size,
            self.cache_dir.as_deref(),
        );
        #[cfg(not(feature = "model"))]
        Err(GeomError::invalid(
            "checkpoint folders need geom built with the `model` feature (the default)",
        ))
    }
}
