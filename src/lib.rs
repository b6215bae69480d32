//! # geom
//!
//! Layer-wise geometry of multimodal LLM hidden states, as in LCO-Emb
//! (arXiv 2510.11693): anisotropy and kernel alignment (mutual kNN and
//! friends, the CKA family, SVCCA) of every layer's pooled hidden state,
//! read from an HDF5 hidden-state store.
//!
//! The crate is organised as the flow of the data:
//!
//! * [`data`] — paired-dataset manifests and extraction into stores.
//! * [`store`] — the HDF5 hidden-state store (schema version 1): writer with
//!   resume, per-layer reader, `.npy` import.
//! * [`metrics`] — anisotropy, exact cosine kNN, kernel alignment, statistics.
//! * [`layers`] — the `--layers` selection language (`all`, `0,5,10`, `0..12`, `-1`).
//! * [`report`] — tables, JSON and CSV in the documented formats.
//! * [`plot`] — the paper's layer curves (Figures 1–2) and heatmaps.
//! * [`model`] — Qwen2.5-VL in Burn: checkpoint loading, the vision tower and
//!   the language decoder with hook-point captures, and [`model::Embedder`],
//!   every layer's pooled state of texts, images and videos (cargo feature
//!   `model`, on by default); [`input`] — tokenizer, chat template, image and
//!   video preprocessing.
//! * [`train`] — text-only contrastive learning with LoRA: training examples
//!   (JSONL / CSV / TSV), InfoNCE and the training loop (feature `model`).
//! * [`cli`] — the `geom` command line.

//! ```
//! use geom::metrics::{align, anisotropy, AlignOptions, Metric, ZeroNorm};
//! use ndarray::array;
//!
//! // Four images and their captions, embedded (rows are pairs).
//! let img = array![[1.0f32, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]];
//! let txt = array![[0.8f32, 0.2], [1.0, 0.0], [0.2, 0.8], [0.0, 1.0]];
//! let a = anisotropy(img.view(), ZeroNorm::Error)?;
//! assert!(a > 0.0 && a < 1.0);
//! // Every image's nearest neighbour is its caption's nearest neighbour.
//! let opts = AlignOptions { k: 1, ..Default::default() };
//! assert_eq!(align(Metric::MutualKnn, img.view(), txt.view(), &opts)?, 1.0);
//! # Ok::<(), geom::GeomError>(())
//! ```

// Link the system OpenBLAS that ndarray's `blas` feature calls into.
extern crate blas_src;

#[cfg(feature = "model")]
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod error;
#[cfg(feature = "model")]
pub mod input;
pub mod layers;
pub mod metrics;
#[cfg(feature = "model")]
pub mod model;
pub mod plot;
pub mod report;
pub mod store;
#[cfg(feature = "model")]
pub mod train;

pub use error::{GeomError, Result};
