//! Paired datasets and extraction.
//!
//! * [`manifest`] — the JSONL manifest of pairs (DESIGN.md), `--limit` and
//!   seeded `--sample`;
//! * [`preset`] — named datasets (`--pairs pixmo`, `--pairs demo`) and the
//!   data root `GEOM_DATA`;
//! * [`pixmo`] — PixMo-Cap's parquet shards into a manifest (URL images
//!   from a download folder, embedded images written out once);
//! * [`audiocaps`] — AudioCaps' CSVs and a folder of clips into a manifest
//!   (one pair per clip, the downloaders' file names);
//! * [`msrvtt`] — MSR-VTT's 1k-A CSV or `MSRVTT_data.json` and a folder of
//!   videos into a manifest;
//! * [`extract`] — pairs through the model into a hidden-state store, with
//!   validation, bounded memory and resume (cargo feature `model`);
//! * [`cache`] — checkpoints' stores extracted once and reused;
//! * [`demo`] — the embedded default: a tiny checkpoint pair and a paired
//!   sample compiled into the binary (cargo feature `model`).

pub mod audiocaps;
pub mod cache;
mod convert;
#[cfg(feature = "model")]
pub mod demo;
#[cfg(feature = "model")]
pub mod extract;
pub mod manifest;
pub mod msrvtt;
pub mod pixmo;
pub mod preset;

pub use manifest::{Manifest, Pair};
