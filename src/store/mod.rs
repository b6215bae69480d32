//! The HDF5 hidden-state store, schema version 1.
//!
//! A store holds, for each modality of a paired dataset, the pooled hidden
//! state of every row at every layer. It is the contract between extraction
//! (expensive) and analysis (cheap): anything that writes this layout — geom,
//! h5py, a `.npy` import — can be analysed.
//!
//! ```text
//! /                      attrs: geom_store_version = 1, model, model_fingerprint,
//!                               dataset, pooling, created_by
//! /<modality>/hidden     float32 [L, N, D], chunked [1, min(N,256), D]
//! /<modality>/ids        variable-length UTF-8 strings [N], the pair id of each row
//! /<modality>            attrs: rows_done (u64), layer_names ([L] strings), prompt
//! ```
//!
//! `<modality>` is one of `text`, `image`, `audio`, `video`. Rows with the same
//! index in two groups are a pair. Rows at index `>= rows_done` are not valid
//! data yet: a writer fills rows in order and advances `rows_done` only after a
//! batch is fully written and flushed, so a store whose writer was killed
//! mid-batch opens and reports the rows that were completed.
//!
//! Layer convention (Hugging Face `output_hidden_states`): index 0 is the
//! embedding output, index i the output of decoder layer i, and the last index
//! is the output after the final norm.

mod npy;
mod reader;
mod writer;

pub use npy::import_npy;
pub use reader::{ModalityInfo, Store};
pub use writer::{ModalitySpec, StoreWriter};

/// The schema version this build reads and writes.
pub const STORE_VERSION: u32 = 1;

/// The modalities a store may hold, in display order.
pub const MODALITIES: [&str; 4] = ["text", "image", "audio", "video"];

/// Rows per chunk along N (the chunk shape is `[1, min(N, CHUNK_ROWS), D]`).
pub const CHUNK_ROWS: usize = 256;

/// Root attributes of a store.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct StoreMeta {
    /// Path or id of the model the states come from.
    pub model: String,
    /// Hash of the model's config and weight index (empty when unknown).
    pub model_fingerprint: String,
    /// Name or path of the paired dataset.
    pub dataset: String,
    /// Pooling used to turn token states into one vector per row (`last`, `mean`, ...).
    pub pooling: String,
    /// Tool and version that created the store (`geom 0.1.0`, `geom import`, ...).
    pub created_by: String,
}

/// Checks that `name` is a modality of schema v1.
pub fn check_modality_name(name: &str) -> crate::Result<()> {
    if MODALITIES.contains(&name) {
        Ok(())
    } else {
        Err(crate::GeomError::invalid(format!(
            "unknown modality '{name}' (expected one of: {})",
            MODALITIES.join(", ")
        )))
    }
}

/// Default layer names for `n_layers` hidden states in the HF convention.
pub fn default_layer_names(n_layers: usize) -> Vec<String> {
    (0..n_layers)
        .map(|i| match i {
            0 => "embeddings".to_string(),
            i if i + 1 == n_layers && n_layers > 1 => format!("layers.{}.final_norm", i - 1),
            i => format!("layers.{}", i - 1),
        })
        .collect()
}
