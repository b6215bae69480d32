//! Model inputs: the checkpoint's tokenizer and chat template, and LCO-Emb's
//! embedding prompts.
//!
//! * [`tokenizer`] — `tokenizer.json` through the `tokenizers` crate, and the
//!   expansion of each `<|image_pad|>` / `<|video_pad|>` into one placeholder
//!   per merged patch, as the Qwen2.5-VL processor does;
//! * [`chat`] — the checkpoint's own Jinja chat template rendered with
//!   minijinja (never a hand-written copy);
//! * [`prompt`] — LCO-Emb's prompts as chat messages;
//! * [`image`] — image and video preprocessing (`preprocessor_config.json`,
//!   `smart_resize`, torchvision's antialiased bicubic resize bit for bit,
//!   normalisation and patch flattening into `pixel_values`), and image /
//!   frame loading.
//! * [`audio`] — audio decoding (WAV, FLAC, MP3, OGG/Vorbis), the mono mix
//!   at 16 kHz, and the Whisper log-mel features of Qwen2.5-Omni.
//! * [`video`] — video files decoded with FFmpeg and sampled as LCO-Emb's
//!   loader does (`qwen_omni_utils.fetch_video`: 2 fps, even frame counts,
//!   its resize), their audio tracks, and folders of frames.

pub mod audio;
pub mod chat;
pub mod image;
pub mod prompt;
pub mod tokenizer;
pub mod video;
