//! Training: text-only contrastive learning with LoRA (LCO-Emb).
//!
//! * [`data`] — training examples (anchor, positive, optional hard
//!   negative) from JSONL, CSV or TSV;
//! * [`contrastive`] — InfoNCE, AdamW with warmup and cosine decay, the
//!   training loop with checkpoints and resume.

pub mod contrastive;
pub mod data;
