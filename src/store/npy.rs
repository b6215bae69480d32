//! `geom store import`: build a store from `[L, N, D]` `.npy` arrays.

use std::path::{Path, PathBuf};

use ndarray::{s, Array3};
use ndarray_npy::ReadNpyExt;

use super::{check_modality_name, default_layer_names, ModalitySpec, StoreMeta, StoreWriter};
use crate::error::{GeomError, Result};

/// Rows written per batch during import (bounds the extra memory of the copy).
const IMPORT_BATCH: usize = 1024;

/// Imports `.npy` arrays of shape `[L, N, D]` (float32 or float64) into a new store.
///
/// `inputs` pairs a modality name with a file. Every modality must have the
/// same N (rows are pairs); L and D may differ between modalities.
pub fn import_npy(inputs: &[(String, PathBuf)], out: &Path, meta: &StoreMeta) -> Result<()> {
    let mut arrays = Vec::with_capacity(inputs.len());
    for (name, path) in inputs {
        check_modality_name(name)?;
        arrays.push((name.clone(), read_f32_3d(path)?, path.clone()));
    }
    if let Some((first_name, first, first_path)) = arrays.first() {
        for (name, a, path) in &arrays[1..] {
            if a.dim().1 != first.dim().1 {
                return Err(GeomError::invalid(format!(
                    "{}: '{name}' has N = {} rows but {} ('{first_name}') has N = {}; paired modalities need the same N",
                    path.display(),
                    a.dim().1,
                    first_path.display(),
                    first.dim().1
                )));
            }
        }
    }
    let specs: Vec<ModalitySpec> = arrays
        .iter()
        .map(|(name, a, _)| ModalitySpec {
            name: name.clone(),
            n_layers: a.dim().0,
            n_rows: a.dim().1,
            dim: a.dim().2,
            layer_names: default_layer_names(a.dim().0),
            prompt: String::new(),
        })
        .collect();
    let mut w = StoreWriter::create(out, meta, &specs)?;
    for (name, a, _) in &arrays {
        let n = a.dim().1;
        let mut start = 0;
        while start < n {
            let end = (start + IMPORT_BATCH).min(n);
            let ids: Vec<String> = (start..end).map(|i| i.to_string()).collect();
            w.append(name, &ids, a.slice(s![.., start..end, ..]))?;
            start = end;
        }
    }
    w.finish()
}

/// Reads a 3-D float32 or float64 `.npy` file as float32.
fn read_f32_3d(path: &Path) -> Result<Array3<f32>> {
    let open = || {
        std::fs::File::open(path).map_err(|source| GeomError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let err = |message: String| GeomError::Npy {
        path: path.to_path_buf(),
        message,
    };
    match Array3::<f32>::read_npy(open()?) {
        Ok(a) => Ok(a),
        Err(e32) => match Array3::<f64>::read_npy(open()?) {
            Ok(a) => Ok(a.mapv(|v| v as f32)),
            Err(_) => Err(err(format!(
                "cannot read as a float32/float64 array of shape [layers, rows, dim]: {e32}"
            ))),
        },
    }
}
