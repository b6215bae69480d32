//! The layer selection language of `--layers`.
//!
//! * `all` — every layer, in order;
//! * a comma list `0,5,10`;
//! * half-open ranges `0..12` (layers 0 to 11), with optional ends (`..4`, `30..`)
//!   and the inclusive form `0..=11`;
//! * negative indices counting from the end: `-1` is the last layer
//!   (for a Hugging Face model, the output after the final norm), `-2..` the last two.
//!
//! Items can be mixed (`0,4..8,-1`); duplicates are removed and the order of
//! first appearance is kept.

use crate::error::{GeomError, Result};

/// Resolves a `--layers` specification against a model with `n_layers` hidden states.
///
/// Returns the selected layer indices (each in `0..n_layers`).
///
/// ```
/// use geom::layers::parse_layers;
/// assert_eq!(parse_layers("0,4..6,-1", 37).unwrap(), vec![0, 4, 5, 36]);
/// assert!(parse_layers("37", 37).is_err());
/// ```
pub fn parse_layers(spec: &str, n_layers: usize) -> Result<Vec<usize>> {
    let spec_trim = spec.trim();
    let bad = |reason: &str| GeomError::InvalidLayerSpec {
        spec: spec.to_string(),
        reason: reason.to_string(),
    };
    if spec_trim.is_empty() {
        return Err(bad("it is empty"));
    }
    if spec_trim.eq_ignore_ascii_case("all") {
        return Ok((0..n_layers).collect());
    }
    let mut out: Vec<usize> = Vec::new();
    let push = |l: usize, out: &mut Vec<usize>| {
        if !out.contains(&l) {
            out.push(l);
        }
    };
    for item in spec_trim.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(bad("it has an empty item between commas"));
        }
        if let Some((lo, hi)) = item.split_once("..") {
            let (hi, inclusive) = match hi.strip_prefix('=') {
                Some(h) => (h, true),
                None => (hi, false),
            };
            let lo = if lo.trim().is_empty() {
                0
            } else {
                resolve(parse_int(lo, spec)?, n_layers)?
            };
            let hi_excl = if hi.trim().is_empty() {
                if inclusive {
                    return Err(bad("an inclusive range '..=' needs an end"));
                }
                n_layers
            } else {
                let raw = parse_int(hi, spec)?;
                // An exclusive end may equal n_layers (one past the last layer).
                if !inclusive && raw == n_layers as i64 {
                    n_layers
                } else {
                    resolve(raw, n_layers)? + usize::from(inclusive)
                }
            };
            if lo >= hi_excl {
                return Err(bad(&format!("the range '{item}' selects no layer")));
            }
            for l in lo..hi_excl {
                push(l, &mut out);
            }
        } else {
            let l = resolve(parse_int(item, spec)?, n_layers)?;
            push(l, &mut out);
        }
    }
    Ok(out)
}

fn parse_int(s: &str, spec: &str) -> Result<i64> {
    s.trim()
        .parse::<i64>()
        .map_err(|_| GeomError::InvalidLayerSpec {
            spec: spec.to_string(),
            reason: format!("'{}' is not an integer", s.trim()),
        })
}

/// Maps a possibly negative index to `0..n_layers`.
pub fn resolve(layer: i64, n_layers: usize) -> Result<usize> {
    let n = n_layers as i64;
    let idx = if layer < 0 { n + layer } else { layer };
    if idx < 0 || idx >= n {
        return Err(GeomError::LayerOutOfRange { layer, n_layers });
    }
    Ok(idx as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_lists_ranges_negatives() {
        assert_eq!(parse_layers("all", 4).unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_layers("0,2", 4).unwrap(), vec![0, 2]);
        assert_eq!(parse_layers("1..3", 4).unwrap(), vec![1, 2]);
        assert_eq!(parse_layers("1..=3", 4).unwrap(), vec![1, 2, 3]);
        assert_eq!(parse_layers("..2", 4).unwrap(), vec![0, 1]);
        assert_eq!(parse_layers("2..", 4).unwrap(), vec![2, 3]);
        assert_eq!(parse_layers("-1", 4).unwrap(), vec![3]);
        assert_eq!(parse_layers("-2..", 4).unwrap(), vec![2, 3]);
        assert_eq!(parse_layers("0..4", 4).unwrap(), vec![0, 1, 2, 3]);
        assert_eq!(parse_layers("0, 3, 0, -1", 4).unwrap(), vec![0, 3]);
    }

    #[test]
    fn errors_name_the_value() {
        let e = parse_layers("7", 4).unwrap_err().to_string();
        assert!(e.contains("layer 7") && e.contains("4 layers"), "{e}");
        let e = parse_layers("-5", 4).unwrap_err().to_string();
        assert!(e.contains("-5"), "{e}");
        let e = parse_layers("a", 4).unwrap_err().to_string();
        assert!(e.contains("'a' is not an integer"), "{e}");
        assert!(parse_layers("3..1", 4).is_err());
        assert!(parse_layers("", 4).is_err());
        assert!(parse_layers("0..9", 4).is_err());
    }
}
