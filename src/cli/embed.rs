//! `geom embed`: every layer's pooled hidden state of a few texts, images,
//! audio clips and videos, from a checkpoint folder (Qwen2.5-VL or
//! Qwen2.5-Omni) — a quick look at a model, or a
//! parity check against another implementation.

use std::path::PathBuf;

use ndarray::{Array3, Axis};

use crate::error::GeomError;
use crate::model::embed::{Embedder, Item};
use crate::model::{DeviceSpec, Pooling};
use crate::report::table;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint folder (Hugging Face layout: config.json, safetensors, tokenizer).
    #[arg(long)]
    model: PathBuf,
    /// A text to embed (repeatable). Items are embedded in the order texts, images, audio, videos.
    #[arg(long)]
    text: Vec<String>,
    /// An image file to embed (repeatable; one item each).
    #[arg(long)]
    image: Vec<PathBuf>,
    /// An audio file to embed: WAV, FLAC, MP3 or OGG/Vorbis (repeatable; Qwen2.5-Omni).
    #[arg(long)]
    audio: Vec<PathBuf>,
    /// A video: a file (mp4, webm, avi, mkv; sampled at 2 fps as LCO-Emb's loader does) or a
    /// folder of frames sorted by file name (all frames used) (repeatable).
    #[arg(long)]
    video: Vec<PathBuf>,
    /// Qwen2.5-Omni: embed each video file with its audio track interleaved (use_audio_in_video).
    #[arg(long)]
    audio_in_video: bool,
    /// Frame rate of the --video frames (the processor's default is 2.0).
    #[arg(long)]
    fps: Option<f64>,
    /// last (the last real token, LCO-Emb's embedding), mean, or a position N (negative from the end).
    #[arg(long, default_value = "last")]
    pooling: String,
    /// cpu (the default CPU backend), cpu:flex, cpu:ndarray, cuda or cuda:N (CUDA needs a build with --features cuda).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Write the states as [layers, items, hidden] float32 .npy (the file must not exist).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let pooling: Pooling = a.pooling.parse()?;
    let device: DeviceSpec = a.device.parse()?;
    if let Some(out) = &a.out {
        if out.exists() {
            return Err(GeomError::invalid(format!(
                "{}: already exists (geom never overwrites results; remove it or choose another --out)",
                out.display()
            ))
            .into());
        }
    }
    let mut items: Vec<(String, Item)> = a
        .text
        .iter()
        .map(|t| (format!("text {t:?}"), Item::text(t.clone())))
        .collect();
    for p in &a.image {
        items.push((format!("image {}", p.display()), Item::image_file(p)?));
    }
    for p in &a.audio {
        let item = Item::audio_file(p)?;
        let secs = match &item {
            Item::Audio(s) => s.len() as f64 / crate::input::audio::SAMPLE_RATE as f64,
            _ => unreachable!(),
        };
        items.push((format!("audio {} ({secs:.2} s)", p.display()), item));
    }
    for p in &a.video {
        let item = if p.is_dir() {
            Item::video_frames(&[p], a.fps)?
        } else {
            let v = crate::input::video::load_video(p, &Default::default())?;
            let audio = if a.audio_in_video {
                Some(crate::input::video::load_video_audio(p)?.ok_or_else(|| {
                    GeomError::invalid(format!(
                        "{}: no audio track (--audio-in-video needs one)",
                        p.display()
                    ))
                })?)
            } else {
                None
            };
            Item::Video {
                frames: v.frames,
                fps: a.fps,
                audio,
            }
        };
        let n = match &item {
            Item::Video { frames, .. } => frames.len(),
            _ => unreachable!(),
        };
        items.push((format!("video {} ({n} frames)", p.display()), item));
    }
    if items.is_empty() {
        return Err(GeomError::invalid(
            "nothing to embed: give --text, --image, --audio or --video",
        )
        .into());
    }
    let (labels, items): (Vec<String>, Vec<Item>) = items.into_iter().unzip();
    let states = crate::with_backend!(device, |B, dev| {
        let emb = Embedder::<B>::from_dir(&a.model, &dev)?;
        emb.hidden_states(&items, pooling)?
    });
    let (l, n, h) = (states.len(), states[0].nrows(), states[0].ncols());
    let stacked = ndarray::stack(
        Axis(0),
        &states.iter().map(|s| s.view()).collect::<Vec<_>>(),
    )
    .expect("same shapes");
    let stacked: Array3<f32> = stacked;
    // Table: one row per hidden state, the L2 norm of each item's vector.
    let mut headers = vec!["state".to_string()];
    headers.extend((0..n).map(|i| format!("|item {i}|")));
    let rows: Vec<Vec<String>> = (0..l)
        .map(|li| {
            let mut r = vec![li.to_string()];
            r.extend((0..n).map(|i| {
                let v = stacked.index_axis(Axis(0), li);
                let row = v.index_axis(Axis(0), i);
                format!("{:.3}", row.dot(&row).sqrt())
            }));
            r
        })
        .collect();
    for (i, lab) in labels.iter().enumerate() {
        println!("item {i}: {lab}");
    }
    println!(
        "{l} hidden states (0 = embeddings, {} = after the final norm) × {n} items × {h} dims, pooling {}, device {device}",
        l - 1,
        a.pooling
    );
    print!("{}", table(&headers, &rows));
    if let Some(out) = &a.out {
        let tmp = out.with_extension("npy.tmp");
        ndarray_npy::write_npy(&tmp, &stacked)
            .map_err(|e| GeomError::Npy {
                path: out.clone(),
                message: e.to_string(),
            })
            .and_then(|_| {
                std::fs::rename(&tmp, out).map_err(|source| GeomError::Io {
                    path: out.clone(),
                    source,
                })
            })?;
        println!("wrote {} [{l}, {n}, {h}] float32", out.display());
    }
    Ok(())
}
