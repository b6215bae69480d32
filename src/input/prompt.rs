//! LCO-Emb's embedding prompts (LCO-Embedding code; DESIGN.md), as chat
//! messages: one user turn, rendered with the generation prompt; the
//! embedding is the last token's hidden state.

use serde_json::{json, Value};

/// Suffix of the text prompt: `"{text}\nSummarize the above text in one word:"`.
pub const TEXT_SUFFIX: &str = "\nSummarize the above text in one word:";
/// Text after an image: `"<image>\nSummarize the above image in one word:"`.
pub const IMAGE_SUFFIX: &str = "\nSummarize the above image in one word:";
/// Text after a video.
pub const VIDEO_SUFFIX: &str = "\nSummarize the above video in one word:";
/// Text after an audio clip (Qwen2.5-Omni; LCO-Embedding's audio prompt).
pub const AUDIO_SUFFIX: &str = "\nSummarize the above audio in one word:";

/// One user turn embedding `text`.
pub fn text_messages(text: &str) -> Value {
    json!([{"role": "user", "content": [{"type": "text", "text": format!("{text}{TEXT_SUFFIX}")}]}])
}

/// One user turn embedding `n_images` images (in order), then the image suffix.
pub fn image_messages(n_images: usize) -> Value {
    let mut content: Vec<Value> = (0..n_images).map(|_| json!({"type": "image"})).collect();
    content.push(json!({"type": "text", "text": IMAGE_SUFFIX}));
    json!([{"role": "user", "content": content}])
}

/// One user turn embedding a video, then the video suffix.
pub fn video_messages() -> Value {
    json!([{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": VIDEO_SUFFIX}]}])
}
