//! The public entry point: every layer's pooled hidden state of a list of
//! texts, images and videos, from a checkpoint folder.
//!
//! ```no_run
//! use geom::model::embed::{Embedder, Item};
//! use geom::model::{Cpu, Pooling};
//!
//! let device = Default::default();
//! let emb = Embedder::<Cpu>::from_dir("Qwen2.5-VL-3B-Instruct".as_ref(), &device)?;
//! let items = vec![
//!     Item::text("A dog runs on the beach."),
//!     Item::image_file("dog.jpg".as_ref())?,
//! ];
//! let states = emb.hidden_states(&items, Pooling::LastToken)?;
//! assert_eq!(states.len(), emb.model().n_hidden_states()); // L + 1 layers
//! let (n, d) = states[0].dim(); // one row per item
//! # Ok::<(), geom::GeomError>(())
//! ```
//!
//! Each item is wrapped in its LCO-Emb prompt ([`Prompts`], overridable),
//! rendered with the checkpoint's chat template and the generation prompt,
//! tokenized with the checkpoint's tokenizer; images and videos go through
//! the checkpoint's image processor settings; the batch is left-padded as
//! the reference processor does (`padding_side="left"`); the states are
//! transformers' `output_hidden_states` (index 0 = embeddings, last = after
//! the final norm), pooled per item.

use std::path::Path;

use burn::tensor::backend::Backend;
use ndarray::Array2;
use serde_json::{json, Value};

use super::auto::AutoModel;
use super::batch::ModelInputs;
use super::capture::{CaptureSpec, Pooling};
use super::qwen2_5_omni::audio::output_tokens;
use super::qwen2_5_omni::rope::chunked_index;
use crate::error::{GeomError, Result};
use crate::input::audio::{self, WhisperFeatureConfig};
use crate::input::chat::ChatTemplate;
use ::image::RgbImage;

use crate::input::image::{self, ImageProcessorConfig};
use crate::input::prompt;
use crate::input::tokenizer::{expand_placeholders, Tokenizer};

/// One thing to embed.
#[derive(Debug, Clone)]
pub enum Item {
    /// A text.
    Text(String),
    /// One or more images in one prompt.
    Images(Vec<RgbImage>),
    /// A video as frames, with its frame rate (`None` = the processor's 2.0).
    Video {
        /// Frames in order (all are used).
        frames: Vec<RgbImage>,
        /// Frames per second of `frames`.
        fps: Option<f64>,
        /// Qwen2.5-Omni: the clip's audio track (16 kHz mono), interleaved
        /// with the frames (`use_audio_in_video`); `None` = frames only.
        audio: Option<Vec<f32>>,
    },
    /// An audio clip, 16 kHz mono samples (Qwen2.5-Omni).
    Audio(Vec<f32>),
}

impl Item {
    /// A text item.
    pub fn text(s: impl Into<String>) -> Self {
        Item::Text(s.into())
    }

    /// One image read from a file (PNG or JPEG).
    pub fn image_file(path: &Path) -> Result<Self> {
        Ok(Item::Images(vec![image::load_image(path)?]))
    }

    /// A video from frame files or folders of frames (sorted by name).
    pub fn video_frames<P: AsRef<Path>>(paths: &[P], fps: Option<f64>) -> Result<Self> {
        Ok(Item::Video {
            frames: image::load_frames(paths)?,
            fps,
            audio: None,
        })
    }

    /// An audio clip read from a file (WAV, FLAC, MP3, OGG/Vorbis), mixed to
    /// mono and resampled to 16 kHz.
    pub fn audio_file(path: &Path) -> Result<Self> {
        Ok(Item::Audio(audio::load_audio(path)?))
    }
}

/// The prompt around each modality. `{text}` in `text` is replaced by the
/// item's text; `image` and `video` are the text after the image(s)/video.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompts {
    /// Text prompt, with a `{text}` slot.
    pub text: String,
    /// Text after the image(s).
    pub image: String,
    /// Text after the video.
    pub video: String,
    /// Text after the audio clip (Qwen2.5-Omni).
    pub audio: String,
}

impl Default for Prompts {
    /// LCO-Emb's prompts.
    fn default() -> Self {
        Self {
            text: format!("{{text}}{}", prompt::TEXT_SUFFIX),
            image: prompt::IMAGE_SUFFIX.to_string(),
            video: prompt::VIDEO_SUFFIX.to_string(),
            audio: prompt::AUDIO_SUFFIX.to_string(),
        }
    }
}

impl Prompts {
    /// The chat messages of one item.
    pub fn messages(&self, item: &Item) -> Value {
        let content: Vec<Value> = match item {
            Item::Text(t) => vec![json!({"type": "text", "text": self.text.replace("{text}", t)})],
            Item::Images(imgs) => imgs
                .iter()
                .map(|_| json!({"type": "image"}))
                .chain([json!({"type": "text", "text": self.image})])
                .collect(),
            Item::Video { .. } => vec![
                json!({"type": "video"}),
                json!({"type": "text", "text": self.video}),
            ],
            Item::Audio(_) => vec![
                json!({"type": "audio"}),
                json!({"type": "text", "text": self.audio}),
            ],
        };
        json!([{"role": "user", "content": content}])
    }
}

/// The placeholder tokens and processor settings of an architecture.
#[derive(Debug, Clone)]
struct Placeholders {
    image: &'static str,
    video: &'static str,
    /// Qwen2.5-Omni only.
    audio: Option<Omni>,
}

/// What Qwen2.5-Omni's processor adds (`processing_qwen2_5_omni.py`).
#[derive(Debug, Clone)]
struct Omni {
    /// The Whisper feature extractor's settings.
    features: WhisperFeatureConfig,
    position_id_per_seconds: f64,
    seconds_per_chunk: f64,
}

/// `Qwen2_5OmniProcessor`'s own video frame size, which overrides the video
/// processor's config (`videos_kwargs.size` in its `_defaults`).
const OMNI_VIDEO_MIN_PIXELS: usize = 128 * 28 * 28;
/// See [`OMNI_VIDEO_MIN_PIXELS`].
const OMNI_VIDEO_MAX_PIXELS: usize = 768 * 28 * 28;

/// A checkpoint with its tokenizer, chat template and media processors.
pub struct Embedder<B: Backend> {
    model: AutoModel<B>,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    image_cfg: ImageProcessorConfig,
    video_cfg: ImageProcessorConfig,
    placeholders: Placeholders,
    pad_id: u32,
    prompts: Prompts,
    device: B::Device,
}

impl<B: Backend> Embedder<B> {
    /// Loads everything from a Hugging Face checkpoint folder of any
    /// supported architecture (Qwen2.5-VL, Qwen2.5-Omni).
    pub fn from_dir(dir: &Path, device: &B::Device) -> Result<Self> {
        Self::with_model(dir, AutoModel::load(dir, device)?, device)
    }

    /// [`Embedder::from_dir`] without the media encoders
    /// ([`AutoModel::load_text_only`]): texts only.
    pub fn from_dir_text_only(dir: &Path, device: &B::Device) -> Result<Self> {
        Self::with_model(dir, AutoModel::load_text_only(dir, device)?, device)
    }

    fn with_model(dir: &Path, model: AutoModel<B>, device: &B::Device) -> Result<Self> {
        let tokenizer = Tokenizer::from_dir(dir)?;
        let template = ChatTemplate::from_dir(dir)?;
        let image_cfg = ImageProcessorConfig::from_dir(dir)?;
        let mut video_cfg = ImageProcessorConfig::video_from_dir(dir)?;
        let placeholders = match &model {
            AutoModel::Qwen2_5Vl(_) => Placeholders {
                image: "<|image_pad|>",
                video: "<|video_pad|>",
                audio: None,
            },
            AutoModel::Qwen2_5Omni(m) => {
                video_cfg.min_pixels = OMNI_VIDEO_MIN_PIXELS;
                video_cfg.max_pixels = OMNI_VIDEO_MAX_PIXELS;
                Placeholders {
                    image: "<|IMAGE|>",
                    video: "<|VIDEO|>",
                    audio: Some(Omni {
                        features: WhisperFeatureConfig::from_dir(dir)?,
                        position_id_per_seconds: m.config().position_id_per_seconds,
                        seconds_per_chunk: m.config().seconds_per_chunk,
                    }),
                }
            }
        };
        let pad_id = pad_token(dir, &tokenizer)?;
        Ok(Self {
            model,
            tokenizer,
            template,
            image_cfg,
            video_cfg,
            placeholders,
            pad_id,
            prompts: Prompts::default(),
            device: device.clone(),
        })
    }

    /// Replaces the LCO-Emb prompts.
    pub fn with_prompts(mut self, prompts: Prompts) -> Self {
        self.prompts = prompts;
        self
    }

    /// The checkpoint's tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The model.
    pub fn model(&self) -> &AutoModel<B> {
        &self.model
    }

    /// The model, to attach adapters ([`super::layers::lora`]).
    pub fn model_mut(&mut self) -> &mut AutoModel<B> {
        &mut self.model
    }

    /// The device the model lives on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// The video processor's settings, to change (e.g. `min_pixels` /
    /// `max_pixels`, as the processor's `videos_kwargs.size` does).
    pub fn video_config_mut(&mut self) -> &mut ImageProcessorConfig {
        &mut self.video_cfg
    }

    /// Qwen2.5-Omni: the Whisper feature extractor's settings (from the
    /// checkpoint's `preprocessor_config.json`), to change (e.g.
    /// `chunk_length`); `None` for a model without audio.
    pub fn audio_features_mut(&mut self) -> Option<&mut WhisperFeatureConfig> {
        self.placeholders.audio.as_mut().map(|o| &mut o.features)
    }

    /// The prompts in use.
    pub fn prompts(&self) -> &Prompts {
        &self.prompts
    }

    /// The modalities this checkpoint embeds.
    pub fn modalities(&self) -> &'static [&'static str] {
        if self.placeholders.audio.is_some() {
            &["text", "image", "audio", "video"]
        } else {
            &["text", "image", "video"]
        }
    }

    /// The rendered prompt of an item (before placeholder expansion).
    pub fn render(&self, item: &Item) -> Result<String> {
        self.template.render(&self.prompts.messages(item), true)
    }

    /// Tokenizes and preprocesses a batch as the reference processor
    /// (`padding=True, padding_side="left"`).
    pub fn prepare(&self, items: &[Item]) -> Result<ModelInputs> {
        self.prepare_truncated(items, None)
    }

    /// [`Self::prepare`], with every text cut to its first `max_len` tokens
    /// before it goes into the prompt, as LCO-Emb's training collator does
    /// (`tokenizer(text).input_ids[:max_length]`, decoded, then templated):
    /// the instruction suffix and the generation prompt are always kept, so
    /// the last token is the same as for a short text. Media are never cut.
    ///
    /// Qwen2.5-Omni: each `<|AUDIO|>` becomes one placeholder per audio
    /// token; a video with its audio track (`Item::Video { audio: Some(..) }`)
    /// becomes `<|vision_bos|><|audio_bos|>`, video and audio placeholders
    /// interleaved per `seconds_per_chunk`, `<|audio_eos|><|vision_eos|>`
    /// (`use_audio_in_video`, which then holds for the whole batch, as the
    /// processor's flag does: every video of the batch needs its audio).
    pub fn prepare_truncated(&self, items: &[Item], max_len: Option<usize>) -> Result<ModelInputs> {
        if items.is_empty() {
            return Err(GeomError::invalid("nothing to embed: the batch is empty"));
        }
        let merge = self.model.vision_config().spatial_merge_size;
        let unit = merge * merge;
        let ph = &self.placeholders;
        let videos = items.iter().filter(|i| matches!(i, Item::Video { .. }));
        let with_audio = videos
            .clone()
            .filter(|i| matches!(i, Item::Video { audio: Some(_), .. }))
            .count();
        let in_video = with_audio > 0;
        if in_video && with_audio != videos.count() {
            return Err(GeomError::invalid(
                "some videos of the batch have their audio track and some do not: \
                 use_audio_in_video holds for a whole batch (embed them in separate batches)",
            ));
        }
        let omni = ph.audio.as_ref();
        if omni.is_none() && (in_video || items.iter().any(|i| matches!(i, Item::Audio(_)))) {
            return Err(GeomError::invalid(
                "this checkpoint (Qwen2.5-VL) has no audio encoder: audio needs a Qwen2.5-Omni checkpoint",
            ));
        }
        let mut inputs = ModelInputs {
            use_audio_in_video: in_video,
            ..Default::default()
        };
        let mut clips: Vec<Vec<f32>> = Vec::new();
        let mut rows = Vec::with_capacity(items.len());
        for item in items {
            let prompt = match (max_len, item) {
                (Some(n), Item::Text(text)) => {
                    let ids = self.tokenizer.encode(text)?;
                    if ids.len() > n {
                        self.render(&Item::Text(self.tokenizer.decode(&ids[..n])?))?
                    } else {
                        self.render(item)?
                    }
                }
                _ => self.render(item)?,
            };
            let mut text = prompt;
            match item {
                Item::Text(_) => {}
                Item::Images(imgs) => {
                    let px = image::preprocess_images(imgs, &self.image_cfg)?;
                    let counts: Vec<usize> =
                        px.grids.iter().map(|g| g[0] * g[1] * g[2] / unit).collect();
                    inputs.pixel_values.extend(px.values);
                    inputs.image_grids.extend(px.grids);
                    text = expand_placeholders(&text, ph.image, &counts)?;
                }
                Item::Video { frames, fps, audio } => {
                    let (px, spg) = image::preprocess_video(frames, &self.video_cfg, *fps)?;
                    let g = px.grids[0];
                    inputs.pixel_values_videos.extend(px.values);
                    inputs.video_grids.extend(px.grids);
                    inputs.second_per_grid_ts.push(spg);
                    match (audio, omni) {
                        (Some(samples), Some(o)) => {
                            let feats = audio::log_mel(samples, &o.features)?;
                            let tokens = output_tokens(feats.valid_frames).1;
                            inputs.audio_frames.push(feats.valid_frames);
                            clips.push(feats.features);
                            text = interleave_video_audio(&text, g, merge, spg, tokens, o)?;
                        }
                        _ => {
                            text = expand_placeholders(&text, ph.video, &[g[0] * g[1] * g[2] / unit])?;
                        }
                    }
                }
                Item::Audio(samples) => {
                    let o = omni.expect("checked above");
                    let feats = audio::log_mel(samples, &o.features)?;
                    let tokens = output_tokens(feats.valid_frames).1;
                    if tokens == 0 {
                        return Err(GeomError::invalid(format!(
                            "an audio clip of {} samples is too short to embed (at least 3 mel frames, 30 ms)",
                            samples.len()
                        )));
                    }
                    inputs.audio_frames.push(feats.valid_frames);
                    clips.push(feats.features);
                    text = expand_placeholders(&text, "<|AUDIO|>", &[tokens])?;
                }
            }
            rows.push(self.tokenizer.encode(&text)?);
        }
        if let Some(o) = omni {
            inputs.input_features = concat_frames(&clips, &inputs.audio_frames, o.features.feature_size);
        }
        let t = rows.iter().map(Vec::len).max().unwrap_or(0);
        inputs.attention_mask = Some(
            rows.iter()
                .map(|r| {
                    let mut m = vec![0u8; t - r.len()];
                    m.resize(t, 1);
                    m
                })
                .collect(),
        );
        inputs.input_ids = rows
            .into_iter()
            .map(|r| {
                let mut p = vec![self.pad_id; t - r.len()];
                p.extend(r);
                p
            })
            .collect();
        Ok(inputs)
    }

    /// Every hidden state (`L + 1`, transformers' `output_hidden_states`),
    /// each pooled to one `[items, hidden]` matrix.
    pub fn hidden_states(&self, items: &[Item], pooling: Pooling) -> Result<Vec<Array2<f32>>> {
        let inputs = self.prepare(items)?;
        self.pooled(&inputs, pooling)
    }

    /// Pools every hidden state of a prepared batch.
    pub fn pooled(&self, inputs: &ModelInputs, pooling: Pooling) -> Result<Vec<Array2<f32>>> {
        let spec = CaptureSpec::hidden_states(self.model.text_config().num_hidden_layers);
        let out = self.model.forward(inputs, &spec, &self.device)?;
        out.captures
            .into_iter()
            .map(|(point, state)| {
                let dims = state.dims();
                let data: Vec<f32> = state.into_data().to_vec().map_err(|e| {
                    GeomError::invalid(format!("{point}: cannot read the state back: {e:?}"))
                })?;
                let rows = super::pool(&data, dims, inputs.attention_mask.as_deref(), pooling)?;
                let (n, h) = (rows.len(), dims[2]);
                Ok(Array2::from_shape_vec((n, h), rows.concat()).expect("pooled shape"))
            })
            .collect()
    }
}

/// Clips' `[mels, frames]` features side by side: `[mels, Σ frames]`.
fn concat_frames(clips: &[Vec<f32>], frames: &[usize], mels: usize) -> Vec<f32> {
    let total: usize = frames.iter().sum();
    let mut out = vec![0f32; mels * total];
    let mut off = 0;
    for (clip, &f) in clips.iter().zip(frames) {
        for m in 0..mels {
            out[m * total + off..m * total + off + f].copy_from_slice(&clip[m * f..(m + 1) * f]);
        }
        off += f;
    }
    out
}

/// `Qwen2_5OmniProcessor.replace_multimodal_special_tokens` for a video
/// with its audio (`use_audio_in_video`): the first
/// `<|vision_bos|><|VIDEO|><|vision_eos|>` becomes `<|vision_bos|><|audio_bos|>`,
/// then per chunk of `position_id_per_seconds · seconds_per_chunk`
/// temporal ids the chunk's video placeholders and the chunk's audio
/// placeholders, then `<|audio_eos|><|vision_eos|>`.
fn interleave_video_audio(
    text: &str,
    grid: [usize; 3],
    merge: usize,
    second_per_grid: f64,
    audio_tokens: usize,
    o: &Omni,
) -> Result<String> {
    const BLOCK: &str = "<|vision_bos|><|VIDEO|><|vision_eos|>";
    let at = text.find(BLOCK).ok_or_else(|| {
        GeomError::invalid(format!(
            "the rendered prompt has no {BLOCK} for a video with its audio track"
        ))
    })?;
    let per_grid = (grid[1] / merge) * (grid[2] / merge);
    let pps = o.position_id_per_seconds;
    // The processor's temporal ids are float64 (`t · second_per_grid · pps`);
    // cutting at integer multiples gives the same chunks as their floor.
    let video: Vec<i64> = (0..grid[0])
        .flat_map(|t| std::iter::repeat_n((t as f64 * second_per_grid * pps).floor() as i64, per_grid))
        .collect();
    let audio: Vec<i64> = (0..audio_tokens as i64).collect();
    let per_chunk = (pps * o.seconds_per_chunk) as i64;
    let (vc, ac) = (chunked_index(&video, per_chunk, 0), chunked_index(&audio, per_chunk, 0));
    let mut s = String::from("<|vision_bos|><|audio_bos|>");
    for j in 0..vc.len().max(ac.len()) {
        if let Some(&(a, b)) = vc.get(j) {
            s.push_str(&"<|VIDEO|>".repeat(b - a));
        }
        if let Some(&(a, b)) = ac.get(j) {
            s.push_str(&"<|AUDIO|>".repeat(b - a));
        }
    }
    s.push_str("<|audio_eos|><|vision_eos|>");
    Ok(format!("{}{s}{}", &text[..at], &text[at + BLOCK.len()..]))
}

/// The padding token: `pad_token` of `tokenizer_config.json`, else
/// `<|endoftext|>` (Qwen2's pad token). Its value never reaches a real
/// position's state; it is set for fidelity to the reference batch.
fn pad_token(dir: &Path, tok: &Tokenizer) -> Result<u32> {
    let path = dir.join("tokenizer_config.json");
    let mut name = None;
    if path.exists() {
        let text = std::fs::read_to_string(&path).map_err(|source| GeomError::Io {
            path: path.clone(),
            source,
        })?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| GeomError::invalid(format!("{}: not valid JSON: {e}", path.display())))?;
        name = match &v["pad_token"] {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
            _ => None,
        };
    }
    let name = name.unwrap_or_else(|| "<|endoftext|>".to_string());
    Ok(tok.token_id(&name).unwrap_or(0))
}
