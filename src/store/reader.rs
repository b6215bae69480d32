//! Reading a store: metadata, one layer of one modality at a time.

use std::path::{Path, PathBuf};

use hdf5::types::VarLenUnicode;
use ndarray::{s, Array2};

use super::{default_layer_names, StoreMeta, MODALITIES, STORE_VERSION};
use crate::error::{GeomError, Result};

/// Shape and labels of one modality in a store.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModalityInfo {
    /// Group name (`text`, `image`, ...).
    pub name: String,
    /// Number of hidden states per row (L).
    pub n_layers: usize,
    /// Rows allocated (N).
    pub n_rows: usize,
    /// Rows fully written; only these are read.
    pub rows_done: usize,
    /// Width of each hidden state (D).
    pub dim: usize,
    /// One name per layer.
    pub layer_names: Vec<String>,
    /// Prompt template used for this modality (may be empty).
    pub prompt: String,
}

/// An open store (read-only).
pub struct Store {
    path: PathBuf,
    file: hdf5::File,
    meta: StoreMeta,
    version: u32,
    modalities: Vec<ModalityInfo>,
}

impl Store {
    /// Opens a store and validates its schema.
    ///
    /// Fails with a message naming the file when it is missing, not HDF5, or
    /// not a geom store of a version this build reads.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            return Err(GeomError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file (expected a geom store, .h5)",
                ),
            });
        }
        let not_store = |reason: String| GeomError::NotAStore {
            path: path.to_path_buf(),
            reason,
        };
        // Readers take no file lock: a lock is for writers, and a reader must
        // not fail because some unrelated process inherited a writer's
        // descriptor (locks follow descriptors across fork).
        let file = hdf5::File::with_options()
            .with_access_plist(|p| p.file_locking(false))
            .open(path)
            .map_err(|e| {
                if is_hdf5_signature(path) {
                    GeomError::hdf5(path, e)
                } else {
                    not_store("not an HDF5 file".into())
                }
            })?;
        let version: u32 = file
            .attr("geom_store_version")
            .and_then(|a| a.read_scalar::<u32>())
            .map_err(|_| not_store("the root has no 'geom_store_version' attribute".into()))?;
        if version != STORE_VERSION {
            return Err(not_store(format!(
                "schema version {version}; this geom reads version {STORE_VERSION}"
            )));
        }
        let meta = StoreMeta {
            model: read_str_attr(&file, "model"),
            model_fingerprint: read_str_attr(&file, "model_fingerprint"),
            dataset: read_str_attr(&file, "dataset"),
            pooling: read_str_attr(&file, "pooling"),
            created_by: read_str_attr(&file, "created_by"),
        };
        let mut modalities = Vec::new();
        for name in MODALITIES {
            if !file.link_exists(name) {
                continue;
            }
            let g = file
                .group(name)
                .map_err(|e| not_store(format!("'/{name}' is not a group: {e}")))?;
            let ds = g
                .dataset("hidden")
                .map_err(|_| not_store(format!("'/{name}' has no 'hidden' dataset")))?;
            let shape = ds.shape();
            if shape.len() != 3 {
                return Err(not_store(format!(
                    "'/{name}/hidden' has shape {shape:?}; expected [layers, rows, dim]"
                )));
            }
            let (n_layers, n_rows, dim) = (shape[0], shape[1], shape[2]);
            // `rows_done` is optional for stores written by other tools: absent means complete.
            let rows_done = match g.attr("rows_done") {
                Ok(a) => a
                    .read_scalar::<u64>()
                    .map_err(|e| not_store(format!("'/{name}' attribute rows_done: {e}")))?
                    as usize,
                Err(_) => n_rows,
            };
            if rows_done > n_rows {
                return Err(not_store(format!(
                    "'/{name}' reports rows_done = {rows_done} but holds only {n_rows} rows"
                )));
            }
            let layer_names = g
                .attr("layer_names")
                .and_then(|a| a.read_raw::<VarLenUnicode>())
                .map(|v| v.iter().map(|s| s.as_str().to_string()).collect::<Vec<_>>())
                .ok()
                .filter(|v| v.len() == n_layers)
                .unwrap_or_else(|| default_layer_names(n_layers));
            modalities.push(ModalityInfo {
                name: name.to_string(),
                n_layers,
                n_rows,
                rows_done,
                dim,
                layer_names,
                prompt: read_str_attr(&g, "prompt"),
            });
        }
        if modalities.is_empty() {
            return Err(not_store(format!(
                "no modality group found (expected one of /{})",
                MODALITIES.join(", /")
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            meta,
            version,
            modalities,
        })
    }

    /// A string attribute of the root (empty when absent), e.g. `skipped`.
    pub fn root_attr(&self, name: &str) -> String {
        read_str_attr(&self.file, name)
    }

    /// Path of the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Root attributes.
    pub fn meta(&self) -> &StoreMeta {
        &self.meta
    }

    /// Schema version of the file.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Every modality present, in the order text, image, audio, video.
    pub fn modalities(&self) -> &[ModalityInfo] {
        &self.modalities
    }

    /// Info of one modality, or an error listing those present.
    pub fn modality(&self, name: &str) -> Result<&ModalityInfo> {
        self.modalities
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| GeomError::UnknownModality {
                name: name.to_string(),
                available: self.modality_names().join(", "),
            })
    }

    /// Names of the modalities present.
    pub fn modality_names(&self) -> Vec<String> {
        self.modalities.iter().map(|m| m.name.clone()).collect()
    }

    /// Reads one layer of one modality: the `rows_done` complete rows.
    ///
    /// Only the chunks of that layer are touched.
    ///
    /// # Shapes
    /// returns `[rows_done, D]`.
    pub fn read_layer(&self, modality: &str, layer: usize) -> Result<Array2<f32>> {
        let info = self.modality(modality)?;
        if layer >= info.n_layers {
            return Err(GeomError::LayerOutOfRange {
                layer: layer as i64,
                n_layers: info.n_layers,
            });
        }
        let ds = self
            .file
            .group(modality)
            .and_then(|g| g.dataset("hidden"))
            .map_err(|e| GeomError::hdf5(&self.path, e))?;
        ds.read_slice_2d::<f32, _>(s![layer, 0..info.rows_done, ..])
            .map_err(|e| GeomError::hdf5(&self.path, e))
    }

    /// Pair ids of the `rows_done` complete rows (row indices when the store has no ids).
    pub fn ids(&self, modality: &str) -> Result<Vec<String>> {
        let info = self.modality(modality)?;
        let g = self
            .file
            .group(modality)
            .map_err(|e| GeomError::hdf5(&self.path, e))?;
        match g.dataset("ids") {
            Ok(ds) => {
                let v = ds
                    .read_slice_1d::<VarLenUnicode, _>(s![0..info.rows_done])
                    .map_err(|e| GeomError::hdf5(&self.path, e))?;
                Ok(v.iter().map(|s| s.as_str().to_string()).collect())
            }
            Err(_) => Ok((0..info.rows_done).map(|i| i.to_string()).collect()),
        }
    }
}

/// True when the file starts with the HDF5 signature (at offset 0; user
/// blocks are not considered).
fn is_hdf5_signature(path: &Path) -> bool {
    use std::io::Read;
    let mut sig = [0u8; 8];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut sig))
        .map(|_| sig == *b"\x89HDF\r\n\x1a\n")
        .unwrap_or(false)
}

fn read_str_attr(loc: &hdf5::Location, name: &str) -> String {
    loc.attr(name)
        .and_then(|a| a.read_scalar::<VarLenUnicode>())
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
}
