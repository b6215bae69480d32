//! The pieces every model is built from, shared by Qwen2.5-VL and
//! Qwen2.5-Omni (each calls them; nothing is copied between the two):
//!
//! * [`decoder`] — the Qwen2 language decoder (RMSNorm, GQA attention with
//!   M-RoPE, SwiGLU MLP), on `[B·T, hidden]` rows;
//! * [`vision`] — the Qwen2.5 vision tower (patch embedding, 2-D rotary,
//!   window and full attention, patch merger), fused `attn.qkv` (VL) or
//!   separate `attn.q/k/v` (Omni);
//! * [`rotary`] — `x·cos + rotate_half(x)·sin` as one signed permutation;
//! * [`lora`] — the projection layer with an optional LoRA adapter, and
//!   adapters in PEFT's format.

pub mod decoder;
pub mod lora;
pub(crate) mod rotary;
pub mod vision;
