//! Scatter figures: panels of 2-D points (e.g. a PCA of both modalities,
//! before and after CL) coloured by group, with a shared legend.

use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::{Circle, PathElement};
use plotters::prelude::{ChartBuilder, DrawingArea, DrawingBackend};
use plotters::style::{Color, RGBColor, ShapeStyle, WHITE};

use super::font::{draw_text, font, text_width, wrap, TextSpec};
use super::lines::{
    AXIS, CAPTION_H, FOOT_LINE_H, FS_CAPTION, FS_DESC, FS_FOOT, FS_LEGEND, FS_TICK, FS_TITLE, GRID,
    LEGEND_COL_GAP, LEGEND_PAD, LEGEND_ROW_H, MUTED, TEXT, TICK, TITLE_H, Y_DESC_W,
};
use super::palette::{assign_colors, color_of};
use super::{draw_box, format_tick, render, tick_decimals, DrawResult, DrawResultExt, Drawing};
use super::{ImageFormat, Px};
use crate::error::{GeomError, Result};

/// Width of one panel, pixels at scale 1 (tick labels and axis labels included).
const PANEL_W: f64 = 520.0;
/// Height of one panel (caption, subtitle, plot, tick labels and x label).
const PANEL_H: f64 = 540.0;
/// Left and right margins of a panel, and the width of its y tick labels.
const MARGIN_L: f64 = 4.0;
const MARGIN_R: f64 = 18.0;
const Y_TICKS_W: f64 = 62.0;
/// Twice the distance from a panel's centre to its plot area's centre (the
/// y axis's labels take more room than the right margin).
const TITLE_SHIFT: f64 = MARGIN_L + Y_TICKS_W + Y_DESC_W - MARGIN_R;
/// Height of each title line after the first (a long title wraps).
const TITLE_LINE_H: f64 = 28.0;
/// Height of the subtitle strip under a panel caption.
const SUBTITLE_H: f64 = 22.0;
const FS_SUBTITLE: f64 = 15.0;
/// Point radius and opacity: translucent, so dense regions read darker.
const POINT_R: f64 = 2.6;
const POINT_ALPHA: f64 = 0.55;
/// Centroid marker radius and outline width.
const CENTROID_R: f64 = 7.0;
const CENTROID_STROKE: f64 = 2.0;
const CENTROID_EDGE: RGBColor = RGBColor(0x11, 0x11, 0x11);
/// Width of a legend sample (a point, or the centroid marker).
const SAMPLE_W: f64 = 18.0;
/// Fraction of the data range added on every side.
const PAD: f64 = 0.05;

/// One set of points drawn in one colour (e.g. one modality).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScatterGroup {
    /// Legend text, e.g. `"image"`.
    pub label: String,
    /// Colour key: a modality (`"text"`, `"image"`, `"audio"`, `"video"`
    /// have fixed colours) or any other name. Empty: the label is used.
    pub group: String,
    /// x coordinates.
    pub x: Vec<f64>,
    /// y coordinates, one per x; a point with a non-finite coordinate is skipped.
    pub y: Vec<f64>,
}

impl ScatterGroup {
    /// A group coloured by its own label.
    pub fn new(label: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        ScatterGroup {
            label: label.into(),
            group: String::new(),
            x,
            y,
        }
    }

    /// Sets the colour group.
    pub fn with_group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
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

    /// The finite points.
    fn points(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.x
            .iter()
            .zip(&self.y)
            .map(|(&x, &y)| (x, y))
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    }

    /// Mean of the finite points, if any.
    pub fn centroid(&self) -> Option<(f64, f64)> {
        let (mut sx, mut sy, mut n) = (0.0, 0.0, 0usize);
        for (x, y) in self.points() {
            (sx, sy, n) = (sx + x, sy + y, n + 1);
        }
        (n > 0).then(|| (sx / n as f64, sy / n as f64))
    }
}

/// One panel: a plane with its own axes (e.g. "before CL").
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScatterPanel {
    /// Caption above the plot (empty: none).
    pub title: String,
    /// A smaller line under the caption, e.g. the trustworthiness (empty: none).
    pub subtitle: String,
    /// x-axis description, e.g. `"PC1 (41.2%)"`.
    pub x_label: String,
    /// y-axis description, e.g. `"PC2 (8.7%)"`.
    pub y_label: String,
    /// The point sets, drawn interleaved so that none hides another wholesale.
    pub groups: Vec<ScatterGroup>,
}

/// Scatter panels side by side with a legend below.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScatterFigure {
    /// Figure title above all panels, if any.
    pub title: Option<String>,
    /// The panels, left to right; each has its own axes.
    pub panels: Vec<ScatterPanel>,
    /// Mark every group's centroid with a large outlined disc.
    pub centroids: bool,
    /// Small print under the legend (wrapped to the figure width), if any.
    pub footnote: Option<String>,
}

/// Renders a scatter figure to `<stem>.svg` and `<stem>.png` (or the
/// formats given; an empty slice means both) and returns the paths written.
///
/// Both axes of a panel have the same scale (a unit along x is as long as a
/// unit along y), so distances in the plane read true; the data range is
/// padded by 5% and the shorter side widened to the panel's aspect ratio.
/// Points are translucent discs in their group's colour; the legend lists
/// every distinct group label once.
///
/// # Errors
/// [`GeomError::InvalidArgument`] if the figure has no panels, a group's
/// `x` and `y` differ in length, or drawing fails; [`GeomError::Io`] if a
/// file or its folder cannot be written.
pub fn render_scatter(
    fig: &ScatterFigure,
    stem: &Path,
    formats: &[ImageFormat],
) -> Result<Vec<PathBuf>> {
    if fig.panels.is_empty() {
        return Err(GeomError::invalid(format!(
            "cannot draw {}: the figure has no panels",
            stem.display()
        )));
    }
    for g in fig.panels.iter().flat_map(|p| &p.groups) {
        if g.x.len() != g.y.len() {
            return Err(GeomError::invalid(format!(
                "scatter group '{}' has {} x but {} y values (expected one y per x)",
                g.label,
                g.x.len(),
                g.y.len()
            )));
        }
    }
    super::ensure_fonts()?;
    render(&ScatterPlot::new(fig), stem, formats)
}

/// A figure with its colours, legend and footnote laid out.
struct ScatterPlot<'a> {
    fig: &'a ScatterFigure,
    colors: Vec<(String, RGBColor)>,
    /// `(label, colour, is the centroid entry)`.
    legend: Vec<(String, RGBColor, bool)>,
    /// The title wrapped to the figure width (empty: none).
    title: Vec<String>,
    footnote: Vec<String>,
    width: f64,
}

impl<'a> ScatterPlot<'a> {
    fn new(fig: &'a ScatterFigure) -> Self {
        let groups = || fig.panels.iter().flat_map(|p| &p.groups);
        let colors = assign_colors(groups().map(ScatterGroup::color_key));
        let mut legend: Vec<(String, RGBColor, bool)> = Vec::new();
        for g in groups() {
            if !g.label.is_empty() && !legend.iter().any(|e| e.0 == g.label) {
                legend.push((g.label.clone(), color_of(&colors, g.color_key()), false));
            }
        }
        if fig.centroids && !legend.is_empty() {
            legend.push(("centroid".to_string(), MUTED, true));
        }
        let width = PANEL_W * fig.panels.len() as f64;
        let footnote = fig
            .footnote
            .as_deref()
            .map(|f| wrap(f, FS_FOOT, width - 24.0))
            .unwrap_or_default();
        let title = fig
            .title
            .as_deref()
            .filter(|t| !t.is_empty())
            // Centred over the plot areas, which sit right of the panel centres.
            .map(|t| wrap(t, FS_TITLE, width - 24.0 - TITLE_SHIFT))
            .unwrap_or_default();
        ScatterPlot {
            fig,
            colors,
            legend,
            title,
            footnote,
            width,
        }
    }

    fn title_h(&self) -> f64 {
        match self.title.len() {
            0 => 8.0,
            n => TITLE_H + (n - 1) as f64 * TITLE_LINE_H,
        }
    }

    /// Legend entries per row, and the width of each entry.
    fn legend_layout(&self) -> (usize, Vec<f64>) {
        let widths: Vec<f64> = self
            .legend
            .iter()
            .map(|e| SAMPLE_W + 8.0 + text_width(&e.0, FS_LEGEND) + LEGEND_COL_GAP)
            .collect();
        let col_w = widths.iter().fold(0.0, |a: f64, &b| a.max(b));
        let fit = (((self.width - 2.0 * LEGEND_PAD) / col_w.max(1.0)).floor() as usize).max(1);
        (fit, vec![col_w; widths.len()])
    }

    fn legend_h(&self) -> f64 {
        if self.legend.is_empty() {
            return 0.0;
        }
        let (cols, _) = self.legend_layout();
        self.legend.len().div_ceil(cols) as f64 * LEGEND_ROW_H + 2.0 * LEGEND_PAD
    }
}

impl Drawing for ScatterPlot<'_> {
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
        let mut plots_x = (i32::MAX, i32::MIN);
        for (k, panel) in self.fig.panels.iter().enumerate() {
            let area = root.clone().shrink(
                (px.i(k as f64 * PANEL_W), px.i(top)),
                (px.i(PANEL_W), px.i(PANEL_H)),
            );
            let (a, b) = self.draw_panel(root, &area, panel, px)?;
            plots_x = (plots_x.0.min(a), plots_x.1.max(b));
        }
        let center = (plots_x.0 + plots_x.1) as f64 / 2.0 / px.scale;
        for (i, line) in self.title.iter().enumerate() {
            let y = TITLE_H / 2.0 + 2.0 + i as f64 * TITLE_LINE_H;
            let at = (px.i(center), px.i(y));
            draw_text(root, line, at, TextSpec::new(FS_TITLE, TEXT), px)?;
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

/// `(lo, hi)` of the finite values, or `None` if there are none.
fn extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}

/// Axis ranges with equal scale on a `w × h` pixel plot: the padded data
/// ranges, the shorter one widened about its centre to the aspect ratio.
fn equal_aspect(
    x: Option<(f64, f64)>,
    y: Option<(f64, f64)>,
    w: f64,
    h: f64,
) -> ((f64, f64), (f64, f64)) {
    let (x, y) = (x.unwrap_or((-1.0, 1.0)), y.unwrap_or((-1.0, 1.0)));
    let span = |(lo, hi): (f64, f64)| (hi - lo) * (1.0 + 2.0 * PAD);
    let (mut sx, mut sy) = (span(x), span(y));
    if sx <= 0.0 && sy <= 0.0 {
        let s = x.0.abs().max(y.0.abs()).max(1.0) * 0.1;
        (sx, sy) = (s, s);
    }
    // Units per pixel: the larger of the two, for both axes.
    let upp = (sx / w).max(sy / h);
    let (cx, cy) = ((x.0 + x.1) / 2.0, (y.0 + y.1) / 2.0);
    let (hx, hy) = (upp * w / 2.0, upp * h / 2.0);
    ((cx - hx, cx + hx), (cy - hy, cy + hy))
}

impl ScatterPlot<'_> {
    /// Draws one panel into `area` (absolute text on `root`); returns the
    /// plot area's x pixel range.
    fn draw_panel<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        area: &DrawingArea<DB, Shift>,
        panel: &ScatterPanel,
        px: Px,
    ) -> DrawResult<(i32, i32)> {
        let head = CAPTION_H
            + if panel.subtitle.is_empty() {
                0.0
            } else {
                SUBTITLE_H
            };
        let builder = || {
            let mut b = ChartBuilder::on(area);
            b.margin_top(px.i(head))
                .margin_right(px.i(MARGIN_R))
                .margin_left(px.i(MARGIN_L))
                .margin_bottom(px.i(4.0))
                .x_label_area_size(px.i(58.0))
                .y_label_area_size(px.i(Y_TICKS_W + Y_DESC_W));
            b
        };
        // The plot's pixel size, to give both axes the same scale.
        let (w, h) = builder()
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .de()?
            .plotting_area()
            .dim_in_pixel();
        let xs = extent(panel.groups.iter().flat_map(|g| g.points().map(|p| p.0)));
        let ys = extent(panel.groups.iter().flat_map(|g| g.points().map(|p| p.1)));
        let ((x0, x1), (y0, y1)) = equal_aspect(xs, ys, w.max(1) as f64, h.max(1) as f64);
        let mut chart = builder().build_cartesian_2d(x0..x1, y0..y1).de()?;
        let hint = 7;
        let x_dec = tick_decimals(&RangedCoordf64::from(x0..x1).key_points(hint));
        let y_ticks = RangedCoordf64::from(y0..y1).key_points(hint);
        let y_dec = tick_decimals(&y_ticks);
        let x_fmt = |v: &f64| format_tick(*v, x_dec);
        let y_fmt = |v: &f64| format_tick(*v, y_dec);
        let tick_w = y_ticks
            .iter()
            .map(|t| text_width(&y_fmt(t), FS_TICK))
            .fold(0.0, f64::max);
        chart
            .configure_mesh()
            .x_labels(hint)
            .y_labels(hint)
            .max_light_lines(0)
            .bold_line_style(GRID.stroke_width(px.u(1.0)))
            .axis_style(AXIS.stroke_width(px.u(1.0)))
            .set_all_tick_mark_size(px.i(TICK))
            .label_style(font(px.f(FS_TICK)).color(&TEXT))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .draw()
            .de()?;

        // Caption, subtitle, axis descriptions and the frame's top and right edges.
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let mid_x = (xr.start + xr.end) / 2;
        let (_, area_top) = area.get_base_pixel();
        if !panel.title.is_empty() {
            let at = (mid_x, area_top + px.i(CAPTION_H / 2.0));
            draw_text(root, &panel.title, at, TextSpec::new(FS_CAPTION, TEXT), px)?;
        }
        if !panel.subtitle.is_empty() {
            let at = (mid_x, area_top + px.i(CAPTION_H + SUBTITLE_H / 2.0 - 4.0));
            let spec = TextSpec::new(FS_SUBTITLE, MUTED);
            draw_text(root, &panel.subtitle, at, spec, px)?;
        }
        let at = (mid_x, yr.end + px.i(42.0));
        draw_text(root, &panel.x_label, at, TextSpec::new(FS_DESC, TEXT), px)?;
        let x = xr.start - px.i(TICK + 6.0 + tick_w + 14.0);
        let at = (x.max(px.i(12.0)), (yr.start + yr.end) / 2);
        let spec = TextSpec::new(FS_DESC, TEXT).vertical();
        draw_text(root, &panel.y_label, at, spec, px)?;
        let frame = vec![
            (xr.start - 1, yr.start),
            (xr.end, yr.start),
            (xr.end, yr.end),
        ];
        root.draw(&PathElement::new(frame, AXIS.stroke_width(px.u(1.0))))
            .de()?;
        if xs.is_none() {
            let at = (mid_x, (yr.start + yr.end) / 2);
            draw_text(root, "no data", at, TextSpec::new(FS_LEGEND, MUTED), px)?;
            return Ok((xr.start, xr.end));
        }

        // Points, interleaved across groups (i-th of each group in turn).
        let styles: Vec<ShapeStyle> = panel
            .groups
            .iter()
            .map(|g| {
                color_of(&self.colors, g.color_key())
                    .mix(POINT_ALPHA)
                    .filled()
            })
            .collect();
        let longest = panel.groups.iter().map(|g| g.x.len()).max().unwrap_or(0);
        let r = px.i(POINT_R);
        let points = (0..longest).flat_map(|i| {
            panel.groups.iter().zip(&styles).filter_map(move |(g, st)| {
                let (x, y) = (*g.x.get(i)?, *g.y.get(i)?);
                (x.is_finite() && y.is_finite()).then(|| Circle::new((x, y), r, *st))
            })
        });
        chart.draw_series(points).de()?;
        if self.fig.centroids {
            for g in &panel.groups {
                let Some(c) = g.centroid() else { continue };
                let color = color_of(&self.colors, g.color_key());
                for e in centroid_marker(c, color, px) {
                    chart.plotting_area().draw(&e).de()?;
                }
            }
        }
        Ok((xr.start, xr.end))
    }

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
        let (cols, widths) = self.legend_layout();
        let cols = cols.min(self.legend.len());
        let rows = self.legend.len().div_ceil(cols);
        let col_w = widths[0];
        let total_w = cols as f64 * col_w - LEGEND_COL_GAP + 2.0 * LEGEND_PAD;
        let left = (center - total_w / 2.0).min(self.width - total_w).max(0.0);
        let box_top = top + 4.0;
        let box_h = rows as f64 * LEGEND_ROW_H + 2.0 * LEGEND_PAD - 8.0;
        draw_box(
            root,
            (px.i(left), px.i(box_top)),
            (px.i(left + total_w), px.i(box_top + box_h)),
            RGBColor(0xBB, 0xBB, 0xBB).stroke_width(px.u(1.0)),
        )?;
        for (k, (label, color, is_centroid)) in self.legend.iter().enumerate() {
            let (r, c) = (k / cols, k % cols);
            let x = left + LEGEND_PAD + c as f64 * col_w;
            let y = box_top + LEGEND_PAD - 4.0 + (r as f64 + 0.5) * LEGEND_ROW_H;
            let mid = (px.i(x + SAMPLE_W / 2.0), px.i(y));
            if *is_centroid {
                for e in centroid_marker(mid, *color, px) {
                    root.draw(&e).de()?;
                }
            } else {
                // A legend dot is opaque and a little larger than a point.
                let dot = Circle::new(mid, px.i(POINT_R + 1.4), color.filled());
                root.draw(&dot).de()?;
            }
            let at = (px.i(x + SAMPLE_W + 8.0), px.i(y));
            draw_text(root, label, at, TextSpec::new(FS_LEGEND, TEXT).left(), px)?;
        }
        Ok(())
    }
}

/// The centroid marker at `p`: a disc in the group colour with a dark ring.
fn centroid_marker<C: Copy>(p: C, color: RGBColor, px: Px) -> [Circle<C, i32>; 2] {
    let r = px.i(CENTROID_R);
    [
        Circle::new(p, r, color.filled()),
        Circle::new(p, r, CENTROID_EDGE.stroke_width(px.u(CENTROID_STROKE))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_aspect_keeps_units_square() {
        let ((x0, x1), (y0, y1)) =
            equal_aspect(Some((-10.0, 10.0)), Some((-1.0, 2.0)), 400.0, 300.0);
        let (ux, uy) = ((x1 - x0) / 400.0, (y1 - y0) / 300.0);
        assert!((ux - uy).abs() < 1e-12, "{ux} vs {uy}");
        assert!(x0 < -10.0 && x1 > 10.0 && y0 < -1.0 && y1 > 2.0);
        assert!(((y0 + y1) / 2.0 - 0.5).abs() < 1e-12);
        // A single point and no data still give a usable range.
        let ((a, b), (c, d)) = equal_aspect(Some((3.0, 3.0)), Some((3.0, 3.0)), 100.0, 100.0);
        assert!(a < 3.0 && b > 3.0 && c < 3.0 && d > 3.0);
        let ((a, b), _) = equal_aspect(None, None, 100.0, 100.0);
        assert!(a < b);
    }

    #[test]
    fn centroid_skips_non_finite_points() {
        let g = ScatterGroup::new("g", vec![0.0, 2.0, f64::NAN], vec![1.0, 3.0, 0.0]);
        assert_eq!(g.centroid(), Some((1.0, 2.0)));
        assert_eq!(ScatterGroup::new("e", vec![], vec![]).centroid(), None);
    }
}
