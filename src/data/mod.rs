//! Paired datasets and extraction.
//!
//! * [`manifest`] — the JSONL manifest of pairs (DESIGN.md), `--limit` and
//!   seeded `--sample`;
//! * [`preset`] — named datasets (`--pairs pixmo`) and the data root `GEOM_DATA`;
//! * [`extract`] — pairs through the model into a hidden-state store, with
//!   validation, bounded memory and resume (cargo feature `model`).

#[cfg(feature = "model")]
pub mod extract;
pub mod manifest;
pub mod preset;

pub use manifest::{Manifest, Pair};
