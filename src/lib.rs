//! # geom
//!
//! Layer-wise geometry of multimodal LLM hidden states, as in LCO-Emb
//! (arXiv 2510.11693): anisotropy and kernel alignment (mutual kNN and
//! friends, the CKA family, SVCCA) of every layer's pooled hidden state,
//! read from an HDF5 hidden-state store.
//!
//! The crate is organised as the flow of the data:
//!
//! * [`store`] — the HDF5 hidden-state store (schema version 1): writer with
//!   resume, per-layer reader, `.npy` import.
//! * [`metrics`] — anisotropy, exact cosine kNN, kernel alignment, statistics.
//! * [`layers`] — the `--layers` selection language (`all`, `0,5,10`, `0..12`, `-1`).
//! * [`report`] — tables, JSON and CSV in the documented formats.
//! * [`plot`] — the paper's layer curves (Figures 1–2) and heatmaps.
//! * [`model`] — Qwen2.5-VL in Burn: configuration, checkpoint loading, M-RoPE,
//!   the language decoder with hook-point captures (cargo feature `model`, on by default).
//! * [`cli`] — the `geom` command line.

// Link the system OpenBLAS that ndarray's `blas` feature calls into.
extern crate blas_src;

pub mod cli;
pub mod error;
pub mod layers;
pub mod metrics;
#[cfg(feature = "model")]
pub mod model;
pub mod plot;
pub mod report;
pub mod store;

pub use error::{GeomError, Result};
