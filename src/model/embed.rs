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

use super::capture::{CaptureSpec, Pooling};
use super::qwen2_5_vl::{ModelInputs, Qwen2_5Vl};
use crate::error::{GeomError, Result};
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
    },
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
        })
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
}

impl Default for Prompts {
    /// LCO-Emb's prompts.
    fn default() -> Self {
        Self {
            text: format!("{{text}}{}", prompt::TEXT_SUFFIX),
            image: prompt::IMAGE_SUFFIX.to_string(),
            video: prompt::VIDEO_SUFFIX.to_string(),
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
        };
        json!([{"role": "user", "content": content}])
    }
}

/// A checkpoint with its tokenizer, chat template and image processor.
pub struct Embedder<B: Backend> {
    model: Qwen2_5Vl<B>,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    image_cfg: ImageProcessorConfig,
    video_cfg: ImageProcessorConfig,
    pad_id: u32,
    prompts: Prompts,
    device: B::Device,
}

impl<B: Backend> Embedder<B> {
    /// Loads everything from a Hugging Face checkpoint folder.
    pub fn from_dir(dir: &Path, device: &B::Device) -> Result<Self> {
        Self::with_model(dir, Qwen2_5Vl::load(dir, device)?, device)
    }

    /// [`Embedder::from_dir`] without the vision tower
    /// ([`Qwen2_5Vl::load_text_only`]): texts only.
    pub fn from_dir_text_only(dir: &Path, device: &B::Device) -> Result<Self> {
        Self::with_model(dir, Qwen2_5Vl::load_text_only(dir, device)?, device)
    }

    fn with_model(dir: &Path, model: Qwen2_5Vl<B>, device: &B::Device) -> Result<Self> {
        let tokenizer = Tokenizer::from_dir(dir)?;
        let template = ChatTemplate::from_dir(dir)?;
        let image_cfg = ImageProcessorConfig::from_dir(dir)?;
        let video_cfg = ImageProcessorConfig::video_from_dir(dir)?;
        let pad_id = pad_token(dir, &tokenizer)?;
        Ok(Self {
            model,
            tokenizer,
            template,
            image_cfg,
            video_cfg,
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
    pub fn model(&self) -> &Qwen2_5Vl<B> {
        &self.model
    }

    /// The model, to attach adapters ([`super::lora`]).
    pub fn model_mut(&mut self) -> &mut Qwen2_5Vl<B> {
        &mut self.model
    }

    /// The device the model lives on.
    pub fn device(&self) -> &B::Device {
        &self.device
    }

    /// The prompts in use.
    pub fn prompts(&self) -> &Prompts {
        &self.prompts
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
    /// the last token is the same as for a short text. Images and videos are
    /// never cut.
    pub fn prepare_truncated(&self, items: &[Item], max_len: Option<usize>) -> Result<ModelInputs> {
        if items.is_empty() {
            return Err(GeomError::invalid("nothing to embed: the batch is empty"));
        }
        let unit = {
            let m = self.model.config().vision.spatial_merge_size;
            m * m
        };
        let mut inputs = ModelInputs::default();
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
            let (mut images, mut videos) = (Vec::new(), Vec::new());
            match item {
                Item::Text(_) => {}
                Item::Images(imgs) => {
                    let px = image::preprocess_images(imgs, &self.image_cfg)?;
                    images = px.grids.iter().map(|g| g[0] * g[1] * g[2] / unit).collect();
                    inputs.pixel_values.extend(px.values);
                    inputs.image_grids.extend(px.grids);
                }
                Item::Video { frames, fps } => {
                    let (px, spg) = image::preprocess_video(frames, &self.video_cfg, *fps)?;
                    videos = px.grids.iter().map(|g| g[0] * g[1] * g[2] / unit).collect();
                    inputs.pixel_values_videos.extend(px.values);
                    inputs.video_grids.extend(px.grids);
                    inputs.second_per_grid_ts.push(spg);
                }
            }
            let text = expand_placeholders(&prompt, "<|image_pad|>", &images)?;
            let text = expand_placeholders(&text, "<|video_pad|>", &videos)?;
            rows.push(self.tokenizer.encode(&text)?);
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
        let spec = CaptureSpec::hidden_states(self.model.config().text.num_hidden_layers);
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
