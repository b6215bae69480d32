//! Colours: the categorical palette for line groups and the viridis ramp
//! for heatmaps.

use plotters::style::RGBColor;

/// Colour-blind-safe categorical palette (Okabe–Ito, with a deeper purple
/// from Paul Tol's "bright" set for legibility on white).
pub(crate) const PALETTE: [RGBColor; 8] = [
    RGBColor(0x00, 0x72, 0xB2), // blue        (text)
    RGBColor(0xE6, 0x9F, 0x00), // orange      (image)
    RGBColor(0x00, 0x9E, 0x73), // green       (audio)
    RGBColor(0xAA, 0x33, 0x77), // purple      (video)
    RGBColor(0xD5, 0x5E, 0x00), // vermillion
    RGBColor(0x56, 0xB4, 0xE9), // sky blue
    RGBColor(0x33, 0x33, 0x33), // near black
    RGBColor(0x99, 0x99, 0x99), // grey
];

/// The palette slot reserved for a well-known modality name, if any.
fn reserved_slot(group: &str) -> Option<usize> {
    match group.trim().to_ascii_lowercase().as_str() {
        "text" | "txt" | "caption" | "language" => Some(0),
        "image" | "img" | "vision" | "visual" => Some(1),
        "audio" | "speech" | "sound" => Some(2),
        "video" => Some(3),
        _ => None,
    }
}

/// Assigns a colour to each group, in the order given.
///
/// Modalities (`text`, `image`, `audio`, `video`) always get their fixed
/// colour; any other group takes the next palette colour that no group
/// of this figure already uses, in order of first appearance. Duplicate
/// names get the same colour.
pub(crate) fn assign_colors<'a>(
    groups: impl IntoIterator<Item = &'a str>,
) -> Vec<(String, RGBColor)> {
    let groups: Vec<&str> = groups.into_iter().collect();
    let mut used = [false; PALETTE.len()];
    for g in &groups {
        if let Some(slot) = reserved_slot(g) {
            used[slot] = true;
        }
    }
    let mut out: Vec<(String, RGBColor)> = Vec::new();
    let mut next_free = 0usize;
    for g in groups {
        if out.iter().any(|(name, _)| name == g) {
            continue;
        }
        let color = match reserved_slot(g) {
            Some(slot) => PALETTE[slot],
            None => {
                while next_free < PALETTE.len() && used[next_free] {
                    next_free += 1;
                }
                if next_free < PALETTE.len() {
                    used[next_free] = true;
                    PALETTE[next_free]
                } else {
                    // More groups than colours: cycle (line style still differs).
                    let k = out.len() % PALETTE.len();
                    PALETTE[k]
                }
            }
        };
        out.push((g.to_string(), color));
    }
    out
}

/// The colour assigned to `key` (dark grey if it has none).
pub(crate) fn color_of(colors: &[(String, RGBColor)], key: &str) -> RGBColor {
    colors
        .iter()
        .find(|(k, _)| k == key)
        .map_or(RGBColor(0x22, 0x22, 0x22), |(_, c)| *c)
}

/// Viridis, sampled at 10 evenly spaced points (matplotlib's default map).
const VIRIDIS: [(u8, u8, u8); 10] = [
    (0x44, 0x01, 0x54),
    (0x48, 0x28, 0x78),
    (0x3E, 0x4A, 0x89),
    (0x31, 0x68, 0x8E),
    (0x26, 0x82, 0x8E),
    (0x1F, 0x9E, 0x89),
    (0x35, 0xB7, 0x79),
    (0x6D, 0xCD, 0x59),
    (0xB4, 0xDE, 0x2C),
    (0xFD, 0xE7, 0x25),
];

/// The viridis colour at `t` in `[0, 1]` (clamped; NaN maps to 0).
pub(crate) fn viridis(t: f64) -> RGBColor {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let pos = t * (VIRIDIS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(VIRIDIS.len() - 2);
    let f = pos - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let mix = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modalities_keep_their_colours() {
        let c = assign_colors(["image", "ckpt-a", "Text", "ckpt-b", "image"]);
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].1, PALETTE[1]);
        assert_eq!(c[2].1, PALETTE[0]);
        // Others skip the colours that text and image hold.
        assert_eq!(c[1].1, PALETTE[2]);
        assert_eq!(c[3].1, PALETTE[3]);
    }

    #[test]
    fn many_groups_cycle() {
        let names: Vec<String> = (0..12).map(|i| format!("g{i}")).collect();
        let c = assign_colors(names.iter().map(String::as_str));
        assert_eq!(c.len(), 12);
        assert_eq!(c[0].1, PALETTE[0]);
    }

    #[test]
    fn viridis_ends_and_clamps() {
        assert_eq!(viridis(0.0), RGBColor(0x44, 0x01, 0x54));
        assert_eq!(viridis(1.0), RGBColor(0xFD, 0xE7, 0x25));
        assert_eq!(viridis(2.0), viridis(1.0));
        assert_eq!(viridis(f64::NAN), viridis(0.0));
        // Luminance increases monotonically.
        let lum = |c: RGBColor| 0.2126 * c.0 as f64 + 0.7152 * c.1 as f64 + 0.0722 * c.2 as f64;
        let mut prev = -1.0;
        for k in 0..=50 {
            let l = lum(viridis(k as f64 / 50.0));
            assert!(l > prev);
            prev = l;
        }
    }
}
