//! Hook points, capture specs and pooling.
//!
//! A [`CaptureSpec`] names the hook points whose activations the one
//! `forward` should return beside its output; an empty spec costs nothing.
//! Hook points print and parse with readable names:
//!
//! | hook point | name | what |
//! |---|---|---|
//! | `Embeddings` | `embeddings` | token embeddings (images/videos scattered in) |
//! | `ResidPost(i)` | `layers.{i}.resid_post` | output of decoder layer i (before any final norm) |
//! | `FinalNorm` | `norm` | output of the final RMSNorm |
//! | `VisionBlock(i)` | `visual.blocks.{i}` | output of vision block i, per patch, in processor order |
//! | `AudioLayer(i)` | `audio.layers.{i}` | output of audio-encoder layer i (Qwen2.5-Omni), per token after the convolutions, in clip then chunk order |
//!
//! [`CaptureSpec::hidden_states`] reproduces transformers'
//! `output_hidden_states=True`: L+1 states — the embeddings, the outputs of
//! layers 0..L−2, and the final norm applied to the last layer's output
//! (`layers.{L-1}.resid_post` is the same state *before* that norm).

use std::fmt;
use std::str::FromStr;

use crate::error::GeomError;

/// A place in the model whose activation can be captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookPoint {
    /// Input embeddings of the decoder.
    Embeddings,
    /// Residual stream after decoder layer `i`.
    ResidPost(usize),
    /// After the final RMSNorm.
    FinalNorm,
    /// Output of vision block `i` (`[patches, vision hidden]`, rows in the
    /// image processor's order, i.e. the window permutation undone).
    VisionBlock(usize),
    /// Output of audio-encoder layer `i` (Qwen2.5-Omni; `[tokens, audio
    /// d_model]`, the tokens after the two convolutions, clip by clip).
    AudioLayer(usize),
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HookPoint::Embeddings => f.write_str("embeddings"),
            HookPoint::ResidPost(i) => write!(f, "layers.{i}.resid_post"),
            HookPoint::FinalNorm => f.write_str("norm"),
            HookPoint::VisionBlock(i) => write!(f, "visual.blocks.{i}"),
            HookPoint::AudioLayer(i) => write!(f, "audio.layers.{i}"),
        }
    }
}

impl FromStr for HookPoint {
    type Err = GeomError;
    fn from_str(s: &str) -> Result<Self, GeomError> {
        let bad = || {
            GeomError::invalid(format!(
                "unknown hook point '{s}' (expected embeddings, layers.N.resid_post, norm, visual.blocks.N or audio.layers.N)"
            ))
        };
        match s {
            "embeddings" => Ok(HookPoint::Embeddings),
            "norm" => Ok(HookPoint::FinalNorm),
            _ if s.starts_with("visual.blocks.") => s["visual.blocks.".len()..]
                .parse()
                .map(HookPoint::VisionBlock)
                .map_err(|_| bad()),
            _ if s.starts_with("audio.layers.") => s["audio.layers.".len()..]
                .parse()
                .map(HookPoint::AudioLayer)
                .map_err(|_| bad()),
            _ => {
                let rest = s
                    .strip_prefix("layers.")
                    .and_then(|r| r.strip_suffix(".resid_post"))
                    .ok_or_else(bad)?;
                rest.parse().map(HookPoint::ResidPost).map_err(|_| bad())
            }
        }
    }
}

/// Which hook points to capture, in output order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureSpec {
    /// The points, in the order the captures are returned.
    pub points: Vec<HookPoint>,
}

impl CaptureSpec {
    /// Capture nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// transformers' `output_hidden_states` for a decoder of `n_layers` layers.
    pub fn hidden_states(n_layers: usize) -> Self {
        let mut points = vec![HookPoint::Embeddings];
        points.extend((0..n_layers.saturating_sub(1)).map(HookPoint::ResidPost));
        points.push(HookPoint::FinalNorm);
        Self { points }
    }

    /// Whether `p` is captured.
    pub fn wants(&self, p: HookPoint) -> bool {
        self.points.contains(&p)
    }

    /// The vision blocks captured, in the spec's order.
    pub fn vision_blocks(&self) -> Vec<usize> {
        self.points
            .iter()
            .filter_map(|p| match p {
                HookPoint::VisionBlock(i) => Some(*i),
                _ => None,
            })
            .collect()
    }

    /// The audio-encoder layers captured, in the spec's order.
    pub fn audio_layers(&self) -> Vec<usize> {
        self.points
            .iter()
            .filter_map(|p| match p {
                HookPoint::AudioLayer(i) => Some(*i),
                _ => None,
            })
            .collect()
    }

    /// True when nothing is captured.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// How a sequence of token states becomes one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The state of the last real token (correct under left or right padding).
    LastToken,
    /// Mean over real tokens (attention mask 1).
    Mean,
    /// The state at a given position of the unpadded sequence (negative from the end).
    Position(i64),
}

/// `last`, `mean` or the position (`-2`): the names of `--pooling` and of
/// the store's `pooling` attribute.
impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pooling::LastToken => f.write_str("last"),
            Pooling::Mean => f.write_str("mean"),
            Pooling::Position(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for Pooling {
    type Err = GeomError;
    fn from_str(s: &str) -> Result<Self, GeomError> {
        match s {
            "last" | "last-token" => Ok(Pooling::LastToken),
            "mean" => Ok(Pooling::Mean),
            _ => s.parse().map(Pooling::Position).map_err(|_| {
                GeomError::invalid(format!(
                    "unknown pooling '{s}' (expected last, mean or a token position such as -2)"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [
            HookPoint::Embeddings,
            HookPoint::ResidPost(7),
            HookPoint::FinalNorm,
            HookPoint::VisionBlock(3),
            HookPoint::AudioLayer(2),
        ] {
            assert_eq!(p.to_string().parse::<HookPoint>().unwrap(), p);
        }
        assert!("layers.x.resid_post".parse::<HookPoint>().is_err());
        for p in [Pooling::LastToken, Pooling::Mean, Pooling::Position(-2)] {
            assert_eq!(p.to_string().parse::<Pooling>().unwrap(), p);
        }
        assert!("max".parse::<Pooling>().is_err());
        let hs = CaptureSpec::hidden_states(3);
        assert_eq!(
            hs.points,
            vec![
                HookPoint::Embeddings,
                HookPoint::ResidPost(0),
                HookPoint::ResidPost(1),
                HookPoint::FinalNorm
            ]
        );
    }
}
