//! The bundled font and text drawing.
//!
//! Plotters is built with its `ab_glyph` backend, which never looks at system
//! fonts: every family must be registered by hand. We bundle DejaVu Sans
//! (see `assets/fonts/DejaVuSans-LICENSE.txt`) and register it once, as the
//! `"sans-serif"` family, so figures render identically on machines without
//! any fonts installed.
//!
//! Plotters 0.3.7's `ab_glyph` renderer places each glyph at its pen
//! position but drops the glyph's left side bearing, so letters such as
//! `i`, `l` or `m` sit unevenly ("Pi xMo"). For raster output [`draw_text`]
//! therefore sets text glyph by glyph, using advances and bearings read from
//! the font's own `hmtx`/`cmap` tables. SVG output keeps whole strings.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::element::Text;
use plotters::prelude::{DrawingArea, DrawingBackend};
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{
    register_font, Color, FontDesc, FontFamily, FontStyle, FontTransform, IntoFont, RGBColor,
};

use super::{DrawResult, DrawResultExt, Px};
use crate::error::{GeomError, Result};

/// The only font family the figures use.
pub const FAMILY: &str = "sans-serif";

/// The bundled TrueType font (DejaVu Sans).
static FONT_BYTES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/fonts/DejaVuSans.ttf"
));

/// Registers the font with plotters once; whether that worked.
fn registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        // Bold falls back to the regular face: only the normal style is used,
        // but registering both keeps a stray bold request from failing.
        register_font(FAMILY, FontStyle::Normal, FONT_BYTES).is_ok()
            && register_font(FAMILY, FontStyle::Bold, FONT_BYTES).is_ok()
    })
}

/// Registers the bundled font with plotters (once per process).
///
/// Safe to call any number of times and from several threads.
pub fn ensure_fonts() -> Result<()> {
    if registered() && metrics().is_some() {
        Ok(())
    } else {
        Err(GeomError::invalid(
            "the bundled font (DejaVu Sans) could not be loaded",
        ))
    }
}

/// A `"sans-serif"` font of the given plotters size (pixels; the em is
/// `size / 1.24`).
pub(crate) fn font(size: f64) -> FontDesc<'static> {
    (FontFamily::Name(FAMILY), size).into_font()
}

/// Horizontal metrics of the bundled font, in font units.
struct Metrics {
    /// `(first char, last char, id delta, id range offset position)` of each
    /// cmap format-4 segment; glyph ids are then looked up in the font bytes.
    segments: Vec<(u32, u32, u16, Option<usize>)>,
    /// `(advance width, left side bearing)` per glyph id.
    hmtx: Vec<(u16, i16)>,
    /// Pixels per font unit at plotters size 1 (calibrated against plotters).
    px_per_unit: f64,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Offset of a top-level table of the TrueType file.
fn table(b: &[u8], tag: &[u8; 4]) -> Option<usize> {
    let n = be16(b, 4)? as usize;
    (0..n).find_map(|k| {
        let rec = 12 + 16 * k;
        (b.get(rec..rec + 4)? == tag).then(|| be32(b, rec + 8).map(|o| o as usize))?
    })
}

fn parse_metrics(b: &[u8]) -> Option<Metrics> {
    let hhea = table(b, b"hhea")?;
    let n_hmetrics = be16(b, hhea + 34)? as usize;
    let maxp = table(b, b"maxp")?;
    let n_glyphs = be16(b, maxp + 4)? as usize;
    let hmtx_at = table(b, b"hmtx")?;
    let mut hmtx = Vec::with_capacity(n_glyphs);
    let mut last_adv = 0;
    for g in 0..n_glyphs {
        if g < n_hmetrics {
            last_adv = be16(b, hmtx_at + 4 * g)?;
            hmtx.push((last_adv, be16(b, hmtx_at + 4 * g + 2)? as i16));
        } else {
            let at = hmtx_at + 4 * n_hmetrics + 2 * (g - n_hmetrics);
            hmtx.push((last_adv, be16(b, at)? as i16));
        }
    }
    // cmap: the Unicode BMP subtable (platform 3 encoding 1, or platform 0), format 4.
    let cmap = table(b, b"cmap")?;
    let sub = (0..be16(b, cmap + 2)? as usize).find_map(|k| {
        let rec = cmap + 4 + 8 * k;
        let (platform, encoding) = (be16(b, rec)?, be16(b, rec + 2)?);
        let at = cmap + be32(b, rec + 4)? as usize;
        ((platform == 3 && encoding == 1) || platform == 0)
            .then_some(at)
            .filter(|&at| be16(b, at) == Some(4))
    })?;
    let seg_x2 = be16(b, sub + 6)? as usize;
    let (ends, starts) = (sub + 14, sub + 16 + seg_x2);
    let (deltas, offsets) = (starts + seg_x2, starts + 2 * seg_x2);
    let mut segments = Vec::with_capacity(seg_x2 / 2);
    for s in (0..seg_x2).step_by(2) {
        let range_offset = be16(b, offsets + s)?;
        segments.push((
            be16(b, starts + s)? as u32,
            be16(b, ends + s)? as u32,
            be16(b, deltas + s)?,
            (range_offset != 0).then_some(offsets + s + range_offset as usize),
        ));
    }
    let mut m = Metrics {
        segments,
        hmtx,
        px_per_unit: 0.0,
    };
    // Calibrate the scale against plotters' own layout of a long string.
    let sample = "MMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMMM";
    let size = 100.0;
    let units: f64 = sample.chars().map(|c| m.glyph(b, c).0 as f64).sum();
    let (w, _) = font(size).box_size(sample).ok()?;
    m.px_per_unit = w as f64 / units / size;
    (m.px_per_unit > 0.0).then_some(m)
}

impl Metrics {
    /// `(advance, left side bearing)` of `c` in font units.
    fn glyph(&self, b: &[u8], c: char) -> (u16, i16) {
        let c = c as u32;
        let id = self
            .segments
            .iter()
            .find(|&&(start, end, _, _)| start <= c && c <= end)
            .map_or(0, |&(start, _, delta, offset)| match offset {
                None => (c as u16).wrapping_add(delta),
                Some(at) => match be16(b, at + 2 * (c - start) as usize) {
                    Some(0) | None => 0,
                    Some(g) => g.wrapping_add(delta),
                },
            });
        self.hmtx.get(id as usize).copied().unwrap_or((0, 0))
    }
}

/// The parsed metrics; `None` if the bundled font could not be parsed.
fn metrics() -> Option<&'static Metrics> {
    static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();
    METRICS
        .get_or_init(|| registered().then(|| parse_metrics(FONT_BYTES)).flatten())
        .as_ref()
}

/// Width in pixels of `text` set in `font(size)`.
pub(crate) fn text_width(text: &str, size: f64) -> f64 {
    match metrics() {
        Some(m) => {
            let units: f64 = text.chars().map(|c| m.glyph(FONT_BYTES, c).0 as f64).sum();
            units * m.px_per_unit * size
        }
        None => text.chars().count() as f64 * size * 0.5,
    }
}

/// Greedy word wrap of `text` into lines no wider than `max_width` pixels.
pub(crate) fn wrap(text: &str, size: f64, max_width: f64) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            let candidate = if line.is_empty() {
                word.to_string()
            } else {
                format!("{line} {word}")
            };
            if !line.is_empty() && text_width(&candidate, size) > max_width {
                lines.push(std::mem::replace(&mut line, word.to_string()));
            } else {
                line = candidate;
            }
        }
        lines.push(line);
    }
    lines
}

/// How a piece of text is placed.
#[derive(Clone, Copy)]
pub(crate) struct TextSpec {
    /// Plotters font size at scale 1.
    pub size: f64,
    /// Text colour.
    pub color: RGBColor,
    /// Horizontal anchor (along the text).
    pub h: HPos,
    /// Vertical anchor (across the text).
    pub v: VPos,
    /// Rotated to read bottom to top (a y-axis label).
    pub vertical: bool,
}

impl TextSpec {
    /// Horizontal text of `size` in `color`, centred on its anchor point.
    pub fn new(size: f64, color: RGBColor) -> Self {
        TextSpec {
            size,
            color,
            h: HPos::Center,
            v: VPos::Center,
            vertical: false,
        }
    }

    /// Left-aligned (vertically centred).
    pub fn left(mut self) -> Self {
        self.h = HPos::Left;
        self
    }

    /// Rotated to read bottom to top.
    pub fn vertical(mut self) -> Self {
        self.vertical = true;
        self
    }
}

/// Draws `text` on `area` (pixel coordinates at device scale) at `at`.
pub(crate) fn draw_text<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
    at: (i32, i32),
    spec: TextSpec,
    px: Px,
) -> DrawResult {
    let size = px.f(spec.size);
    let transform = if spec.vertical {
        FontTransform::Rotate270
    } else {
        FontTransform::None
    };
    let base = font(size).transform(transform).color(&spec.color.to_rgba());
    let Some(m) = metrics().filter(|_| px.raster) else {
        let style = base.pos(Pos::new(spec.h, spec.v));
        return area.draw(&Text::new(text.to_string(), at, style)).de();
    };
    let width = text_width(text, size);
    let start = match spec.h {
        HPos::Left => 0.0,
        HPos::Center => -width / 2.0,
        HPos::Right => -width,
    };
    let style = base.pos(Pos::new(HPos::Left, spec.v));
    let scale = m.px_per_unit * size;
    let mut pen = start;
    let mut buf = [0u8; 4];
    for c in text.chars() {
        let (adv, lsb) = m.glyph(FONT_BYTES, c);
        if !c.is_whitespace() {
            let offset = pen.round() as i32 + (lsb as f64 * scale).floor() as i32;
            let pos = if spec.vertical {
                (at.0, at.1 - offset)
            } else {
                (at.0 + offset, at.1)
            };
            let glyph: &str = c.encode_utf8(&mut buf);
            area.draw(&Text::new(glyph, pos, style.clone())).de()?;
        }
        pen += adv as f64 * scale;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn font_registers_and_measures() {
        ensure_fonts().unwrap();
        ensure_fonts().unwrap();
        let m = metrics().unwrap();
        // 'i' is narrower than 'M'; both have a positive bearing.
        let (adv_i, lsb_i) = m.glyph(FONT_BYTES, 'i');
        let (adv_m, lsb_m) = m.glyph(FONT_BYTES, 'M');
        assert!(adv_i < adv_m && lsb_i > 0 && lsb_m > 0);
        // Agrees with plotters' own layout to within a pixel or two.
        let ours = text_width("Anisotropy (mean pairwise cosine)", 20.0);
        let theirs = font(20.0)
            .box_size("Anisotropy (mean pairwise cosine)")
            .unwrap()
            .0 as f64;
        assert!((ours - theirs).abs() < 4.0, "{ours} vs {theirs}");
        // Non-ASCII glyphs map too (en dash, multiplication sign).
        assert!(m.glyph(FONT_BYTES, '–').0 > 0 && m.glyph(FONT_BYTES, '×').0 > 0);
    }

    #[test]
    fn wrap_splits_long_text() {
        ensure_fonts().unwrap();
        let lines = wrap(
            "one two three four five six seven eight nine ten",
            16.0,
            80.0,
        );
        assert!(lines.len() > 2, "{lines:?}");
        assert_eq!(
            lines.join(" "),
            "one two three four five six seven eight nine ten"
        );
    }
}
