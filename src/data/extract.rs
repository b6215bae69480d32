//! Extraction: every pair of a manifest through the model, every hidden state
//! pooled and appended to a store (schema v1).
//!
//! * **Validation first.** Every file is decoded before the store is created,
//!   so a broken image stops the run before any compute, with one message
//!   naming the manifest line and the file; with `skip_bad` such pairs are
//!   left out of every modality (pairs stay aligned), and their ids and
//!   reasons are recorded in the store's root attribute `skipped` (JSON).
//! * **Bounded memory.** Rows are processed in windows of `8 × batch` pairs:
//!   inside a window, items are sorted by size (caption length, pixel
//!   count) so batches waste little padding, and the window is written back
//!   in manifest order. Memory is bounded by the window, whatever N is.
//! * **Resume.** Each window is appended with `rows_done` advanced after the
//!   flush; `resume` reopens a store and continues at `rows_done`, after
//!   checking that the store was made by the same model (fingerprint), the
//!   same prompts, pooling and dataset, and holds the same pair ids so far —
//!   a store is never appended to silently by another run.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use burn::tensor::backend::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array3, Axis};
use serde_json::json;

use super::manifest::{Manifest, Pair};
use crate::error::{GeomError, Result};
use crate::input::video::{self, VideoSampling};
use crate::input::{audio, image};
use crate::model::{Embedder, Item, Pooling};
use crate::store::{default_layer_names, ModalitySpec, Store, StoreMeta, StoreWriter};

/// How to extract.
#[derive(Debug, Clone)]
pub struct ExtractOptions {
    /// Items per forward pass.
    pub batch_size: usize,
    /// Token pooling.
    pub pooling: Pooling,
    /// Leave out pairs with a missing or corrupt file instead of stopping.
    pub skip_bad: bool,
    /// Continue an interrupted store instead of creating one.
    pub resume: bool,
    /// Draw a progress bar on stderr (when it is a terminal).
    pub progress: bool,
    /// Qwen2.5-Omni: embed each video file with its audio track interleaved
    /// (`use_audio_in_video`). Off by default, as LCO-Emb's embeddings.
    pub audio_in_video: bool,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        Self {
            batch_size: 8,
            pooling: Pooling::LastToken,
            skip_bad: false,
            resume: false,
            progress: true,
            audio_in_video: false,
        }
    }
}

/// What an extraction did.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtractReport {
    /// Pairs in the store.
    pub rows: usize,
    /// Rows computed by this run (all modalities).
    pub computed: usize,
    /// Pairs left out: (id, manifest line, reason).
    pub skipped: Vec<(String, usize, String)>,
    /// Seconds spent.
    pub seconds: f64,
}

/// A hash of the checkpoint's `config.json` and of every tensor's name,
/// dtype, shape and a sample of its contents
/// ([`Checkpoint::tensor_sample`](crate::checkpoint::load::Checkpoint::tensor_sample)),
/// as 16 hex digits (FNV-1a 64): the same checkpoint gives the same
/// fingerprint wherever it lives, and two checkpoints of one architecture
/// (a base and its fine-tuned version) give different ones.
pub fn model_fingerprint(dir: &Path) -> Result<String> {
    let mut h = Fnv::default();
    let cfg = dir.join("config.json");
    h.write(&std::fs::read(&cfg).map_err(|source| GeomError::Io { path: cfg, source })?);
    let ckpt = crate::checkpoint::load::Checkpoint::open(dir)?;
    for key in ckpt.keys() {
        h.write(key.as_bytes());
        if let Some(sample) = ckpt.tensor_sample(key) {
            h.write(&sample);
        }
    }
    Ok(format!("{:016x}", h.0))
}

/// FNV-1a 64 (fingerprints and cache keys; identification, not security).
#[derive(Debug)]
pub(crate) struct Fnv(pub(crate) u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Extracts `manifest` with `emb` into the store `out`.
///
/// `model` is recorded as the store's `model` attribute and fingerprinted
/// from `model_dir`; `dataset` names the pairs (figure panel titles).
pub fn extract<B: Backend>(
    emb: &Embedder<B>,
    model_dir: &Path,
    manifest: &Manifest,
    dataset: &str,
    out: &Path,
    opts: &ExtractOptions,
) -> Result<ExtractReport> {
    let started = Instant::now();
    if opts.batch_size == 0 {
        return Err(GeomError::invalid("--batch-size must be at least 1"));
    }
    let modalities = manifest.modalities();
    let supported = emb.modalities();
    if let Some(m) = modalities.iter().find(|m| !supported.contains(m)) {
        return Err(GeomError::invalid(format!(
            "{}: pairs have '{m}', which this checkpoint does not embed (it embeds {}; audio needs a Qwen2.5-Omni checkpoint)",
            manifest.path.display(),
            supported.join(", ")
        )));
    }
    if opts.audio_in_video && !supported.contains(&"audio") {
        return Err(GeomError::invalid(
            "--audio-in-video needs a Qwen2.5-Omni checkpoint (this one has no audio encoder)",
        ));
    }
    // 1. Validate every file before any compute.
    let mut good: Vec<&Pair> = Vec::with_capacity(manifest.pairs.len());
    let mut skipped = Vec::new();
    for pair in &manifest.pairs {
        match check_pair(pair, opts.audio_in_video) {
            Ok(()) => good.push(pair),
            Err(reason) if opts.skip_bad => skipped.push((pair.id.clone(), pair.line, reason)),
            Err(reason) => {
                return Err(GeomError::invalid(format!(
                    "{}:{}: pair '{}': {reason} (fix or remove the line, or pass --skip-bad)",
                    manifest.path.display(),
                    pair.line,
                    pair.id
                )))
            }
        }
    }
    if good.is_empty() {
        return Err(GeomError::invalid(format!(
            "{}: every pair was skipped as bad; nothing to extract",
            manifest.path.display()
        )));
    }
    // 2. Create or reopen the store.
    let n_layers = emb.model().n_hidden_states();
    let dim = emb.model().text_config().hidden_size;
    let meta = StoreMeta {
        model: model_dir.display().to_string(),
        model_fingerprint: model_fingerprint(model_dir)?,
        dataset: dataset.to_string(),
        pooling: opts.pooling.to_string(),
        created_by: format!("geom {}", env!("CARGO_PKG_VERSION")),
    };
    let prompt = |m: &str| -> String {
        let p = emb.prompts();
        match m {
            "text" => p.text.clone(),
            "image" => format!("{{image}}{}", p.image),
            "audio" => format!("{{audio}}{}", p.audio),
            _ if opts.audio_in_video => format!("{{video+audio}}{}", p.video),
            _ => format!("{{video}}{}", p.video),
        }
    };
    let specs: Vec<ModalitySpec> = modalities
        .iter()
        .map(|m| ModalitySpec {
            name: m.to_string(),
            n_layers,
            n_rows: good.len(),
            dim,
            layer_names: default_layer_names(n_layers),
            prompt: prompt(m),
        })
        .collect();
    let skipped_json = serde_json::to_string(
        &skipped
            .iter()
            .map(|(id, line, reason)| json!({"id": id, "line": line, "reason": reason}))
            .collect::<Vec<_>>(),
    )
    .expect("json");
    let mut writer = if opts.resume && out.exists() {
        check_resumable(out, &meta, &specs, &good)?;
        StoreWriter::resume(out)?
    } else {
        if out.exists() {
            return Err(GeomError::invalid(format!(
                "{}: already exists (pass --resume to continue it, or choose another --out)",
                out.display()
            )));
        }
        let mut w = StoreWriter::create(out, &meta, &specs)?;
        w.set_root_attr("skipped", &skipped_json)?;
        w
    };
    // 3. Extract, modality by modality, window by window.
    let mut todo = 0;
    for m in &modalities {
        todo += good.len() - writer.rows_done(m)?;
    }
    let bar = if opts.progress {
        ProgressBar::new(todo as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:>6} [{bar:30}] {pos}/{len} rows, {per_sec}, ETA {eta}")
            .expect("template")
            .progress_chars("=> "),
    );
    let window = opts.batch_size * 8;
    let mut computed = 0;
    for m in &modalities {
        bar.set_message(m.to_string());
        let mut start = writer.rows_done(m)?;
        while start < good.len() {
            let end = (start + window).min(good.len());
            let chunk = &good[start..end];
            let states = embed_window(emb, chunk, m, opts, &bar)?;
            let ids: Vec<String> = chunk.iter().map(|p| p.id.clone()).collect();
            writer.append(m, &ids, states.view())?;
            computed += chunk.len();
            start = end;
        }
    }
    bar.finish_and_clear();
    writer.finish()?;
    Ok(ExtractReport {
        rows: good.len(),
        computed,
        skipped,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Decodes every file of a pair; the reason names the file.
fn check_pair(pair: &Pair, audio_in_video: bool) -> std::result::Result<(), String> {
    if let Some(p) = &pair.image {
        image::load_image(p).map_err(|e| format!("image {e}"))?;
    }
    if let Some(p) = &pair.audio {
        audio::load_audio(p).map_err(|e| format!("audio {e}"))?;
    }
    if let Some(p) = &pair.video {
        let v = video::load_video(p, &VideoSampling::default()).map_err(|e| format!("video {e}"))?;
        if v.frames.is_empty() {
            return Err(format!("video {}: no frames", p.display()));
        }
        if audio_in_video && !p.is_dir() {
            match video::load_video_audio(p) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(format!(
                        "video {}: no audio track (--audio-in-video needs one in every video)",
                        p.display()
                    ))
                }
                Err(e) => return Err(format!("video {e}")),
            }
        }
    }
    Ok(())
}

/// The item of one modality of a pair: files decoded, videos sampled as
/// LCO-Emb's loader does (files) or taken whole (frame folders).
fn load_item(pair: &Pair, modality: &str, opts: &ExtractOptions) -> Result<Item> {
    Ok(match modality {
        "text" => Item::text(pair.text.clone().expect("validated")),
        "image" => Item::Images(vec![image::load_image(
            pair.image.as_ref().expect("validated"),
        )?]),
        "audio" => Item::Audio(audio::load_audio(pair.audio.as_ref().expect("validated"))?),
        _ => {
            let p = pair.video.as_ref().expect("validated");
            if p.is_dir() {
                Item::video_frames(&[p], None)?
            } else {
                // The processor's fps (2.0, LCO passes none) sets the
                // seconds per temporal patch, as in LCO-Emb's pipeline.
                let v = video::load_video(p, &VideoSampling::default())?;
                let audio = if opts.audio_in_video {
                    Some(video::load_video_audio(p)?.ok_or_else(|| {
                        GeomError::invalid(format!("{}: no audio track", p.display()))
                    })?)
                } else {
                    None
                };
                Item::Video {
                    frames: v.frames,
                    fps: None,
                    audio,
                }
            }
        }
    })
}

/// Refuses to continue a store made by another model, prompt, pooling or
/// dataset, or holding other pairs.
fn check_resumable(
    out: &Path,
    meta: &StoreMeta,
    specs: &[ModalitySpec],
    good: &[&Pair],
) -> Result<()> {
    let store = Store::open(out)?;
    let have = store.meta();
    let differ = |what: &str, a: &str, b: &str| {
        GeomError::invalid(format!(
            "{}: cannot resume: the store's {what} is '{a}' but this run's is '{b}' (use another --out)",
            out.display()
        ))
    };
    if have.model_fingerprint != meta.model_fingerprint {
        return Err(differ(
            "model fingerprint",
            &have.model_fingerprint,
            &meta.model_fingerprint,
        ));
    }
    if have.pooling != meta.pooling {
        return Err(differ("pooling", &have.pooling, &meta.pooling));
    }
    if have.dataset != meta.dataset {
        return Err(differ("dataset", &have.dataset, &meta.dataset));
    }
    for spec in specs {
        let info = store.modality(&spec.name)?;
        if info.prompt != spec.prompt {
            return Err(differ(
                &format!("{} prompt", spec.name),
                &info.prompt,
                &spec.prompt,
            ));
        }
        if info.n_rows != spec.n_rows {
            return Err(GeomError::invalid(format!(
                "{}: cannot resume: the store has {} rows of '{}' but this run has {} pairs (use the same manifest, --limit/--sample and --skip-bad)",
                out.display(),
                info.n_rows,
                spec.name,
                spec.n_rows
            )));
        }
        let ids = store.ids(&spec.name)?;
        if let Some(i) = ids.iter().zip(good).position(|(a, p)| *a != p.id) {
            return Err(GeomError::invalid(format!(
                "{}: cannot resume: row {i} of '{}' is pair '{}' but this run's is '{}'",
                out.display(),
                spec.name,
                ids[i],
                good[i].id
            )));
        }
    }
    Ok(())
}

/// Embeds one window of pairs for one modality: sorted by size into
/// batches, written back in manifest order. `[L, window, D]`.
fn embed_window<B: Backend>(
    emb: &Embedder<B>,
    chunk: &[&Pair],
    modality: &str,
    opts: &ExtractOptions,
    bar: &ProgressBar,
) -> Result<Array3<f32>> {
    let mut items: Vec<(usize, usize, Item)> = Vec::with_capacity(chunk.len());
    for (i, pair) in chunk.iter().enumerate() {
        let named = |e: GeomError| {
            GeomError::invalid(format!("pair '{}' (line {}): {e}", pair.id, pair.line))
        };
        let item = load_item(pair, modality, opts).map_err(named)?;
        let size = match &item {
            Item::Text(t) => t.len(),
            Item::Images(v) => v.iter().map(|im| (im.width() * im.height()) as usize).sum(),
            Item::Video { frames, .. } => frames
                .iter()
                .map(|im| (im.width() * im.height()) as usize)
                .sum(),
            Item::Audio(samples) => samples.len(),
        };
        items.push((size, i, item));
    }
    items.sort_by_key(|(size, i, _)| (*size, *i));
    let mut out: BTreeMap<usize, Vec<ndarray::Array1<f32>>> = BTreeMap::new();
    for batch in items.chunks(opts.batch_size) {
        let its: Vec<Item> = batch.iter().map(|(_, _, it)| it.clone()).collect();
        let states = emb.hidden_states(&its, opts.pooling)?;
        for (j, (_, i, _)) in batch.iter().enumerate() {
            out.insert(*i, states.iter().map(|s| s.row(j).to_owned()).collect());
        }
        bar.inc(batch.len() as u64);
    }
    let l = out.values().next().map_or(0, Vec::len);
    let d = out.values().next().map_or(0, |v| v[0].len());
    let mut arr = Array3::<f32>::zeros((l, chunk.len(), d));
    for (i, layers) in out {
        for (li, v) in layers.into_iter().enumerate() {
            arr.index_axis_mut(Axis(0), li).row_mut(i).assign(&v);
        }
    }
    Ok(arr)
}
