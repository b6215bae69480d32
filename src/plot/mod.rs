//! Figures: the paper's layer curves (Figures 1–2) and layer × layer heatmaps.
//!
//! Everything is drawn with `plotters` using a bundled font (no system fonts
//! needed), to SVG and/or PNG. The PNG is rendered at [`PNG_SCALE`]× the SVG's
//! pixel size with the same layout, so it stays crisp in a paper or a slide.
//!
//! * [`render_lines`] draws a [`LineFigure`]: panels side by side, one curve
//!   per [`Series`], coloured by [`Series::group`], dashed when
//!   [`Series::dashed`], with an optional confidence band and a shared legend
//!   below the panels.
//! * [`render_heatmap`] draws a [`Heatmap`] (e.g. all-pairs kernel alignment)
//!   with a viridis colour map, a colour bar and the best cell outlined.
//! * [`render_scatter`] draws a [`ScatterFigure`]: panels of 2-D points (e.g.
//!   a PCA of both modalities, before and after CL) coloured by group, with
//!   equal axis scales, optional centroids and a shared legend.
//! * [`figure1`] and [`figure2`] build the paper's two line figures.

mod font;
mod heatmap;
mod lines;
mod palette;
mod panel;
mod render;
mod scatter;

use std::path::{Path, PathBuf};

use crate::error::{GeomError, Result};

pub use font::ensure_fonts;
pub use heatmap::render_heatmap;
pub use lines::render_lines;
pub(crate) use render::{
    draw_box, format_tick, render, tick_decimals, DrawResult, DrawResultExt, Drawing, Px,
};
pub use scatter::{render_scatter, ScatterFigure, ScatterGroup, ScatterPanel};

/// How much larger than the SVG (in pixels) the PNG is rendered.
pub const PNG_SCALE: f64 = 2.0;

/// One curve: a value per layer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Series {
    /// Legend text, e.g. `"Text (before CL)"`.
    pub label: String,
    /// x values (layer indices).
    pub layers: Vec<usize>,
    /// y values, one per layer; NaN leaves a gap in the curve.
    pub values: Vec<f64>,
    /// Colour key: a modality (`"text"`, `"image"`, `"audio"`, `"video"`,
    /// which have fixed colours) or any other name, e.g. a checkpoint
    /// (coloured in order of first appearance). Empty: the label is used.
    pub group: String,
    /// Draw the curve dashed (e.g. "before CL"); solid otherwise.
    pub dashed: bool,
    /// Optional confidence band `(lower, upper)`, one value per layer each,
    /// drawn as a translucent area in the series colour.
    pub band: Option<(Vec<f64>, Vec<f64>)>,
}

impl Series {
    /// A solid series with no band, coloured by its own label.
    pub fn new(label: impl Into<String>, layers: Vec<usize>, values: Vec<f64>) -> Self {
        Series {
            label: label.into(),
            layers,
            values,
            group: String::new(),
            dashed: false,
            band: None,
        }
    }

    /// Sets the colour group.
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Sets whether the curve is dashed.
    pub fn with_dashed(mut self, dashed: bool) -> Self {
        self.dashed = dashed;
        self
    }

    /// Sets the confidence band `(lower, upper)`.
    pub fn with_band(mut self, lower: Vec<f64>, upper: Vec<f64>) -> Self {
        self.band = Some((lower, upper));
        self
    }

    /// The key used to pick the colour: the group, or the label if no group.
    pub fn color_key(&self) -> &str {
        if self.group.is_empty() {
            &self.label
        } else {
            &self.group
        }
    }

    /// Whether at least one value is finite (all-NaN series are not drawn).
    pub fn has_data(&self) -> bool {
        self.values.iter().any(|v| v.is_finite())
    }

    /// Checks that layers, values and the band have matching lengths.
    pub fn validate(&self) -> Result<()> {
        if self.layers.len() != self.values.len() {
            return Err(GeomError::invalid(format!(
                "series '{}' has {} layers but {} values (expected one value per layer)",
                self.label,
                self.layers.len(),
                self.values.len()
            )));
        }
        if let Some((lo, hi)) = &self.band {
            if lo.len() != self.layers.len() || hi.len() != self.layers.len() {
                return Err(GeomError::invalid(format!(
                    "series '{}' has {} layers but its band has {} lower and {} upper values",
                    self.label,
                    self.layers.len(),
                    lo.len(),
                    hi.len()
                )));
            }
        }
        Ok(())
    }
}

/// One panel of a line figure (e.g. one paired dataset).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Panel {
    /// Panel title drawn above the plot area (empty: none).
    pub title: String,
    /// The curves of this panel.
    pub series: Vec<Series>,
}

/// A figure made of panels side by side sharing axis labels.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LineFigure {
    /// Figure title above all panels, if any.
    pub title: Option<String>,
    /// x-axis label, drawn under every panel.
    pub x_label: String,
    /// y-axis label, drawn once at the left of the first panel.
    pub y_label: String,
    /// The panels, left to right; each has its own y range.
    pub panels: Vec<Panel>,
    /// Small print under the legend (wrapped to the figure width), if any.
    pub footnote: Option<String>,
}

/// Layer × layer matrix (all-pairs kernel alignment).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Heatmap {
    /// Title above the matrix.
    pub title: String,
    /// Name of the row side (y axis), e.g. `"Text layer"`.
    pub a_label: String,
    /// Name of the column side (x axis), e.g. `"Image layer"`.
    pub b_label: String,
    /// Layer index of each row.
    pub a_layers: Vec<usize>,
    /// Layer index of each column.
    pub b_layers: Vec<usize>,
    /// `matrix[i][j]` is the value for `a_layers[i]` and `b_layers[j]`;
    /// NaN cells are drawn grey.
    pub matrix: Vec<Vec<f64>>,
    /// Indices `(i, j)` into `a_layers`/`b_layers` of the cell to outline.
    pub best: Option<(usize, usize)>,
}

/// Which files to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum ImageFormat {
    /// Scalable vector graphics (`.svg`), text kept as text.
    Svg,
    /// Raster image (`.png`) at [`PNG_SCALE`]× the SVG size.
    Png,
}

impl ImageFormat {
    /// Both formats, SVG first.
    pub const ALL: [ImageFormat; 2] = [ImageFormat::Svg, ImageFormat::Png];

    /// File extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ImageFormat::Svg => "svg",
            ImageFormat::Png => "png",
        }
    }

    /// Parses `"svg"` or `"png"` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "svg" => Ok(ImageFormat::Svg),
            "png" => Ok(ImageFormat::Png),
            other => Err(GeomError::invalid(format!(
                "unknown image format '{other}' (expected 'svg' or 'png')"
            ))),
        }
    }

    /// `<stem>.<ext>`. The stem's own dots are kept (`fig.v2` → `fig.v2.svg`),
    /// but a trailing `.svg` or `.png` is dropped (`fig.png` → `fig.svg`).
    pub fn path_for(self, stem: &Path) -> PathBuf {
        let has_image_ext = stem
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| ImageFormat::parse(e).is_ok());
        let stem = if has_image_ext {
            stem.with_extension("")
        } else {
            stem.to_path_buf()
        };
        let mut s = stem.into_os_string();
        s.push(".");
        s.push(self.extension());
        PathBuf::from(s)
    }
}

/// Figure 1 of the paper: anisotropy vs layer, one panel per paired dataset
/// (e.g. "PixMo-Cap (text–image)"), one line per modality × checkpoint
/// (before/after CL: set [`Series::dashed`] for "before").
pub fn figure1(panels: Vec<Panel>) -> LineFigure {
    LineFigure {
        title: Some("Anisotropy of hidden states across layers".to_string()),
        x_label: "Layer".to_string(),
        y_label: "Anisotropy (mean pairwise cosine)".to_string(),
        panels,
        footnote: None,
    }
}

/// Figure 2 of the paper: kernel alignment vs layer, one line per checkpoint
/// (e.g. "Qwen2.5-VL-3B", "Qwen2.5-VL-3B + CL"), single panel.
/// `metric_label` becomes the y label, e.g. "Mutual kNN alignment (k = 10)".
pub fn figure2(title: &str, metric_label: &str, series: Vec<Series>) -> LineFigure {
    LineFigure {
        title: Some(title.to_string()),
        x_label: "Layer".to_string(),
        y_label: metric_label.to_string(),
        panels: vec![Panel {
            title: String::new(),
            series,
        }],
        footnote: None,
    }
}

#[cfg(test)]
mod tests;
