//! One panel of a line figure: axes, bands, curves and markers.

use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::{Circle, PathElement, Polygon};
use plotters::prelude::{ChartBuilder, DashedLineSeries, DrawingArea, DrawingBackend, LineSeries};
use plotters::style::{Color, RGBColor, ShapeStyle, WHITE};

use super::font::{draw_text, font, text_width, TextSpec};
use super::lines::*;
use super::palette::color_of;
use super::{format_tick, tick_decimals, DrawResult, DrawResultExt, Px, Series};

/// What one panel shows.
pub(super) struct PanelSpec<'a> {
    /// Caption above the plot (empty: none).
    pub title: &'a str,
    /// The curves (all-NaN ones are skipped).
    pub series: &'a [Series],
    /// x-axis description.
    pub x_label: &'a str,
    /// y-axis description, for the first panel only.
    pub y_label: Option<&'a str>,
    /// Colour of each group.
    pub colors: &'a [(String, RGBColor)],
}

/// Draws one panel into `area`; `root` is the whole figure (for text
/// placed in absolute pixels). Returns the plot area's x pixel range.
pub(super) fn draw_panel<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    area: &DrawingArea<DB, Shift>,
    spec: &PanelSpec<'_>,
    px: Px,
) -> DrawResult<(i32, i32)> {
    let (title, series, first) = (spec.title, spec.series, spec.y_label.is_some());
    let color = |s: &Series| color_of(spec.colors, s.color_key());
    let drawn: Vec<&Series> = series.iter().filter(|s| s.has_data()).collect();
    let ((x0, x1), (y0, y1), x_hint) = panel_ranges(&drawn);
    let y_hint = 9;
    let y_ticks = RangedCoordf64::from(y0..y1).key_points(y_hint);
    let y_dec = tick_decimals(&y_ticks);
    let y_fmt = |v: &f64| format_tick(*v, y_dec);
    let tick_w = y_ticks
        .iter()
        .map(|t| text_width(&y_fmt(t), FS_TICK))
        .fold(0.0, f64::max);

    let mut chart = ChartBuilder::on(area)
        .margin_top(px.i(if title.is_empty() { 14.0 } else { CAPTION_H }))
        .margin_right(px.i(18.0))
        .margin_left(px.i(4.0))
        .margin_bottom(px.i(4.0))
        .x_label_area_size(px.i(58.0))
        .y_label_area_size(px.i(if first { 62.0 + Y_DESC_W } else { 62.0 }))
        .build_cartesian_2d(x0..x1, y0..y1)
        .de()?;

    let x_fmt = |v: &f64| format!("{:.0}", v);
    chart
        .configure_mesh()
        .x_labels(x_hint)
        .y_labels(y_hint)
        .max_light_lines(0)
        .bold_line_style(GRID.stroke_width(px.u(1.0)))
        .axis_style(AXIS.stroke_width(px.u(1.0)))
        .set_all_tick_mark_size(px.i(TICK))
        .label_style(font(px.f(FS_TICK)).color(&TEXT))
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .draw()
        .de()?;

    // Caption, axis descriptions, and the top and right edges of the frame
    // (the mesh draws the left and bottom axes), in absolute pixels.
    let (xr, yr) = chart.plotting_area().get_pixel_range();
    let mid_x = (xr.start + xr.end) / 2;
    let (_, area_top) = area.get_base_pixel();
    if !title.is_empty() {
        let at = (mid_x, area_top + px.i(CAPTION_H / 2.0));
        draw_text(root, title, at, TextSpec::new(FS_CAPTION, TEXT), px)?;
    }
    let at = (mid_x, yr.end + px.i(42.0));
    draw_text(root, spec.x_label, at, TextSpec::new(FS_DESC, TEXT), px)?;
    if let Some(y_label) = spec.y_label {
        let x = xr.start - px.i(TICK + 6.0 + tick_w + 14.0);
        let at = (x.max(px.i(12.0)), (yr.start + yr.end) / 2);
        let spec = TextSpec::new(FS_DESC, TEXT).vertical();
        draw_text(root, y_label, at, spec, px)?;
    }
    let frame = vec![
        (xr.start - 1, yr.start),
        (xr.end, yr.start),
        (xr.end, yr.end),
    ];
    root.draw(&PathElement::new(frame, AXIS.stroke_width(px.u(1.0))))
        .de()?;

    if drawn.is_empty() {
        let at = (mid_x, (yr.start + yr.end) / 2);
        draw_text(root, "no data", at, TextSpec::new(FS_LEGEND, MUTED), px)?;
    }
    // Bands under every curve, then curves, then markers on top.
    for s in &drawn {
        let Some((lo, hi)) = &s.band else { continue };
        let fill = color(s).mix(BAND_ALPHA).filled();
        let order = layer_order(s);
        let pts = order.iter().map(|&i| (s.layers[i] as f64, i));
        let mut run: Vec<(f64, usize)> = Vec::new();
        let mut flush = |run: &mut Vec<(f64, usize)>| -> DrawResult {
            if run.len() >= 2 {
                let mut poly: Vec<(f64, f64)> = run.iter().map(|&(x, i)| (x, hi[i])).collect();
                poly.extend(run.iter().rev().map(|&(x, i)| (x, lo[i])));
                chart
                    .draw_series(std::iter::once(Polygon::new(poly, fill)))
                    .de()?;
            }
            run.clear();
            Ok(())
        };
        for (x, i) in pts {
            if lo[i].is_finite() && hi[i].is_finite() {
                run.push((x, i));
            } else {
                flush(&mut run)?;
            }
        }
        flush(&mut run)?;
    }
    for s in &drawn {
        let style = color(s).stroke_width(px.u(LINE_W));
        let order = layer_order(s);
        let runs = finite_runs(order.iter().map(|&i| (s.layers[i] as f64, s.values[i])));
        for run in runs.iter().filter(|r| r.len() >= 2) {
            if s.dashed {
                chart
                    .draw_series(DashedLineSeries::new(
                        run.iter().copied(),
                        px.i(DASH),
                        px.i(GAP),
                        style,
                    ))
                    .de()?;
            } else {
                chart
                    .draw_series(LineSeries::new(run.iter().copied(), style))
                    .de()?;
            }
        }
    }
    for s in &drawn {
        let color = color(s);
        let n = s.values.iter().filter(|v| v.is_finite()).count();
        let every = n.div_ceil(MAX_MARKERS).max(1);
        let order = layer_order(s);
        let runs = finite_runs(order.iter().map(|&i| (s.layers[i] as f64, s.values[i])));
        for run in &runs {
            // Thin out dense curves, but an isolated point always shows.
            for (k, &p) in run.iter().enumerate() {
                if k % every == 0 || run.len() == 1 {
                    for e in marker(p, color, s.dashed, px) {
                        chart.plotting_area().draw(&e).de()?;
                    }
                }
            }
        }
    }
    Ok((xr.start, xr.end))
}

/// x range, y range and the x tick hint for one panel.
fn panel_ranges(series: &[&Series]) -> ((f64, f64), (f64, f64), usize) {
    let mut xs = (f64::INFINITY, f64::NEG_INFINITY);
    let mut ys = (f64::INFINITY, f64::NEG_INFINITY);
    for s in series {
        for (i, (&l, &v)) in s.layers.iter().zip(&s.values).enumerate() {
            let band = s.band.as_ref().map(|(lo, hi)| [lo[i], hi[i]]);
            let mut any = false;
            for y in std::iter::once(v).chain(band.into_iter().flatten()) {
                if y.is_finite() {
                    ys = (ys.0.min(y), ys.1.max(y));
                    any = true;
                }
            }
            if any {
                xs = (xs.0.min(l as f64), xs.1.max(l as f64));
            }
        }
    }
    if !xs.0.is_finite() {
        xs = (0.0, 1.0);
    }
    if !ys.0.is_finite() {
        ys = (0.0, 1.0);
    }
    let xpad = (0.02 * (xs.1 - xs.0)).max(if xs.1 > xs.0 { 0.6 } else { 1.0 });
    let x = (xs.0 - xpad, xs.1 + xpad);
    let span = ys.1 - ys.0;
    let y = if span > 0.0 {
        (ys.0 - 0.05 * span, ys.1 + 0.05 * span)
    } else {
        let d = if ys.0 == 0.0 { 0.5 } else { 0.1 * ys.0.abs() };
        (ys.0 - d, ys.1 + d)
    };
    // With at most floor(span) + 1 ticks, plotters' 1-2-5 steps are whole layers.
    let x_hint = ((x.1 - x.0).floor() as usize + 1).clamp(2, 11);
    (x, y, x_hint)
}

/// Splits `(x, y)` points (already in layer order) into runs of finite values.
fn finite_runs(points: impl Iterator<Item = (f64, f64)>) -> Vec<Vec<(f64, f64)>> {
    let mut runs: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (x, y) in points {
        if y.is_finite() {
            runs.last_mut().expect("non-empty").push((x, y));
        } else if !runs.last().expect("non-empty").is_empty() {
            runs.push(Vec::new());
        }
    }
    runs.retain(|r| !r.is_empty());
    runs
}

/// Indices of a series sorted by layer.
fn layer_order(s: &Series) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..s.layers.len()).collect();
    idx.sort_by_key(|&i| s.layers[i]);
    idx
}

/// Marker circles at a data point: filled for solid curves, hollow
/// (white inside) for dashed ones, so the two read apart even in grey.
fn marker(p: (f64, f64), color: RGBColor, hollow: bool, px: Px) -> Vec<Circle<(f64, f64), i32>> {
    marker_styles(color, hollow, px)
        .into_iter()
        .map(|(r, st)| Circle::new(p, r, st))
        .collect()
}

/// [`marker`] in pixel coordinates (for the legend).
pub(super) fn marker_px(
    p: (i32, i32),
    color: RGBColor,
    hollow: bool,
    px: Px,
) -> Vec<Circle<(i32, i32), i32>> {
    marker_styles(color, hollow, px)
        .into_iter()
        .map(|(r, st)| Circle::new(p, r, st))
        .collect()
}

fn marker_styles(color: RGBColor, hollow: bool, px: Px) -> Vec<(i32, ShapeStyle)> {
    let r = px.i(MARKER_R);
    if hollow {
        vec![(r, WHITE.filled()), (r, color.stroke_width(px.u(1.5)))]
    } else {
        vec![(r, color.filled())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_at_nan() {
        let pts = [
            (0.0, 1.0),
            (1.0, f64::NAN),
            (2.0, 2.0),
            (3.0, 3.0),
            (4.0, f64::NAN),
        ];
        let runs = finite_runs(pts.into_iter());
        assert_eq!(runs, vec![vec![(0.0, 1.0)], vec![(2.0, 2.0), (3.0, 3.0)]]);
    }

    #[test]
    fn ranges_include_bands_and_handle_one_layer() {
        let s = Series::new("a", vec![3], vec![0.5]).with_band(vec![0.4], vec![0.7]);
        let ((x0, x1), (y0, y1), hint) = panel_ranges(&[&s]);
        assert!(x0 < 3.0 && x1 > 3.0 && hint >= 2);
        assert!(y0 < 0.4 && y1 > 0.7);
        let c = Series::new("c", vec![0, 1], vec![0.2, 0.2]);
        let (_, (y0, y1), _) = panel_ranges(&[&c]);
        assert!(y0 < 0.2 && y1 > 0.2);
    }

    #[test]
    fn x_ticks_are_whole_layers() {
        for n in [1usize, 2, 3, 4, 7, 12, 29, 37, 80] {
            let s = Series::new("a", (0..n).collect(), vec![0.0; n]);
            let ((x0, x1), _, hint) = panel_ranges(&[&s]);
            let ticks = RangedCoordf64::from(x0..x1).key_points(hint);
            assert!(!ticks.is_empty(), "n = {n}");
            for t in ticks {
                assert!((t - t.round()).abs() < 1e-9, "n = {n}: tick {t}");
            }
        }
    }
}
