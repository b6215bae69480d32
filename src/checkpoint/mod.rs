//! Checkpoints on disk: reading Hugging Face safetensors (single or
//! sharded, bf16/f16/f32, the key layouts of each architecture), writing
//! them back with tensors replaced (LoRA merges), and model soups of
//! checkpoints or adapters.
//!
//! * [`load`] — [`load::Checkpoint`] (memory-mapped tensors by canonical
//!   name) and [`load::WeightMap`] (every expected tensor taken with its
//!   shape checked; one error listing everything missing or unexpected);
//! * [`rewrite`] — a checkpoint folder copied with some tensors replaced,
//!   and weighted averages of checkpoints;
//! * [`soup`] — weighted averages of PEFT adapters as one adapter.

pub mod load;
pub mod rewrite;
pub mod soup;
