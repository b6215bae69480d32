//! Layer × layer heatmaps (e.g. all-pairs kernel alignment) with a colour bar.

use std::path::{Path, PathBuf};

use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::{PathElement, Rectangle};
use plotters::prelude::{ChartBuilder, DrawingArea, DrawingBackend};
use plotters::style::{Color, RGBColor, BLACK, WHITE};

use super::font::{draw_text, font, text_width, TextSpec};
use super::lines::{AXIS, TEXT};
use super::palette::viridis;
use super::{
    draw_box, format_tick, render, tick_decimals, DrawResult, DrawResultExt, Drawing, Heatmap,
    ImageFormat, Px,
};
use crate::error::{GeomError, Result};

/// Side of the (square) matrix area, pixels at scale 1.
const MAT: f64 = 480.0;
const MARGIN: f64 = 12.0;
const LEFT_W: f64 = 80.0;
const BOTTOM_H: f64 = 60.0;
const TITLE_H: f64 = 38.0;
const SUBTITLE_H: f64 = 22.0;
/// Gap between the matrix and the colour bar, and the bar's own width.
const BAR_GAP: f64 = 22.0;
const BAR_W: f64 = 22.0;
/// Room right of the bar for its tick labels.
const BAR_LABELS_W: f64 = 64.0;
const BAR_STEPS: usize = 256;

const FS_TITLE: f64 = 21.0;
const FS_SUBTITLE: f64 = 15.0;
const FS_DESC: f64 = 17.5;
const FS_TICK: f64 = 15.5;

const NAN_COLOR: RGBColor = RGBColor(0xDD, 0xDD, 0xDD);
const MUTED: RGBColor = RGBColor(0x55, 0x55, 0x55);

/// Renders a heatmap to `<stem>.svg` and `<stem>.png` (or the formats
/// given; an empty slice means both) and returns the paths written.
///
/// Rows (`a_layers`) run up the y axis, columns (`b_layers`) along x, layer
/// 0 at the bottom left. Colours follow viridis from the smallest to the
/// largest finite value; NaN cells are grey. The `best` cell is outlined and
/// named under the title.
///
/// # Errors
/// [`GeomError::InvalidArgument`] if the matrix is empty, its shape does not
/// match the layer lists, `best` is out of range, or drawing fails;
/// [`GeomError::Io`] if a file or its folder cannot be written.
pub fn render_heatmap(h: &Heatmap, stem: &Path, formats: &[ImageFormat]) -> Result<Vec<PathBuf>> {
    validate(h)?;
    super::ensure_fonts()?;
    render(&HeatPlot::new(h), stem, formats)
}

fn validate(h: &Heatmap) -> Result<()> {
    let (na, nb) = (h.a_layers.len(), h.b_layers.len());
    if na == 0 || nb == 0 {
        return Err(GeomError::invalid(format!(
            "heatmap '{}' is empty ({na} × {nb} layers)",
            h.title
        )));
    }
    if h.matrix.len() != na {
        return Err(GeomError::invalid(format!(
            "heatmap '{}' has {} rows but {na} a-layers (expected one row per a-layer)",
            h.title,
            h.matrix.len()
        )));
    }
    if let Some((i, row)) = h.matrix.iter().enumerate().find(|(_, r)| r.len() != nb) {
        return Err(GeomError::invalid(format!(
            "heatmap '{}': row {i} has {} values but there are {nb} b-layers",
            h.title,
            row.len()
        )));
    }
    if let Some((i, j)) = h.best {
        if i >= na || j >= nb {
            return Err(GeomError::invalid(format!(
                "heatmap '{}': best cell ({i}, {j}) is outside the {na} × {nb} matrix",
                h.title
            )));
        }
    }
    Ok(())
}

/// A validated heatmap with its value range.
struct HeatPlot<'a> {
    h: &'a Heatmap,
    vmin: f64,
    vmax: f64,
}

impl<'a> HeatPlot<'a> {
    fn new(h: &'a Heatmap) -> Self {
        let (mut vmin, mut vmax) = h
            .matrix
            .iter()
            .flatten()
            .filter(|v| v.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if !vmin.is_finite() {
            (vmin, vmax) = (0.0, 1.0);
        } else if vmax <= vmin {
            let d = if vmin == 0.0 { 0.5 } else { 0.05 * vmin.abs() };
            (vmin, vmax) = (vmin - d, vmax + d);
        }
        HeatPlot { h, vmin, vmax }
    }

    fn top(&self) -> f64 {
        TITLE_H
            + if self.h.best.is_some() {
                SUBTITLE_H
            } else {
                0.0
            }
    }

    fn color(&self, v: f64) -> RGBColor {
        if v.is_finite() {
            viridis((v - self.vmin) / (self.vmax - self.vmin))
        } else {
            NAN_COLOR
        }
    }
}

/// Tick hint giving whole-index ticks: every index up to 20, else ~10.
fn index_hint(n: usize) -> usize {
    if n <= 20 {
        n.max(1)
    } else {
        10
    }
}

/// Label for an index tick: the layer number, or nothing between cells.
fn index_label(v: f64, layers: &[usize]) -> String {
    let i = v.round();
    if (v - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < layers.len() {
        layers[i as usize].to_string()
    } else {
        String::new()
    }
}

impl Drawing for HeatPlot<'_> {
    fn size(&self) -> (u32, u32) {
        let w = MARGIN + LEFT_W + MAT + BAR_GAP + BAR_W + BAR_LABELS_W + MARGIN;
        let h = self.top() + MAT + BOTTOM_H + MARGIN;
        (w.round() as u32, h.round() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, px: Px) -> DrawResult {
        let h = self.h;
        let (na, nb) = (h.a_layers.len(), h.b_layers.len());
        let (w_total, _) = self.size();
        root.fill(&WHITE).de()?;

        let mid_x = MARGIN + LEFT_W + MAT / 2.0;
        let at = (px.i(mid_x), px.i(TITLE_H / 2.0 + 4.0));
        draw_text(root, &h.title, at, TextSpec::new(FS_TITLE, TEXT), px)?;
        if let Some((i, j)) = h.best {
            let v = h.matrix[i][j];
            let note = format!(
                "outlined: best, {} {} × {} {} = {}",
                h.a_label,
                h.a_layers[i],
                h.b_label,
                h.b_layers[j],
                format_tick(v, 3)
            );
            let at = (px.i(mid_x), px.i(TITLE_H + SUBTITLE_H / 2.0 - 2.0));
            draw_text(root, &note, at, TextSpec::new(FS_SUBTITLE, MUTED), px)?;
        }

        // The matrix.
        let top = self.top();
        let mat_area = root.clone().shrink(
            (px.i(MARGIN), px.i(top)),
            (px.i(LEFT_W + MAT), px.i(MAT + BOTTOM_H)),
        );
        let mut chart = ChartBuilder::on(&mat_area)
            .y_label_area_size(px.i(LEFT_W))
            .x_label_area_size(px.i(BOTTOM_H))
            .build_cartesian_2d(-0.5..nb as f64 - 0.5, -0.5..na as f64 - 0.5)
            .de()?;
        let x_fmt = |v: &f64| index_label(*v, &h.b_layers);
        let y_fmt = |v: &f64| index_label(*v, &h.a_layers);
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(index_hint(nb))
            .y_labels(index_hint(na))
            .axis_style(AXIS.stroke_width(px.u(1.0)))
            .set_all_tick_mark_size(px.i(5.0))
            .label_style(font(px.f(FS_TICK)).color(&TEXT))
            .axis_desc_style(font(px.f(FS_DESC)).color(&TEXT))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .draw()
            .de()?;
        chart
            .draw_series(h.matrix.iter().enumerate().flat_map(|(i, row)| {
                row.iter().enumerate().map(move |(j, &v)| {
                    let (x, y) = (j as f64, i as f64);
                    Rectangle::new(
                        [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)],
                        self.color(v).filled(),
                    )
                })
            }))
            .de()?;
        if let Some((i, j)) = h.best {
            let (x, y) = (j as f64, i as f64);
            let a = chart.backend_coord(&(x - 0.5, y - 0.5));
            let b = chart.backend_coord(&(x + 0.5, y + 0.5));
            draw_box(root, a, b, BLACK.stroke_width(px.u(4.0)))?;
            draw_box(root, a, b, WHITE.stroke_width(px.u(2.0)))?;
        }

        // The colour bar, level with the matrix.
        let (plot_w, plot_h) = chart.plotting_area().dim_in_pixel();
        let (plot_x, plot_y) = {
            let r = chart.plotting_area().get_pixel_range();
            (r.0.start, r.1.start)
        };
        let bar_x = plot_x + plot_w as i32 + px.i(BAR_GAP);
        let bar_area = root.clone().shrink(
            (bar_x, plot_y),
            (px.i(w_total as f64) - bar_x, plot_h as i32),
        );
        let mut bar = ChartBuilder::on(&bar_area)
            .right_y_label_area_size(px.i(BAR_LABELS_W))
            .build_cartesian_2d(0.0..1.0, self.vmin..self.vmax)
            .de()?;
        let ticks = RangedCoordf64::from(self.vmin..self.vmax).key_points(6usize);
        let dec = tick_decimals(&ticks);
        let bar_fmt = |v: &f64| format_tick(*v, dec);
        bar.configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_labels(6)
            .axis_style(AXIS.stroke_width(px.u(1.0)))
            .set_all_tick_mark_size(px.i(5.0))
            .label_style(font(px.f(FS_TICK)).color(&TEXT))
            .y_label_formatter(&bar_fmt)
            .draw()
            .de()?;
        let step = (self.vmax - self.vmin) / BAR_STEPS as f64;
        bar.draw_series((0..BAR_STEPS).map(|k| {
            let lo = self.vmin + k as f64 * step;
            let t = (k as f64 + 0.5) / BAR_STEPS as f64;
            Rectangle::new([(0.0, lo), (1.0, lo + step)], viridis(t).filled())
        }))
        .de()?;
        let (bx, by) = bar.plotting_area().get_pixel_range();
        let style = AXIS.stroke_width(px.u(1.0));
        draw_box(root, (bx.start - 1, by.start - 1), (bx.end, by.end), style)?;
        // Axis descriptions, and the top and right edges of the frame.
        let (xr, yr) = chart.plotting_area().get_pixel_range();
        let at = ((xr.start + xr.end) / 2, yr.end + px.i(42.0));
        draw_text(root, &h.b_label, at, TextSpec::new(FS_DESC, TEXT), px)?;
        let tick_w = h
            .a_layers
            .iter()
            .map(|l| text_width(&l.to_string(), FS_TICK))
            .fold(0.0, f64::max);
        let x = xr.start - px.i(5.0 + 6.0 + tick_w + 14.0);
        let at = (x.max(px.i(12.0)), (yr.start + yr.end) / 2);
        draw_text(
            root,
            &h.a_label,
            at,
            TextSpec::new(FS_DESC, TEXT).vertical(),
            px,
        )?;
        let frame = vec![
            (xr.start - 1, yr.start),
            (xr.end, yr.start),
            (xr.end, yr.end),
        ];
        root.draw(&PathElement::new(frame, AXIS.stroke_width(px.u(1.0))))
            .de()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_ticks_land_on_cells() {
        for n in [1usize, 2, 5, 20, 21, 37, 64] {
            let layers: Vec<usize> = (0..n).map(|i| i * 2).collect();
            let ticks = RangedCoordf64::from(-0.5..n as f64 - 0.5).key_points(index_hint(n));
            assert!(!ticks.is_empty(), "n = {n}");
            assert!(ticks.len() <= 20, "n = {n}: {} ticks", ticks.len());
            for t in &ticks {
                assert!(!index_label(*t, &layers).is_empty(), "n = {n}: tick {t}");
            }
            if n <= 20 {
                assert_eq!(ticks.len(), n, "n = {n}");
            }
        }
    }

    #[test]
    fn bad_shapes_are_rejected() {
        let mut h = Heatmap {
            title: "t".into(),
            a_label: "A".into(),
            b_label: "B".into(),
            a_layers: vec![0, 1],
            b_layers: vec![0, 1, 2],
            matrix: vec![vec![0.0; 3]; 2],
            best: Some((1, 2)),
        };
        validate(&h).unwrap();
        h.best = Some((2, 0));
        assert!(validate(&h).is_err());
        h.best = None;
        h.matrix[1].pop();
        assert!(validate(&h).is_err());
    }
}
