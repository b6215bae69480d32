//! Readers of the reference fixtures' safetensors case files, shared by the
//! model parity tests.

#![allow(dead_code)]

use std::path::Path;

use safetensors::{Dtype, SafeTensors};

/// An integer tensor of a case file, flattened, with its shape (floats are
/// truncated, for grids saved as floats).
pub fn ints(file: &Path, key: &str) -> Option<(Vec<i64>, Vec<usize>)> {
    let bytes = std::fs::read(file).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(key).ok()?;
    let v = match t.dtype() {
        Dtype::I64 => t
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        Dtype::I32 => t
            .data()
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
            .collect(),
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as i64)
            .collect(),
        d => panic!("{key}: unexpected dtype {d:?}"),
    };
    Some((v, t.shape().to_vec()))
}

/// A float tensor of a case file, flattened, as f64, with its shape.
pub fn floats_shaped(file: &Path, key: &str) -> Option<(Vec<f64>, Vec<usize>)> {
    let bytes = std::fs::read(file).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(key).ok()?;
    let v = match t.dtype() {
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        Dtype::F64 => t
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        d => panic!("{key}: unexpected dtype {d:?}"),
    };
    Some((v, t.shape().to_vec()))
}

/// A float tensor of a case file, flattened, as f64.
pub fn floats(file: &Path, key: &str) -> Option<Vec<f64>> {
    floats_shaped(file, key).map(|(v, _)| v)
}

/// `[n, 3]` grids as `(t, h, w)` rows.
pub fn grids(v: Option<(Vec<i64>, Vec<usize>)>) -> Vec<[usize; 3]> {
    v.map(|(g, _)| {
        g.chunks(3)
            .map(|c| [c[0] as usize, c[1] as usize, c[2] as usize])
            .collect()
    })
    .unwrap_or_default()
}

/// Token ids as `B` rows and the attention mask, from a `[B, T]` case.
pub fn ids_and_mask(file: &Path) -> (Vec<Vec<u32>>, Option<Vec<Vec<u8>>>) {
    let (ids, shape) = ints(file, "input_ids").unwrap();
    let t = shape[1];
    let rows = ids
        .chunks(t)
        .map(|r| r.iter().map(|&x| x as u32).collect())
        .collect();
    let mask = ints(file, "attention_mask").map(|(m, _)| {
        m.chunks(t)
            .map(|r| r.iter().map(|&x| x as u8).collect())
            .collect()
    });
    (rows, mask)
}

/// Max |geom − reference| of one `[B, T, H]` state against layer `l` of a
/// stacked `[L+1, B, T, H]` reference, at the real (unpadded) positions.
pub fn state_err(got: &[f32], want: &[f64], l: usize, mask: &[Vec<u8>], h: usize) -> f64 {
    let (b, t) = (mask.len(), mask[0].len());
    let mut err = 0f64;
    for bi in 0..b {
        for ti in (0..t).filter(|&ti| mask[bi][ti] == 1) {
            for d in 0..h {
                let g = got[(bi * t + ti) * h + d] as f64;
                err = err.max((g - want[((l * b + bi) * t + ti) * h + d]).abs());
            }
        }
    }
    err
}

/// Max |a − b| of two equally long vectors.
pub fn max_abs(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y).abs())
        .fold(0.0, f64::max)
}
