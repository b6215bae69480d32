//! Rendering tests: write real files and check what they hold.

use super::*;

/// A fresh, empty folder under the system temp dir.
fn scratch_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("geom-plot-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A smooth anisotropy-like curve over `n` layers.
fn curve(n: usize, base: f64, peak: f64, at: f64) -> Vec<f64> {
    (0..n)
        .map(|l| {
            let x = l as f64 / (n - 1) as f64;
            base + peak * (-((x - at) * (x - at)) / 0.08).exp() + 0.01 * (l as f64 * 1.7).sin()
        })
        .collect()
}

fn sample_figure1() -> LineFigure {
    let n = 29;
    let layers: Vec<usize> = (0..n).collect();
    let panel = |title: &str, shift: f64| {
        let text_before = curve(n, 0.15 + shift, 0.55, 0.7);
        let lo: Vec<f64> = text_before.iter().map(|v| v - 0.04).collect();
        let hi: Vec<f64> = text_before.iter().map(|v| v + 0.04).collect();
        let mut image_after = curve(n, 0.08, 0.25, 0.5);
        image_after[12] = f64::NAN; // a gap
        Panel {
            title: title.to_string(),
            series: vec![
                Series::new("Text (before CL)", layers.clone(), text_before)
                    .with_group("text")
                    .with_dashed(true)
                    .with_band(lo, hi),
                Series::new(
                    "Text (after CL)",
                    layers.clone(),
                    curve(n, 0.1 + shift, 0.3, 0.6),
                )
                .with_group("text"),
                Series::new(
                    "Image (before CL)",
                    layers.clone(),
                    curve(n, 0.3, 0.45, 0.85),
                )
                .with_group("image")
                .with_dashed(true),
                Series::new("Image (after CL)", layers.clone(), image_after).with_group("image"),
                Series::new("All NaN", layers.clone(), vec![f64::NAN; n]).with_group("audio"),
            ],
        }
    };
    let mut fig = figure1(vec![
        panel("PixMo-Cap (text–image)", 0.0),
        panel("MSCOCO (text–image)", 0.05),
    ]);
    fig.footnote = Some(
        "Dashed: before contrastive learning; solid: after. Shaded: 95% bootstrap interval."
            .to_string(),
    );
    fig
}

fn sample_heatmap() -> Heatmap {
    let n = 37;
    let matrix: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    let (a, b) = (i as f64 / 36.0, j as f64 / 36.0);
                    0.1 + 0.5 * (-((a - b - 0.1).powi(2)) / 0.05).exp() * (0.4 + a)
                })
                .collect()
        })
        .collect();
    let mut best = (0, 0);
    for i in 0..n {
        for j in 0..n {
            if matrix[i][j] > matrix[best.0][best.1] {
                best = (i, j);
            }
        }
    }
    Heatmap {
        title: "Mutual kNN alignment (k = 10), all layer pairs".to_string(),
        a_label: "Text layer".to_string(),
        b_label: "Image layer".to_string(),
        a_layers: (0..n).collect(),
        b_layers: (0..n).collect(),
        matrix,
        best: Some(best),
    }
}

fn check_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    assert!(
        bytes.len() > 10 * 1024,
        "{} is only {} bytes",
        path.display(),
        bytes.len()
    );
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    // IHDR holds the size: width and height must be non-zero.
    assert_eq!(&bytes[12..16], b"IHDR");
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(w > 500 && h > 400, "{w}x{h}");
}

#[test]
fn figure1_renders_svg_and_png() {
    let dir = scratch_dir("fig1");
    let fig = sample_figure1();
    let paths = render_lines(&fig, &dir.join("sub/figure1"), &ImageFormat::ALL).unwrap();
    assert_eq!(paths.len(), 2);
    assert!(paths.iter().all(|p| p.exists()), "{paths:?}");
    let svg = std::fs::read_to_string(&paths[0]).unwrap();
    assert!(svg.starts_with("<svg"));
    for label in [
        "Text (before CL)",
        "Text (after CL)",
        "Image (before CL)",
        "Image (after CL)",
    ] {
        assert!(
            svg.contains(label),
            "legend label '{label}' missing from the SVG"
        );
    }
    assert!(
        !svg.contains("All NaN"),
        "an all-NaN series must not be in the legend"
    );
    assert!(svg.contains("Anisotropy (mean pairwise cosine)"));
    assert!(svg.contains("PixMo-Cap (text–image)"));
    check_png(&paths[1]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn heatmap_renders_svg_and_png() {
    let dir = scratch_dir("heat");
    let paths = render_heatmap(&sample_heatmap(), &dir.join("heat"), &[]).unwrap();
    assert_eq!(paths.len(), 2);
    let svg = std::fs::read_to_string(&paths[0]).unwrap();
    assert!(svg.contains("Mutual kNN alignment"));
    assert!(svg.contains("Text layer") && svg.contains("Image layer"));
    check_png(&paths[1]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn figure2_single_layer_and_edge_cases() {
    let dir = scratch_dir("fig2");
    let fig = figure2(
        "Kernel alignment across layers",
        "Mutual kNN alignment (k = 10)",
        vec![
            Series::new("Qwen2.5-VL-3B", vec![4], vec![0.3]).with_group("Qwen2.5-VL-3B"),
            Series::new("Qwen2.5-VL-3B + CL", vec![4], vec![0.3])
                .with_group("Qwen2.5-VL-3B + CL")
                .with_dashed(true),
        ],
    );
    let paths = render_lines(&fig, &dir.join("fig2.v1"), &[ImageFormat::Svg]).unwrap();
    assert_eq!(paths, vec![dir.join("fig2.v1.svg")]);
    // All-NaN panel: empty axes, no error.
    let empty = figure2(
        "t",
        "y",
        vec![Series::new("nan", vec![0, 1], vec![f64::NAN; 2])],
    );
    render_lines(&empty, &dir.join("empty"), &[ImageFormat::Png]).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn invalid_inputs_are_errors() {
    let dir = scratch_dir("bad");
    let bad = figure2("t", "y", vec![Series::new("s", vec![0, 1], vec![0.5])]);
    let err = render_lines(&bad, &dir.join("bad"), &[]).unwrap_err();
    assert!(err.to_string().contains("2 layers but 1 values"), "{err}");
    let none = figure1(vec![]);
    assert!(render_lines(&none, &dir.join("none"), &[]).is_err());
    // A file where the parent folder should be: an I/O error naming it.
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, b"x").unwrap();
    let fig = figure2("t", "y", vec![Series::new("s", vec![0, 1], vec![0.5, 0.6])]);
    match render_lines(&fig, &blocker.join("fig"), &[ImageFormat::Png]) {
        Err(GeomError::Io { path, .. }) => assert_eq!(path, blocker),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tick_formatting() {
    assert_eq!(tick_decimals(&[0.1, 0.2, 0.3]), 1);
    assert_eq!(tick_decimals(&[0.25, 0.5, 0.75]), 2);
    assert_eq!(tick_decimals(&[0.0, 5.0, 10.0]), 0);
    assert_eq!(format_tick(-0.0001, 2), "0.00");
    assert_eq!(format_tick(-0.5, 1), "-0.5");
    assert_eq!(ImageFormat::parse("PNG").unwrap(), ImageFormat::Png);
    assert!(ImageFormat::parse("jpg").is_err());
    let svg = ImageFormat::Svg;
    assert_eq!(svg.path_for(Path::new("a/fig")), PathBuf::from("a/fig.svg"));
    assert_eq!(
        svg.path_for(Path::new("a/fig.v2")),
        PathBuf::from("a/fig.v2.svg")
    );
    assert_eq!(
        svg.path_for(Path::new("a/fig.PNG")),
        PathBuf::from("a/fig.svg")
    );
    assert_eq!(
        ImageFormat::Png.path_for(Path::new("fig.svg")),
        PathBuf::from("fig.png")
    );
}

/// Two clouds per panel, before and after: both files, legend, labels.
fn sample_scatter() -> ScatterFigure {
    let cloud = |n: usize, cx: f64, cy: f64, seed: f64| {
        let x: Vec<f64> = (0..n)
            .map(|i| cx + (i as f64 * 0.37 + seed).sin() * 2.0)
            .collect();
        let y: Vec<f64> = (0..n)
            .map(|i| cy + (i as f64 * 0.73 + seed).cos())
            .collect();
        (x, y)
    };
    let panel = |title: &str, gap: f64| {
        let (ix, iy) = cloud(300, -gap, 0.0, 0.1);
        let (tx, mut ty) = cloud(300, gap, 0.5, 1.3);
        ty[7] = f64::NAN; // skipped
        ScatterPanel {
            title: title.to_string(),
            subtitle: "trustworthiness (k = 10) = 0.912 · gap = 3.10".to_string(),
            x_label: "PC1 (41.2%)".to_string(),
            y_label: "PC2 (8.7%)".to_string(),
            groups: vec![
                ScatterGroup::new("image", ix, iy).with_group("image"),
                ScatterGroup::new("text", tx, ty).with_group("text"),
            ],
        }
    };
    ScatterFigure {
        title: Some("Layer 28: image and text, PCA (joint basis)".to_string()),
        panels: vec![panel("before CL", 4.0), panel("after CL", 0.5)],
        centroids: true,
        footnote: Some("SYNTHETIC test data".to_string()),
    }
}

#[test]
fn scatter_renders_svg_and_png() {
    let dir = scratch_dir("scatter");
    let paths = render_scatter(&sample_scatter(), &dir.join("scatter_layer28"), &[]).unwrap();
    assert_eq!(
        paths,
        vec![
            dir.join("scatter_layer28.svg"),
            dir.join("scatter_layer28.png")
        ]
    );
    let svg = std::fs::read_to_string(&paths[0]).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for text in [
        "before CL",
        "after CL",
        "PC1 (41.2%)",
        "PC2 (8.7%)",
        "trustworthiness (k = 10)",
        "image",
        "text",
        "centroid",
        "SYNTHETIC test data",
    ] {
        assert!(svg.contains(text), "'{text}' missing from the SVG");
    }
    // 2 panels × 2 groups × 300 points, less the NaN ones, plus legend
    // and centroid discs.
    let circles = svg.matches("<circle").count();
    assert!(circles >= 4 * 300 - 2, "{circles} circles");
    check_png(&paths[1]);
    // One panel: a long title wraps instead of running off the figure.
    let mut one = sample_scatter();
    one.panels.truncate(1);
    one.title = Some(format!("{} {}", one.title.unwrap(), "with a long tail"));
    let paths = render_scatter(&one, &dir.join("one"), &[ImageFormat::Svg]).unwrap();
    let svg = std::fs::read_to_string(&paths[0]).unwrap();
    assert!(svg.contains("width=\"520\""), "one panel is 520 px wide");
    assert!(svg.contains("Layer 28:") && svg.contains("long tail"));
    // Empty and mismatched groups.
    let mut fig = sample_scatter();
    fig.panels[1].groups.clear();
    render_scatter(&fig, &dir.join("half-empty"), &[ImageFormat::Png]).unwrap();
    fig.panels[0].groups[0].y.pop();
    let e = render_scatter(&fig, &dir.join("bad"), &[]).unwrap_err();
    assert!(e.to_string().contains("300 x but 299 y"), "{e}");
    fig.panels.clear();
    assert!(render_scatter(&fig, &dir.join("none"), &[]).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
