//! Line figures: panels of per-layer curves with a shared legend.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::element::{DashedPathElement, PathElement, Rectangle};
use plotters::prelude::{DrawingArea, DrawingBackend};
use plotters::style::{Color, RGBColor, WHITE};

use super::font::{draw_text, text_width, wrap, TextSpec};
use super::palette::{assign_colors, color_of};
use super::panel::{draw_panel, marker_px, PanelSpec};
use super::{
    draw_box, render, DrawResult, DrawResultExt, Drawing, ImageFormat, LineFigure, Px, Series,
};
use crate::error::{GeomError, Result};

/// Plot width of one panel, in pixels at scale 1 (including tick labels).
pub(super) const PANEL_W: f64 = 520.0;
/// Height of the panel row (caption, plot, tick labels and x label).
pub(super) const PANEL_H: f64 = 420.0;
/// Extra width of the first panel, for the shared y label.
pub(super) const Y_DESC_W: f64 = 26.0;
/// Height of the figure title strip.
pub(super) const TITLE_H: f64 = 40.0;
/// Height of a panel caption strip.
pub(super) const CAPTION_H: f64 = 32.0;
/// Tick mark length.
pub(super) const TICK: f64 = 5.0;

pub(super) const TEXT: RGBColor = RGBColor(0x22, 0x22, 0x22);
pub(super) const AXIS: RGBColor = RGBColor(0x44, 0x44, 0x44);
pub(super) const GRID: RGBColor = RGBColor(0xE3, 0xE3, 0xE3);
pub(super) const MUTED: RGBColor = RGBColor(0x66, 0x66, 0x66);

pub(super) const FS_TITLE: f64 = 22.0;
pub(super) const FS_CAPTION: f64 = 19.0;
pub(super) const FS_DESC: f64 = 17.5;
pub(super) const FS_TICK: f64 = 15.5;
pub(super) const FS_LEGEND: f64 = 16.0;
pub(super) const FS_FOOT: f64 = 14.0;

pub(super) const LINE_W: f64 = 2.0;
pub(super) const MARKER_R: f64 = 3.2;
pub(super) const DASH: f64 = 7.0;
pub(super) const GAP: f64 = 4.5;
pub(super) const BAND_ALPHA: f64 = 0.16;
/// At most this many markers per curve; denser curves get every k-th.
pub(super) const MAX_MARKERS: usize = 40;

pub(super) const LEGEND_SAMPLE_W: f64 = 42.0;
pub(super) const LEGEND_ROW_H: f64 = 26.0;
pub(super) const LEGEND_PAD: f64 = 10.0;
pub(super) const LEGEND_COL_GAP: f64 = 28.0;
pub(super) const FOOT_LINE_H: f64 = 19.0;

/// Renders a line figure to `<stem>.svg` and `<stem>.png` (or the formats
/// given; an empty slice means both) and returns the paths written.
///
/// Each panel gets its own y range fitted to its data and bands (5% margin);
/// NaN values leave gaps and all-NaN series are skipped. The legend lists
/// every distinct label once, below the panels.
///
/// # Errors
/// [`GeomError::InvalidArgument`] if the figure has no panels, a series'
/// lengths disagree, or drawing fails; [`GeomError::Io`] if a file or its
/// folder cannot be written.
pub fn render_lines(
    fig: &LineFigure,
    stem: &Path,
    formats: &[ImageFormat],
) -> Result<Vec<PathBuf>> {
    if fig.panels.is_empty() {
        return Err(GeomError::invalid(format!(
            "cannot draw {}: the figure has no panels",
            stem.display()
        )));
    }
    for panel in &fig.panels {
        for s in &panel.series {
            s.validate()?;
        }
    }
    super::ensure_fonts()?;
    render(&LinePlot::new(fig), stem, formats)
}

/// One legend line.
struct LegendEntry {
    label: String,
    color: RGBColor,
    dashed: bool,
    band: bool,
}

/// A figure with its colours and scale-1 layout worked out.
struct LinePlot<'a> {
    fig: &'a LineFigure,
    colors: Vec<(String, RGBColor)>,
    legend: Vec<LegendEntry>,
    legend_cols: usize,
    legend_col_w: f64,
    footnote: Vec<String>,
    width: f64,
}

impl<'a> LinePlot<'a> {
    fn new(fig: &'a LineFigure) -> Self {
        let drawn = || {
            fig.panels
                .iter()
                .flat_map(|p| &p.series)
                .filter(|s| s.has_data())
        };
        let colors = assign_colors(drawn().map(Series::color_key));
        let mut legend: Vec<LegendEntry> = Vec::new();
        for s in drawn() {
            if s.label.is_empty() || legend.iter().any(|e| e.label == s.label) {
                continue;
            }
            legend.push(LegendEntry {
                label: s.label.clone(),
                color: color_of(&colors, s.color_key()),
                dashed: s.dashed,
                band: s.band.is_some(),
            });
        }
        let width = PANEL_W * fig.panels.len() as f64 + Y_DESC_W;
        let text_w = legend
            .iter()
            .map(|e| text_width(&e.label, FS_LEGEND))
            .fold(0.0, f64::max);
        let legend_col_w = LEGEND_SAMPLE_W + 8.0 + text_w + LEGEND_COL_GAP;
        let fit = (((width - 2.0 * LEGEND_PAD) / legend_col_w).floor() as usize).max(1);
        let n = legend.len().max(1);
        let rows = n.div_ceil(fit);
        let legend_cols = n.div_ceil(rows);
        let footnote = fig
            .footnote
            .as_deref()
            .map(|f| wrap(f, FS_FOOT, width - 24.0))
            .unwrap_or_default();
        LinePlot {
            fig,
            colors,
            legend,
            legend_cols,
            legend_col_w,
            footnote,
            width,
        }
    }

    fn title_h(&self) -> f64 {
        if self.fig.title.as_deref().is_some_and(|t| !t.is_empty()) {
            TITLE_H
        } else {
            8.0
        }
    }

    fn legend_h(&self) -> f64 {
        if self.legend.is_empty() {
            0.0
        } else {
            let rows = self.legend.len().div_ceil(self.legend_cols);
            rows as f64 * LEGEND_ROW_H + 2.0 * LEGEND_PAD
        }
    }
}

impl Drawing for LinePlot<'_> {
    fn size(&self) -> (u32, u32) {
        let foot = if self.footnote.is_empty() {
            0.0
        } else {
            self.footnote.len() as f64 * FOOT_LINE_H + 8.0
        };
        let h = self.title_h() + PANEL_H + self.legend_h() + foot + 6.0;
        (self.width.round() as u32, h.round() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, px: Px) -> DrawResult {
        root.fill(&WHITE).de()?;
        let top = self.title_h();
        let mut x = 0.0;
        let mut plots_x = (i32::MAX, i32::MIN);
        for (k, panel) in self.fig.panels.iter().enumerate() {
            let w = if k == 0 { PANEL_W + Y_DESC_W } else { PANEL_W };
            let area = root
                .clone()
                .shrink((px.i(x), px.i(top)), (px.i(w), px.i(PANEL_H)));
            let spec = PanelSpec {
                title: &panel.title,
                series: &panel.series,
                x_label: &self.fig.x_label,
                y_label: (k == 0).then_some(self.fig.y_label.as_str()),
                colors: &self.colors,
            };
            let (a, b) = draw_panel(root, &area, &spec, px)?;
            plots_x = (plots_x.0.min(a), plots_x.1.max(b));
            x += w;
        }
        // Title and legend are centred over the plot areas, not the margins.
        let center = (plots_x.0 + plots_x.1) as f64 / 2.0 / px.scale;
        if let Some(title) = self.fig.title.as_deref().filter(|t| !t.is_empty()) {
            let at = (px.i(center), px.i(self.title_h() / 2.0 + 2.0));
            draw_text(root, title, at, TextSpec::new(FS_TITLE, TEXT), px)?;
        }
        let legend_top = top + PANEL_H;
        self.draw_legend(root, legend_top, center, px)?;
        let mut y = legend_top + self.legend_h() + 4.0 + FOOT_LINE_H / 2.0;
        for line in &self.footnote {
            let spec = TextSpec::new(FS_FOOT, MUTED).left();
            draw_text(root, line, (px.i(12.0), px.i(y)), spec, px)?;
            y += FOOT_LINE_H;
        }
        Ok(())
    }
}

impl LinePlot<'_> {
    /// Draws the legend box below the panels, centred on `center` (scale-1 px).
    fn draw_legend<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        top: f64,
        center: f64,
        px: Px,
    ) -> DrawResult {
        if self.legend.is_empty() {
            return Ok(());
        }
        let rows = self.legend.len().div_ceil(self.legend_cols);
        let cols = self.legend_cols;
        let total_w = cols as f64 * self.legend_col_w - LEGEND_COL_GAP + 2.0 * LEGEND_PAD;
        let left = (center - total_w / 2.0).min(self.width - total_w).max(0.0);
        let box_top = top + 4.0;
        let box_h = rows as f64 * LEGEND_ROW_H + 2.0 * LEGEND_PAD - 8.0;
        draw_box(
            root,
            (px.i(left), px.i(box_top)),
            (px.i(left + total_w), px.i(box_top + box_h)),
            RGBColor(0xBB, 0xBB, 0xBB).stroke_width(px.u(1.0)),
        )?;
        for (k, e) in self.legend.iter().enumerate() {
            let (r, c) = (k / cols, k % cols);
            let x = left + LEGEND_PAD + c as f64 * self.legend_col_w;
            let y = box_top + LEGEND_PAD - 4.0 + (r as f64 + 0.5) * LEGEND_ROW_H;
            let (xa, xb, yc) = (px.i(x), px.i(x + LEGEND_SAMPLE_W), px.i(y));
            if e.band {
                root.draw(&Rectangle::new(
                    [(xa, px.i(y - 6.0)), (xb, px.i(y + 6.0))],
                    e.color.mix(BAND_ALPHA).filled(),
                ))
                .de()?;
            }
            let style = e.color.stroke_width(px.u(LINE_W));
            if e.dashed {
                let seg = vec![(xa, yc), (xb, yc)];
                root.draw(&DashedPathElement::new(seg, px.i(DASH), px.i(GAP), style))
                    .de()?;
            } else {
                root.draw(&PathElement::new(vec![(xa, yc), (xb, yc)], style))
                    .de()?;
            }
            let mid = (x + LEGEND_SAMPLE_W / 2.0, y);
            for m in marker_px((px.i(mid.0), px.i(mid.1)), e.color, e.dashed, px) {
                root.draw(&m).de()?;
            }
            let at = (px.i(x + LEGEND_SAMPLE_W + 8.0), yc);
            draw_text(
                root,
                &e.label,
                at,
                TextSpec::new(FS_LEGEND, TEXT).left(),
                px,
            )?;
        }
        Ok(())
    }
}
