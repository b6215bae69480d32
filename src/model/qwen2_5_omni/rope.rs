//! TMRoPE position ids, as transformers' Qwen2.5-Omni `get_rope_index`
//! (transformers 4.57, `models/qwen2_5_omni/modeling_qwen2_5_omni.py`,
//! `Qwen2_5OmniPreTrainedModelForConditionalGeneration.get_rope_index`).
//!
//! Every token gets three ids (temporal, height, width). Text tokens, the
//! media's bos/eos tokens and audio tokens advance all three together, one
//! past the largest id so far. Image and video tokens get grid
//! coordinates offset by the id after their bos token, with Omni's own
//! temporal rule (not Qwen2.5-VL's):
//!
//! * image: `t · position_id_per_seconds` (one temporal step, so 0);
//! * video: `int(t · second_per_grid · position_id_per_seconds)`, computed
//!   in f32 and truncated (`.long()`), where Qwen2.5-VL first truncates
//!   `second_per_grid` itself;
//! * audio: `((F − 1)//2 + 1 − 2)//2 + 1` sequential ids for a clip of `F`
//!   mel frames;
//! * audio in video (`use_audio_in_video`): `<|vision_bos|><|audio_bos|>`
//!   share one id, as do `<|audio_eos|><|vision_eos|>`; the video's and the
//!   audio's ids both start after the bos and are interleaved chunk by
//!   chunk, a chunk being `position_id_per_seconds · seconds_per_chunk`
//!   temporal ids (video chunk first).
//!
//! Quirks of the reference, reproduced on purpose: media are consumed in
//! order of appearance across the whole batch (the grid and audio lists
//! are flat over samples); the text before a medium is counted up to its
//! bos token (`ed − st − 1`, `− 2` before audio in video); without any image
//! or video grid in the batch the ids are `cumsum(mask) − 1` (padding 1),
//! which for audio and text gives the same ids; padding gets id 1.

use ndarray::Array3;

use super::config::Qwen2_5OmniConfig;
use super::audio::output_tokens;
use crate::error::{GeomError, Result};

/// The media of a batch, in order of appearance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaGrids {
    /// `(t, h, w)` patch grid of each image.
    pub image: Vec<[usize; 3]>,
    /// `(t, h, w)` patch grid of each video.
    pub video: Vec<[usize; 3]>,
    /// Seconds per temporal grid step of each video (`temporal_patch_size / fps`).
    pub video_second_per_grid: Vec<f64>,
    /// Valid mel frames of each audio clip (including the audio of videos
    /// when `use_audio_in_video`).
    pub audio_frames: Vec<usize>,
    /// Whether each video's audio track is interleaved with it.
    pub use_audio_in_video: bool,
}

/// Position ids being built for one sample, block by block as the
/// reference's `llm_pos_ids_list`.
#[derive(Default)]
struct Blocks {
    ids: [Vec<i64>; 3],
    /// The largest id of the last block appended: the reference starts the
    /// next block one past it (`llm_pos_ids_list[-1].max() + 1`), not past
    /// the largest id so far (they differ after an interleaved audio chunk).
    last_max: Option<i64>,
}

impl Blocks {
    fn next(&self) -> i64 {
        self.last_max.map_or(0, |m| m + 1)
    }

    /// Appends a block (nothing when empty, as the reference skips `text_len == 0`).
    fn push(&mut self, block: [&[i64]; 3]) {
        if block[0].is_empty() {
            return;
        }
        let mut max = i64::MIN;
        for (a, x) in self.ids.iter_mut().zip(block) {
            a.extend_from_slice(x);
            max = max.max(x.iter().copied().max().unwrap_or(i64::MIN));
        }
        self.last_max = Some(max);
    }

    /// `n` sequential ids from [`Self::next`] on all three axes.
    fn seq(&mut self, n: usize) {
        let st = self.next();
        let v: Vec<i64> = (0..n as i64).map(|k| st + k).collect();
        self.push([&v, &v, &v]);
    }
}

/// Grid ids `(t_index[i], h, w) + start` for a merged `gh × gw` grid.
fn vision_ids(start: i64, t_index: &[i64], gh: usize, gw: usize) -> [Vec<i64>; 3] {
    let mut out: [Vec<i64>; 3] = Default::default();
    for &t in t_index {
        for h in 0..gh as i64 {
            for w in 0..gw as i64 {
                out[0].push(start + t);
                out[1].push(start + h);
                out[2].push(start + w);
            }
        }
    }
    out
}

/// `get_chunked_index`: `(start, end)` slices of monotone temporal ids
/// `values − remove` cut at multiples of `per_chunk`.
pub fn chunked_index(values: &[i64], per_chunk: i64, remove: i64) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut start, mut current) = (0usize, 1i64);
    for (i, &v) in values.iter().enumerate() {
        if v - remove >= current * per_chunk {
            out.push((start, i));
            start = i;
            current += 1;
        }
    }
    out.push((start, values.len()));
    out
}

/// TMRoPE position ids and the per-sample deltas (`max id + 1 − tokens`).
///
/// # Shapes
/// `input_ids`: `B` rows of `T` ids; `attention_mask`: the same, 0 = padding.
/// Returns `[3, B, T]` ids and `[B]` deltas (as the reference's
/// `get_rope_index`, before the thinker subtracts the padding count).
pub fn rope_index(
    cfg: &Qwen2_5OmniConfig,
    input_ids: &[Vec<u32>],
    attention_mask: Option<&[Vec<u8>]>,
    media: &MediaGrids,
) -> Result<(Array3<i64>, Vec<i64>)> {
    let b = input_ids.len();
    let t = input_ids.first().map_or(0, Vec::len);
    if input_ids.iter().any(|r| r.len() != t) {
        return Err(GeomError::invalid(
            "input_ids rows have different lengths (pad the batch first)",
        ));
    }
    let mask = |i: usize, j: usize| attention_mask.is_none_or(|m| m[i][j] != 0);
    let mut pos = Array3::<i64>::ones((3, b, t));
    let mut deltas = Vec::with_capacity(b);
    if media.image.is_empty() && media.video.is_empty() {
        for i in 0..b {
            let mut c = -1i64;
            let mut max = i64::MIN;
            let mut real = 0i64;
            for j in 0..t {
                let p = if mask(i, j) {
                    c += 1;
                    real += 1;
                    c
                } else {
                    1
                };
                for a in 0..3 {
                    pos[[a, i, j]] = p;
                }
                max = max.max(p);
            }
            deltas.push(if t == 0 { 0 } else { max + 1 - real });
        }
        return Ok((pos, deltas));
    }
    let merge = cfg.vision.spatial_merge_size;
    let pps = cfg.position_id_per_seconds;
    let per_chunk = (pps * cfg.seconds_per_chunk) as i64;
    let in_video = media.use_audio_in_video;
    let (mut image_idx, mut video_idx, mut audio_idx) = (0usize, 0usize, 0usize);
    let missing = |what: &str, n: usize| {
        GeomError::invalid(format!(
            "the prompts hold more {what} than the {n} given (placeholders and media do not match)"
        ))
    };
    for i in 0..b {
        let kept: Vec<usize> = (0..t).filter(|&j| mask(i, j)).collect();
        let tokens: Vec<u32> = kept.iter().map(|&j| input_ids[i][j]).collect();
        let after_vision_start: Vec<u32> = (0..tokens.len())
            .filter(|&j| tokens[j] == cfg.vision_start_token_id)
            .filter_map(|j| tokens.get(j + 1).copied())
            .collect();
        let count = |id: u32| after_vision_start.iter().filter(|&&x| x == id).count();
        let audio_nums = tokens
            .iter()
            .filter(|&&x| x == cfg.audio_start_token_id)
            .count();
        let image_nums = count(cfg.image_token_id);
        let video_nums = if in_video {
            count(cfg.audio_start_token_id)
        } else {
            count(cfg.video_token_id)
        };
        let (mut remain_images, mut remain_videos, mut remain_audios) =
            (image_nums, video_nums, audio_nums);
        let multimodal = if in_video {
            image_nums + audio_nums
        } else {
            image_nums + video_nums + audio_nums
        };
        let mut ids = Blocks::default();
        let mut st = 0usize;
        let find = |id: u32, remain: usize, st: usize| {
            if remain > 0 {
                tokens[st.min(tokens.len())..]
                    .iter()
                    .position(|&x| x == id)
                    .map(|p| p + st)
            } else {
                None
            }
        };
        let bad = |what: &str, at: usize| {
            GeomError::invalid(format!(
                "sample {i}: the {what} at token {at} is not preceded by its bos token"
            ))
        };
        for _ in 0..multimodal {
            let none = tokens.len() + 1;
            let ed_image = find(cfg.image_token_id, remain_images, st).unwrap_or(none);
            let ed_video = find(cfg.video_token_id, remain_videos, st).unwrap_or(none);
            let ed_audio = find(cfg.audio_token_id, remain_audios, st).unwrap_or(none);
            let min_ed = ed_image.min(ed_video).min(ed_audio);
            if min_ed == none {
                break;
            }
            if min_ed == ed_audio {
                let text_len = min_ed.checked_sub(st + 1).ok_or_else(|| bad("audio", min_ed))?;
                ids.seq(text_len);
                ids.seq(1);
                let frames = *media
                    .audio_frames
                    .get(audio_idx)
                    .ok_or_else(|| missing("audio clips", media.audio_frames.len()))?;
                let audio_len = output_tokens(frames).1;
                ids.seq(audio_len);
                ids.seq(1);
                st += text_len + 1 + audio_len + 1;
                audio_idx += 1;
                remain_audios = remain_audios.saturating_sub(1);
            } else if min_ed == ed_image {
                let text_len = min_ed.checked_sub(st + 1).ok_or_else(|| bad("image", min_ed))?;
                ids.seq(text_len);
                ids.seq(1);
                let g = *media
                    .image
                    .get(image_idx)
                    .ok_or_else(|| missing("images", media.image.len()))?;
                let t_index: Vec<i64> = (0..g[0] as i64).map(|x| (x as f64 * pps) as i64).collect();
                let v = vision_ids(ids.next(), &t_index, g[1] / merge, g[2] / merge);
                let image_len = v[0].len();
                ids.push([&v[0], &v[1], &v[2]]);
                ids.seq(1);
                st += text_len + 1 + image_len + 1;
                image_idx += 1;
                remain_images = remain_images.saturating_sub(1);
            } else {
                let g = *media
                    .video
                    .get(video_idx)
                    .ok_or_else(|| missing("videos", media.video.len()))?;
                let spg = media
                    .video_second_per_grid
                    .get(video_idx)
                    .copied()
                    .unwrap_or(1.0) as f32;
                // `(arange(t) * second_per_grid.float() * position_id_per_seconds).long()`, in f32.
                let t_index: Vec<i64> = (0..g[0])
                    .map(|x| (x as f32 * spg * pps as f32) as i64)
                    .collect();
                let (gh, gw) = (g[1] / merge, g[2] / merge);
                if !in_video {
                    let text_len = min_ed.checked_sub(st + 1).ok_or_else(|| bad("video", min_ed))?;
                    ids.seq(text_len);
                    ids.seq(1);
                    let v = vision_ids(ids.next(), &t_index, gh, gw);
                    let video_len = v[0].len();
                    ids.push([&v[0], &v[1], &v[2]]);
                    ids.seq(1);
                    st += text_len + 1 + video_len + 1;
                } else {
                    let text_len = min_ed.checked_sub(st + 2).ok_or_else(|| bad("video", min_ed))?;
                    ids.seq(text_len);
                    // <|vision_bos|><|audio_bos|> share one id (two blocks, one start).
                    let bos = [ids.next()];
                    ids.push([&bos, &bos, &bos]);
                    ids.push([&bos, &bos, &bos]);
                    let start = ids.next();
                    let frames = *media
                        .audio_frames
                        .get(audio_idx)
                        .ok_or_else(|| missing("audio clips", media.audio_frames.len()))?;
                    let audio_len = output_tokens(frames).1;
                    let audio: Vec<i64> = (0..audio_len as i64).map(|k| start + k).collect();
                    let video = vision_ids(start, &t_index, gh, gw);
                    let vchunks = chunked_index(&video[0], per_chunk, start);
                    let achunks = chunked_index(&audio, per_chunk, start);
                    for j in 0..vchunks.len().max(achunks.len()) {
                        if let Some(&(s, e)) = vchunks.get(j) {
                            ids.push([&video[0][s..e], &video[1][s..e], &video[2][s..e]]);
                        }
                        if let Some(&(s, e)) = achunks.get(j) {
                            let a = &audio[s..e];
                            ids.push([a, a, a]);
                        }
                    }
                    let eos = [ids.next()];
                    ids.push([&eos, &eos, &eos]);
                    ids.push([&eos, &eos, &eos]);
                    st += text_len + 2 + audio_len + video[0].len() + 2;
                    audio_idx += 1;
                    remain_audios = remain_audios.saturating_sub(1);
                }
                video_idx += 1;
                remain_videos = remain_videos.saturating_sub(1);
            }
        }
        if st < tokens.len() {
            ids.seq(tokens.len() - st);
        }
        let ids = ids.ids;
        if ids[0].len() != kept.len() {
            return Err(GeomError::invalid(format!(
                "sample {i}: {} positions for {} tokens (do the placeholders match the media's grids and audio lengths?)",
                ids[0].len(),
                kept.len()
            )));
        }
        for (n, &j) in kept.iter().enumerate() {
            for a in 0..3 {
                pos[[a, i, j]] = ids[a][n];
            }
        }
        let max = ids.iter().flatten().max().copied().unwrap_or(-1);
        deltas.push(max + 1 - kept.len() as i64);
    }
    Ok((pos, deltas))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> Qwen2_5OmniConfig {
        Qwen2_5OmniConfig::from_json(&json!({
            "text_config": {"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
                "rope_scaling": {"mrope_section": [2, 3, 3]}},
            "vision_config": {"hidden_size": 32, "num_heads": 2, "out_hidden_size": 64},
            "audio_config": {"d_model": 32, "encoder_attention_heads": 4, "output_dim": 64},
            "audio_token_index": 20, "image_token_index": 21, "video_token_index": 22,
            "audio_start_token_id": 23, "audio_end_token_id": 24,
            "vision_start_token_id": 25, "vision_end_token_id": 26,
            "position_id_per_seconds": 25, "seconds_per_chunk": 2
        }))
        .unwrap()
    }

    #[test]
    fn chunks_cut_at_multiples() {
        assert_eq!(chunked_index(&[0, 0, 50, 50, 100], 50, 0), vec![(0, 2), (2, 4), (4, 5)]);
        assert_eq!(chunked_index(&[10, 60], 50, 10), vec![(0, 1), (1, 2)]);
        assert_eq!(chunked_index(&[], 50, 0), vec![(0, 0)]);
    }

    #[test]
    fn image_and_audio_positions() {
        // text <vbos> 4 image tokens (grid 1×4×4) <veos> <abos> 1 audio token (3 frames) <aeos> text
        let ids = vec![vec![1, 25, 21, 21, 21, 21, 26, 23, 20, 24, 1]];
        let media = MediaGrids {
            image: vec![[1, 4, 4]],
            audio_frames: vec![3],
            ..Default::default()
        };
        let (p, d) = rope_index(&cfg(), &ids, None, &media).unwrap();
        let row = |a: usize| p.slice(ndarray::s![a, 0, ..]).to_vec();
        assert_eq!(row(0), vec![0, 1, 2, 2, 2, 2, 4, 5, 6, 7, 8]);
        assert_eq!(row(1), vec![0, 1, 2, 2, 3, 3, 4, 5, 6, 7, 8]);
        assert_eq!(row(2), vec![0, 1, 2, 3, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(d, vec![9 - 11]);
    }

    #[test]
    fn video_temporal_ids_use_omni_rule() {
        // 3 temporal steps of 1×1 merged tokens at 1 s per grid → 0, 25, 50.
        let ids = vec![vec![25, 22, 22, 22, 26]];
        let media = MediaGrids {
            video: vec![[3, 2, 2]],
            video_second_per_grid: vec![1.0],
            ..Default::default()
        };
        let (p, _) = rope_index(&cfg(), &ids, None, &media).unwrap();
        assert_eq!(p.slice(ndarray::s![0, 0, ..]).to_vec(), vec![0, 1, 26, 51, 52]);
        // 0.5 s per grid is not truncated to 0 (Qwen2.5-VL's quirk).
        let media = MediaGrids {
            video_second_per_grid: vec![0.5],
            ..media
        };
        let (p, _) = rope_index(&cfg(), &ids, None, &media).unwrap();
        assert_eq!(p.slice(ndarray::s![0, 0, ..]).to_vec(), vec![0, 1, 13, 26, 27]);
    }

    #[test]
    fn audio_in_video_interleaves_chunks() {
        // 2 temporal steps at 2 s/grid → t ids 0 and 50 (chunks of 50): two video
        // chunks of one token; audio of 7 frames → 2 tokens (ids 0, 1): one chunk.
        // Layout: <vbos><abos> V A A V <aeos><veos>
        let ids = vec![vec![25, 23, 22, 20, 20, 22, 24, 26]];
        let media = MediaGrids {
            video: vec![[2, 2, 2]],
            video_second_per_grid: vec![2.0],
            audio_frames: vec![7],
            use_audio_in_video: true,
            ..Default::default()
        };
        let (p, _) = rope_index(&cfg(), &ids, None, &media).unwrap();
        assert_eq!(
            p.slice(ndarray::s![0, 0, ..]).to_vec(),
            vec![0, 0, 1, 1, 2, 51, 52, 52]
        );
    }
}
