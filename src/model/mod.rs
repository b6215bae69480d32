//! Model reimplementations (Qwen2.5-VL first). This version holds the
//! pieces that need no tensor backend: the checkpoint configuration and the
//! M-RoPE position ids; the Burn modules follow.

pub mod config;
pub mod load;
pub mod rope;

pub use config::{Qwen2_5VlConfig, TextConfig, VisionConfig};
