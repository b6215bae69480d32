//! Writing a figure to SVG and PNG, and drawing helpers shared by the
//! figure kinds.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::element::PathElement;
use plotters::prelude::{BitMapBackend, DrawingArea, DrawingBackend, IntoDrawingArea, SVGBackend};
use plotters::style::ShapeStyle;

use super::{ensure_fonts, ImageFormat, PNG_SCALE};
use crate::error::{GeomError, Result};

/// Something drawable at a given scale (1 for SVG, [`PNG_SCALE`] for PNG).
pub(crate) trait Drawing {
    /// Size in pixels at scale 1.
    fn size(&self) -> (u32, u32);
    /// Draws onto `root`, whose size is `size()` times `px.scale`.
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, px: Px) -> DrawResult;
}

/// Result of a drawing step: plotters' errors, as text.
pub(crate) type DrawResult<T = ()> = std::result::Result<T, String>;

/// Turns any displayable error (plotters' drawing errors) into a string.
pub(crate) trait DrawResultExt<T> {
    /// Maps the error to its message.
    fn de(self) -> DrawResult<T>;
}

impl<T, E: std::fmt::Display> DrawResultExt<T> for std::result::Result<T, E> {
    fn de(self) -> DrawResult<T> {
        self.map_err(|e| e.to_string())
    }
}

/// Converts scale-1 pixel lengths to device pixels, and says whether the
/// target is a raster image.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Px {
    /// Device pixels per scale-1 pixel.
    pub scale: f64,
    /// Drawing to a bitmap (text is then set glyph by glyph).
    pub raster: bool,
}

impl Px {
    /// A length in device pixels (i32).
    pub fn i(self, v: f64) -> i32 {
        (v * self.scale).round() as i32
    }
    /// A length in device pixels (u32, at least 1).
    pub fn u(self, v: f64) -> u32 {
        ((v * self.scale).round() as u32).max(1)
    }
    /// A length in device pixels (f64, for font sizes).
    pub fn f(self, v: f64) -> f64 {
        v * self.scale
    }
}

fn io_err(path: &Path, source: std::io::Error) -> GeomError {
    GeomError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn draw_err(path: &Path, e: impl std::fmt::Display) -> GeomError {
    GeomError::invalid(format!("cannot draw {}: {e}", path.display()))
}

/// Writes `item` to `<stem>.<ext>` for each format (both if `formats` is
/// empty; duplicates ignored) and returns the paths written.
pub(crate) fn render(
    item: &impl Drawing,
    stem: &Path,
    formats: &[ImageFormat],
) -> Result<Vec<PathBuf>> {
    ensure_fonts()?;
    let formats: &[ImageFormat] = if formats.is_empty() {
        &ImageFormat::ALL
    } else {
        formats
    };
    let (w, h) = item.size();
    let mut written = Vec::new();
    for (k, &fmt) in formats.iter().enumerate() {
        if formats[..k].contains(&fmt) {
            continue;
        }
        let path = fmt.path_for(stem);
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
        }
        match fmt {
            ImageFormat::Svg => {
                let mut svg = String::new();
                {
                    let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
                    item.draw(
                        &root,
                        Px {
                            scale: 1.0,
                            raster: false,
                        },
                    )
                    .map_err(|e| draw_err(&path, e))?;
                    root.present().map_err(|e| draw_err(&path, e))?;
                }
                std::fs::write(&path, svg).map_err(|e| io_err(&path, e))?;
            }
            ImageFormat::Png => {
                // Surface file errors as I/O errors before plotters hides them.
                std::fs::File::create(&path).map_err(|e| io_err(&path, e))?;
                let size = (
                    (w as f64 * PNG_SCALE).round() as u32,
                    (h as f64 * PNG_SCALE).round() as u32,
                );
                let root = BitMapBackend::new(&path, size).into_drawing_area();
                item.draw(
                    &root,
                    Px {
                        scale: PNG_SCALE,
                        raster: true,
                    },
                )
                .map_err(|e| draw_err(&path, e))?;
                root.present().map_err(|e| draw_err(&path, e))?;
            }
        }
        written.push(path);
    }
    Ok(written)
}

/// Outlines the pixel rectangle from `a` to `b` on `area`, one path per
/// edge (plotters' SVG rectangles ignore the stroke width, and its bitmap
/// backend fills a closed thick path as a polygon).
pub(crate) fn draw_box<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    a: (i32, i32),
    b: (i32, i32),
    style: ShapeStyle,
) -> DrawResult {
    let (x0, x1) = (a.0.min(b.0), a.0.max(b.0));
    let (y0, y1) = (a.1.min(b.1), a.1.max(b.1));
    let h = (style.stroke_width / 2) as i32;
    let edges = [
        [(x0 - h, y0), (x1 + h, y0)],
        [(x0 - h, y1), (x1 + h, y1)],
        [(x0, y0 - h), (x0, y1 + h)],
        [(x1, y0 - h), (x1, y1 + h)],
    ];
    for edge in edges {
        area.draw(&PathElement::new(edge.to_vec(), style)).de()?;
    }
    Ok(())
}

/// Decimal places that print every tick in `ticks` exactly (at most 6).
pub(crate) fn tick_decimals(ticks: &[f64]) -> usize {
    let scale = ticks.iter().fold(0.0f64, |m, t| m.max(t.abs())).max(1e-12);
    (0..=6)
        .find(|&d| {
            let p = 10f64.powi(d as i32);
            ticks
                .iter()
                .all(|t| ((t * p).round() / p - t).abs() <= 1e-9 * scale.max(1.0))
        })
        .unwrap_or(6)
}

/// Formats a tick value with `decimals` places, without a "-0".
pub(crate) fn format_tick(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}
