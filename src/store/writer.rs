//! Writing a store: create, append batches of rows for all layers, resume.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use ndarray::{s, Array1, ArrayView3};

use super::{check_modality_name, StoreMeta, CHUNK_ROWS, STORE_VERSION};
use crate::error::{GeomError, Result};

/// Shape and labels of one modality's group, fixed at creation.
#[derive(Debug, Clone)]
pub struct ModalitySpec {
    /// `text`, `image`, `audio` or `video`.
    pub name: String,
    /// Number of hidden states per row (L).
    pub n_layers: usize,
    /// Number of rows the store will hold (N).
    pub n_rows: usize,
    /// Width of each hidden state (D).
    pub dim: usize,
    /// One readable name per layer (length L).
    pub layer_names: Vec<String>,
    /// The prompt template used to embed this modality (may be empty).
    pub prompt: String,
}

/// Appends rows to a store, one batch at a time, for every layer at once.
///
/// Space for all `N` rows is allocated when the store is created, so writing a
/// batch only writes raw data; `rows_done` is advanced and the file flushed
/// after each batch. A process killed mid-batch leaves a store whose
/// `rows_done` counts only completed batches; [`StoreWriter::resume`] reopens
/// it and the next [`StoreWriter::append`] continues from there.
pub struct StoreWriter {
    path: PathBuf,
    file: hdf5::File,
}

impl StoreWriter {
    /// Creates a new store at `path` (fails if the file exists).
    pub fn create(path: &Path, meta: &StoreMeta, modalities: &[ModalitySpec]) -> Result<Self> {
        if path.exists() {
            return Err(GeomError::invalid(format!(
                "{}: already exists; refusing to overwrite a store (delete it or choose another --out)",
                path.display()
            )));
        }
        if modalities.is_empty() {
            return Err(GeomError::invalid("a store needs at least one modality"));
        }
        for (i, m) in modalities.iter().enumerate() {
            check_modality_name(&m.name)?;
            if modalities[..i].iter().any(|o| o.name == m.name) {
                return Err(GeomError::invalid(format!(
                    "modality '{}' given twice",
                    m.name
                )));
            }
            if m.n_layers == 0 || m.n_rows == 0 || m.dim == 0 {
                return Err(GeomError::invalid(format!(
                    "modality '{}': shape [L={}, N={}, D={}] must have every dimension >= 1",
                    m.name, m.n_layers, m.n_rows, m.dim
                )));
            }
            if m.layer_names.len() != m.n_layers {
                return Err(GeomError::invalid(format!(
                    "modality '{}': {} layer names for {} layers",
                    m.name,
                    m.layer_names.len(),
                    m.n_layers
                )));
            }
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| GeomError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let h = |e: hdf5::Error| GeomError::hdf5(path, e);
        let file = hdf5::File::create_excl(path).map_err(h)?;
        write_str_attr(&file, "model", &meta.model).map_err(h)?;
        write_str_attr(&file, "model_fingerprint", &meta.model_fingerprint).map_err(h)?;
        write_str_attr(&file, "dataset", &meta.dataset).map_err(h)?;
        write_str_attr(&file, "pooling", &meta.pooling).map_err(h)?;
        write_str_attr(&file, "created_by", &meta.created_by).map_err(h)?;
        file.new_attr::<u32>()
            .create("geom_store_version")
            .and_then(|a| a.write_scalar(&STORE_VERSION))
            .map_err(h)?;
        for m in modalities {
            let g = file.create_group(&m.name).map_err(h)?;
            g.new_dataset::<f32>()
                .shape([m.n_layers, m.n_rows, m.dim])
                .chunk([1, m.n_rows.min(CHUNK_ROWS), m.dim])
                .alloc_time(Some(hdf5::plist::dataset_create::AllocTime::Early))
                .create("hidden")
                .map_err(h)?;
            g.new_dataset::<VarLenUnicode>()
                .shape([m.n_rows])
                .create("ids")
                .map_err(h)?;
            g.new_attr::<u64>()
                .create("rows_done")
                .and_then(|a| a.write_scalar(&0u64))
                .map_err(h)?;
            let names: Array1<VarLenUnicode> = m
                .layer_names
                .iter()
                .map(|s| to_vlu(s))
                .collect::<Result<_>>()?;
            g.new_attr::<VarLenUnicode>()
                .shape([m.n_layers])
                .create("layer_names")
                .and_then(|a| a.write(&names))
                .map_err(h)?;
            write_str_attr(&g, "prompt", &m.prompt).map_err(h)?;
        }
        file.flush().map_err(h)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Reopens an existing store for appending (after an interruption).
    pub fn resume(path: &Path) -> Result<Self> {
        // Validate the schema through the reader first (clear errors).
        drop(super::Store::open(path)?);
        let file = hdf5::File::open_rw(path).map_err(|e| GeomError::hdf5(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// Sets a string attribute on the root (extra metadata beyond schema
    /// v1, such as the pairs an extraction skipped); flushed at once.
    pub fn set_root_attr(&mut self, name: &str, value: &str) -> Result<()> {
        let h = |e: hdf5::Error| GeomError::hdf5(&self.path, e);
        if self.file.attr(name).is_ok() {
            self.file.delete_attr(name).map_err(h)?;
        }
        write_str_attr(&self.file, name, value).map_err(h)?;
        self.file.flush().map_err(h)
    }

    /// Path of the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows of `modality` fully written so far.
    pub fn rows_done(&self, modality: &str) -> Result<usize> {
        let g = self.group(modality)?;
        let v: u64 = g
            .attr("rows_done")
            .and_then(|a| a.read_scalar())
            .map_err(|e| GeomError::hdf5(&self.path, e))?;
        Ok(v as usize)
    }

    /// Appends a batch of rows for every layer of `modality`.
    ///
    /// # Shapes
    /// * `hidden`: `[L, B, D]` — the B new rows at every layer;
    /// * `ids`: `[B]` — their pair ids.
    ///
    /// The rows land at `rows_done .. rows_done + B`; `rows_done` is advanced
    /// (and the file flushed) only after the whole batch is on disk.
    pub fn append(
        &mut self,
        modality: &str,
        ids: &[String],
        hidden: ArrayView3<f32>,
    ) -> Result<()> {
        let g = self.group(modality)?;
        let h = |e: hdf5::Error| GeomError::hdf5(&self.path, e);
        let ds = g.dataset("hidden").map_err(h)?;
        let shape = ds.shape();
        let (l, n, d) = (shape[0], shape[1], shape[2]);
        let (bl, b, bd) = hidden.dim();
        if bl != l || bd != d || ids.len() != b {
            return Err(GeomError::invalid(format!(
                "{}: batch for '{modality}' has shape [{bl}, {b}, {bd}] with {} ids; the store expects [{l}, B, {d}] with B ids",
                self.path.display(),
                ids.len()
            )));
        }
        let start = self.rows_done(modality)?;
        if start + b > n {
            return Err(GeomError::invalid(format!(
                "{}: appending {b} rows to '{modality}' at row {start} would exceed its {n} rows",
                self.path.display()
            )));
        }
        let contiguous = hidden.as_standard_layout();
        ds.write_slice(&contiguous, s![.., start..start + b, ..])
            .map_err(h)?;
        let id_arr: Array1<VarLenUnicode> = ids.iter().map(|s| to_vlu(s)).collect::<Result<_>>()?;
        g.dataset("ids")
            .and_then(|d| d.write_slice(&id_arr, s![start..start + b]))
            .map_err(h)?;
        self.file.flush().map_err(h)?;
        abort_for_test(start + b);
        g.attr("rows_done")
            .and_then(|a| a.write_scalar(&((start + b) as u64)))
            .map_err(h)?;
        self.file.flush().map_err(h)?;
        Ok(())
    }

    /// Flushes and closes the store.
    pub fn finish(self) -> Result<()> {
        self.file
            .flush()
            .map_err(|e| GeomError::hdf5(&self.path, e))
    }

    fn group(&self, modality: &str) -> Result<hdf5::Group> {
        self.file
            .group(modality)
            .map_err(|_| GeomError::UnknownModality {
                name: modality.to_string(),
                available: self.file.member_names().unwrap_or_default().join(", "),
            })
    }
}

/// Test hook: `GEOM_TEST_ABORT_AFTER_ROWS=n` aborts the process (no
/// destructors, no flush — as SIGKILL would) once a batch reaching row `n`
/// has been written but before `rows_done` is advanced. Used by the
/// interruption tests; never set it otherwise.
fn abort_for_test(rows_written: usize) {
    if let Ok(v) = std::env::var("GEOM_TEST_ABORT_AFTER_ROWS") {
        if v.parse::<usize>().is_ok_and(|n| rows_written >= n) {
            std::process::abort();
        }
    }
}

pub(crate) fn to_vlu(s: &str) -> Result<VarLenUnicode> {
    s.parse::<VarLenUnicode>()
        .map_err(|e| GeomError::invalid(format!("cannot store string {s:?}: {e}")))
}

fn write_str_attr(loc: &hdf5::Location, name: &str, value: &str) -> hdf5::Result<()> {
    let v: VarLenUnicode = value
        .parse()
        .map_err(|e| hdf5::Error::from(format!("{e}")))?;
    loc.new_attr::<VarLenUnicode>()
        .create(name)?
        .write_scalar(&v)
}
