//! Position ids for M-RoPE, as transformers' `Qwen2_5_VLModel.get_rope_index`
//! (transformers 4.57, `models/qwen2_5_vl/modeling_qwen2_5_vl.py`).
//!
//! Every token gets three position ids (temporal, height, width). Text
//! tokens advance all three together; the `t·h·w / merge²` placeholder
//! tokens of an image or video get grid coordinates offset by the text
//! position before them, and the text after a visual block resumes at one
//! past the largest id used so far. Padding (attention mask 0) gets id 1.
//!
//! Quirks of the reference, reproduced on purpose:
//!
//! * a video's temporal id is `floor(t · second_per_grid_t · tokens_per_second)`,
//!   where `second_per_grid_t` is first **truncated to an integer** (the
//!   reference casts it to the integer dtype of the index tensor), so 0.5 s
//!   per grid gives temporal id 0 for every frame;
//! * images and videos are consumed in order of appearance across the whole
//!   batch (the grid lists are flat over samples);
//! * without any image or video grid, ids are `cumsum(mask) − 1` (padding 1).

use ndarray::Array3;

use super::config::Qwen2_5VlConfig;
use crate::error::{GeomError, Result};

/// Visual inputs of a batch, in order of appearance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VisualGrids {
    /// `(t, h, w)` patch grid of each image.
    pub image: Vec<[usize; 3]>,
    /// `(t, h, w)` patch grid of each video.
    pub video: Vec<[usize; 3]>,
    /// Seconds per temporal grid step of each video (default 1.0).
    pub second_per_grid_ts: Vec<f64>,
}

/// M-RoPE position ids and the per-sample deltas (`max id + 1 − T`).
///
/// # Shapes
/// `input_ids`: `B` rows of `T` ids; `attention_mask`: the same, 0 = padding.
/// Returns `[3, B, T]` ids and `[B]` deltas.
pub fn rope_index(
    cfg: &Qwen2_5VlConfig,
    input_ids: &[Vec<u32>],
    attention_mask: Option<&[Vec<u8>]>,
    grids: &VisualGrids,
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
    if grids.image.is_empty() && grids.video.is_empty() {
        for i in 0..b {
            let mut c = -1i64;
            let mut max = i64::MIN;
            for j in 0..t {
                let p = if mask(i, j) {
                    c += 1;
                    c
                } else {
                    1
                };
                for a in 0..3 {
                    pos[[a, i, j]] = p;
                }
                max = max.max(p);
            }
            deltas.push(if t == 0 { 0 } else { max + 1 - t as i64 });
        }
        return Ok((pos, deltas));
    }
    let merge = cfg.vision.spatial_merge_size;
    let tps = cfg.vision.tokens_per_second;
    let (mut image_index, mut video_index) = (0usize, 0usize);
    for i in 0..b {
        let kept: Vec<usize> = (0..t).filter(|&j| mask(i, j)).collect();
        let tokens: Vec<u32> = kept.iter().map(|&j| input_ids[i][j]).collect();
        let starts: Vec<usize> = (0..tokens.len())
            .filter(|&j| tokens[j] == cfg.vision_start_token_id)
            .collect();
        let after = |id: u32| {
            starts
                .iter()
                .filter(|&&s| tokens.get(s + 1) == Some(&id))
                .count()
        };
        let (mut remain_images, mut remain_videos) =
            (after(cfg.image_token_id), after(cfg.video_token_id));
        let mut ids: [Vec<i64>; 3] = Default::default();
        let next_start =
            |ids: &[Vec<i64>; 3]| ids.iter().flat_map(|v| v.iter()).max().map_or(0, |m| m + 1);
        let mut st = 0usize;
        for _ in 0..remain_images + remain_videos {
            let find = |id: u32, remain: usize| {
                if remain > 0 {
                    tokens[st..].iter().position(|&x| x == id).map(|p| p + st)
                } else {
                    None
                }
            };
            let ed_image = find(cfg.image_token_id, remain_images).unwrap_or(tokens.len() + 1);
            let ed_video = find(cfg.video_token_id, remain_videos).unwrap_or(tokens.len() + 1);
            let (grid, second_per_grid_t, ed) = if ed_image < ed_video {
                let g = *grids.image.get(image_index).ok_or_else(|| {
                    GeomError::invalid(format!(
                        "the prompts hold more images than the {} image grids given",
                        grids.image.len()
                    ))
                })?;
                image_index += 1;
                remain_images -= 1;
                (g, 0.0, ed_image)
            } else {
                let g = *grids.video.get(video_index).ok_or_else(|| {
                    GeomError::invalid(format!(
                        "the prompts hold more videos than the {} video grids given",
                        grids.video.len()
                    ))
                })?;
                let s = grids
                    .second_per_grid_ts
                    .get(video_index)
                    .copied()
                    .unwrap_or(1.0);
                video_index += 1;
                remain_videos -= 1;
                (g, s, ed_video)
            };
            let (gt, gh, gw) = (grid[0], grid[1] / merge, grid[2] / merge);
            let placeholder = tokens[ed];
            let n_tokens = gt * gh * gw;
            if tokens.len() < ed + n_tokens
                || tokens[ed..ed + n_tokens].iter().any(|&x| x != placeholder)
            {
                return Err(GeomError::invalid(format!(
                    "sample {i}: a grid of {grid:?} needs {n_tokens} consecutive placeholder tokens {placeholder} at position {ed}"
                )));
            }
            let text_len = ed - st;
            let st_idx = next_start(&ids);
            for k in 0..text_len as i64 {
                for a in &mut ids {
                    a.push(st_idx + k);
                }
            }
            let base = st_idx + text_len as i64;
            // The reference casts second_per_grid_t to an integer before scaling.
            let spgt = second_per_grid_t.trunc();
            for ti in 0..gt {
                let tpos = (ti as f64 * spgt * tps) as i64;
                for hi in 0..gh {
                    for wi in 0..gw {
                        ids[0].push(base + tpos);
                        ids[1].push(base + hi as i64);
                        ids[2].push(base + wi as i64);
                    }
                }
            }
            st = ed + gt * gh * gw;
        }
        if st < tokens.len() {
            let st_idx = next_start(&ids);
            for k in 0..(tokens.len() - st) as i64 {
                for a in &mut ids {
                    a.push(st_idx + k);
                }
            }
        }
        if ids[0].len() != kept.len() {
            return Err(GeomError::invalid(format!(
                "sample {i}: {} placeholder/text positions for {} tokens (do the image grids match the number of image tokens?)",
                ids[0].len(),
                kept.len()
            )));
        }
        for (n, &j) in kept.iter().enumerate() {
            for a in 0..3 {
                pos[[a, i, j]] = ids[a][n];
            }
        }
        let max = ids
            .iter()
            .flat_map(|v| v.iter())
            .max()
            .copied()
            .unwrap_or(-1);
        deltas.push(max + 1 - t as i64);
    }
    Ok((pos, deltas))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg() -> Qwen2_5VlConfig {
        Qwen2_5VlConfig::from_json(&json!({
            "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 2,
            "rope_scaling": {"mrope_section": [2, 3, 3]}, "image_token_id": 9, "video_token_id": 8,
            "vision_start_token_id": 7, "vision_end_token_id": 6,
            "vision_config": {"hidden_size": 32, "num_heads": 2, "out_hidden_size": 64, "tokens_per_second": 2}
        }))
        .unwrap()
    }

    #[test]
    fn text_with_left_padding() {
        let (p, d) = rope_index(
            &cfg(),
            &[vec![0, 0, 5, 5, 5]],
            Some(&[vec![0, 0, 1, 1, 1]]),
            &VisualGrids::default(),
        )
        .unwrap();
        assert_eq!(p.slice(ndarray::s![0, 0, ..]).to_vec(), vec![1, 1, 0, 1, 2]);
        assert_eq!(d, vec![3 - 5]);
    }

    #[test]
    fn image_grid_positions() {
        // text(2) <vs> 4 image tokens (grid 1×4×4 merged 2×2 → 2×2) <ve> text(1)
        let ids = vec![vec![1, 7, 9, 9, 9, 9, 6, 1]];
        let grids = VisualGrids {
            image: vec![[1, 4, 4]],
            ..Default::default()
        };
        let (p, d) = rope_index(&cfg(), &ids, None, &grids).unwrap();
        let row = |a: usize| p.slice(ndarray::s![a, 0, ..]).to_vec();
        assert_eq!(row(0), vec![0, 1, 2, 2, 2, 2, 4, 5]);
        assert_eq!(row(1), vec![0, 1, 2, 2, 3, 3, 4, 5]);
        assert_eq!(row(2), vec![0, 1, 2, 3, 2, 3, 4, 5]);
        assert_eq!(d, vec![6 - 8]);
    }

    #[test]
    fn video_temporal_ids_truncate_seconds_per_grid() {
        // 2 temporal grid steps, 1×1 merged tokens each.
        let ids = vec![vec![7, 8, 8, 6]];
        let mk = |s: f64| VisualGrids {
            video: vec![[2, 2, 2]],
            second_per_grid_ts: vec![s],
            ..Default::default()
        };
        let (p, _) = rope_index(&cfg(), &ids, None, &mk(1.0)).unwrap();
        assert_eq!(p.slice(ndarray::s![0, 0, ..]).to_vec(), vec![0, 1, 3, 4]);
        let (p, _) = rope_index(&cfg(), &ids, None, &mk(0.5)).unwrap();
        assert_eq!(p.slice(ndarray::s![0, 0, ..]).to_vec(), vec![0, 1, 1, 2]);
    }

    #[test]
    fn grid_count_mismatch_is_an_error() {
        let ids = vec![vec![7, 9, 9, 9, 6]];
        let grids = VisualGrids {
            image: vec![[1, 4, 4]],
            ..Default::default()
        };
        assert!(rope_index(&cfg(), &ids, None, &grids).is_err());
    }
}
