//! Named dataset presets (`--pairs pixmo`): TOML files in
//! `configs/datasets/`, compiled into the binary, that say where a
//! dataset's manifest lives under the data root and how many pairs the
//! paper used.
//!
//! The data root is `$GEOM_DATA`, or `./data` when it is unset. `--pairs`
//! also takes a manifest path (`pairs.jsonl`) or a preset file
//! (`my-dataset.toml`, whose `manifest` resolves against the data root, or
//! is absolute).
//!
//! A preset may also name parquet shards (`parquet`, with `*`/`?` in the
//! file name) and a folder of downloaded images (`images`), as PixMo-Cap is
//! distributed: when the manifest is not there, the shards are converted
//! into one ([`super::pixmo`]), once, under the geom cache
//! (`<cache>/datasets/`, see [`super::cache::cache_dir`]), and converted
//! again when they change.
//!
//! A preset may instead name a dataset's own annotation files and media
//! folder (`format = "audiocaps"` or `"msrvtt"`, `annotations`, `media`), as
//! AudioCaps and MSR-VTT are distributed: the first annotation file and the
//! first media folder that exist are converted into a manifest
//! ([`super::audiocaps`], [`super::msrvtt`]), once, under the same cache.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::error::{GeomError, Result};

/// A dataset preset.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Preset {
    /// Short name (`pixmo`).
    pub name: String,
    /// One line about the data.
    pub description: String,
    /// The modalities of its pairs.
    pub modalities: Vec<String>,
    /// The manifest, relative to the data root (or absolute); may be left
    /// out when `parquet` is given. Preferred over `parquet` when present.
    #[serde(default)]
    pub manifest: String,
    /// Parquet shards (PixMo-Cap's layout, see [`super::pixmo`]), relative
    /// to the data root (or absolute); the file name may hold `*` and `?`
    /// (`pixmo-cap/data/train-*.parquet`), matches are read in name order.
    #[serde(default)]
    pub parquet: Option<String>,
    /// The folder of images downloaded for shards that carry URLs (files
    /// named by the SHA-256 of the URL), relative to the data root (or
    /// absolute).
    #[serde(default)]
    pub images: Option<String>,
    /// Convert only the first `rows` rows of the shards (default: all); a
    /// bound for shards with embedded images, which are written out.
    #[serde(default)]
    pub rows: Option<usize>,
    /// How `annotations` are read: `audiocaps` (its CSVs) or `msrvtt` (the
    /// 1k-A CSV or `MSRVTT_data.json`).
    #[serde(default)]
    pub format: Option<Format>,
    /// The dataset's own annotation file, relative to the data root (or
    /// absolute): a path, or a list of places to look, the first that
    /// exists being read (`audiocaps/test.csv`). Needs `format`.
    #[serde(default, deserialize_with = "one_or_many")]
    pub annotations: Vec<String>,
    /// The folder of the annotations' media (AudioCaps clips, MSR-VTT
    /// videos), relative to the data root (or absolute): a path, or a list,
    /// the first that exists being used.
    #[serde(default, deserialize_with = "one_or_many")]
    pub media: Vec<String>,
    /// How many pairs (from the start) the paper's analysis used.
    #[serde(default)]
    pub limit: Option<usize>,
    /// How to prepare the data.
    #[serde(default)]
    pub how_to: String,
    /// The manifest is one of the embedded demo's files (`--pairs demo`),
    /// not a path under the data root.
    #[serde(default)]
    pub embedded: bool,
}

/// The annotation formats a preset can name (`format = "audiocaps"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// AudioCaps' CSVs (`audiocap_id,youtube_id,start_time,caption`) and a
    /// folder of clips, see [`super::audiocaps`].
    Audiocaps,
    /// MSR-VTT's 1k-A CSV or `MSRVTT_data.json` and a folder of videos, see
    /// [`super::msrvtt`].
    Msrvtt,
}

impl Format {
    /// The name in a preset.
    pub fn name(self) -> &'static str {
        match self {
            Format::Audiocaps => "audiocaps",
            Format::Msrvtt => "msrvtt",
        }
    }
}

/// A path, or a list of paths.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a path or a list of paths")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// The presets shipped with geom.
pub const BUILTIN: [(&str, &str); 4] = [
    ("demo", include_str!("../../configs/datasets/demo.toml")),
    ("pixmo", include_str!("../../configs/datasets/pixmo.toml")),
    ("msrvtt", include_str!("../../configs/datasets/msrvtt.toml")),
    (
        "audiocaps",
        include_str!("../../configs/datasets/audiocaps.toml"),
    ),
];

impl Preset {
    /// Parses a preset; `source` names it in errors.
    pub fn from_toml(text: &str, source: &str) -> Result<Self> {
        let p: Self = toml::from_str(text).map_err(|e| {
            GeomError::invalid(format!(
                "{} (a dataset preset has name, description, modalities, and manifest or parquet)",
                GeomError::toml(source, text, &e)
            ))
        })?;
        if p.manifest.is_empty() && p.parquet.is_none() && p.annotations.is_empty() {
            return Err(GeomError::invalid(format!(
                "{source}: the preset names no data: give manifest = \"….jsonl\", parquet = \"…/*.parquet\" (with images = \"…\" for image URLs), \
                 or format = \"audiocaps\" | \"msrvtt\" with annotations = \"…\" and media = \"…\""
            )));
        }
        match (p.format, p.annotations.is_empty(), p.media.is_empty()) {
            (None, false, _) | (None, _, false) => Err(GeomError::invalid(format!(
                "{source}: annotations and media need format = \"audiocaps\" or \"msrvtt\" (how to read them)"
            ))),
            (Some(f), true, _) => Err(GeomError::invalid(format!(
                "{source}: format = \"{}\" needs annotations = \"…\" (the dataset's annotation file, or a list of places to look)",
                f.name()
            ))),
            (Some(f), false, true) => Err(GeomError::invalid(format!(
                "{source}: format = \"{}\" needs media = \"…\" (the folder of its {})",
                f.name(),
                media_noun(f)
            ))),
            _ => Ok(p),
        }
    }

    /// A built-in preset by name.
    pub fn builtin(name: &str) -> Option<Self> {
        BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(n, text)| Self::from_toml(text, n).expect("built-in presets parse"))
    }
}

/// The data root: `$GEOM_DATA`, else `./data`.
pub fn data_root() -> PathBuf {
    std::env::var_os("GEOM_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data"))
}

/// What `--pairs` resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedPairs {
    /// The manifest to read.
    pub manifest: PathBuf,
    /// The dataset name to record.
    pub dataset: String,
    /// The preset's default `--limit`.
    pub limit: Option<usize>,
}

/// Resolves `--pairs`: a manifest path, a preset file, or a preset name.
pub fn resolve_pairs(arg: &str) -> Result<ResolvedPairs> {
    let path = Path::new(arg);
    let stem = || {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    if arg.ends_with(".toml") {
        let text = std::fs::read_to_string(path).map_err(|source| GeomError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        return locate(Preset::from_toml(&text, arg)?, arg);
    }
    if path.exists() || arg.contains('/') || arg.contains('.') {
        return Ok(ResolvedPairs {
            manifest: path.to_path_buf(),
            dataset: stem(),
            limit: None,
        });
    }
    match Preset::builtin(arg) {
        Some(p) => locate(p, &format!("preset '{arg}'")),
        None => Err(GeomError::invalid(format!(
            "--pairs {arg}: no such file and no such preset (presets: {}; or give a manifest .jsonl or a preset .toml)",
            BUILTIN.map(|(n, _)| n).join(", ")
        ))),
    }
}

fn locate(p: Preset, what: &str) -> Result<ResolvedPairs> {
    if p.embedded {
        #[cfg(feature = "model")]
        {
            let demo = super::demo::Demo::materialize()?;
            return Ok(ResolvedPairs {
                manifest: demo.root().join(&p.manifest),
                dataset: p.name,
                limit: p.limit,
            });
        }
        #[cfg(not(feature = "model"))]
        return Err(GeomError::invalid(format!(
            "{what}: the embedded demo needs geom built with the `model` feature (the default)"
        )));
    }
    let under_root = |s: &str| {
        let rel = PathBuf::from(s);
        if rel.is_absolute() {
            rel
        } else {
            data_root().join(rel)
        }
    };
    let found = |manifest: PathBuf| ResolvedPairs {
        manifest,
        dataset: p.name.clone(),
        limit: p.limit,
    };
    let cache = || super::cache::cache_dir(None).join("datasets");
    // 1. The manifest, when there is one.
    let manifest = (!p.manifest.is_empty()).then(|| under_root(&p.manifest));
    if let Some(m) = manifest.as_ref().filter(|m| m.exists()) {
        return Ok(found(m.clone()));
    }
    // 2. Else parquet shards, converted into a manifest once.
    let pattern = p.parquet.as_deref().map(under_root);
    let shards = match &pattern {
        Some(g) => glob(g)?,
        None => Vec::new(),
    };
    if !shards.is_empty() {
        let images = p.images.as_deref().map(under_root);
        let manifest =
            super::pixmo::cached_manifest(&p.name, &shards, images.as_deref(), p.rows, &cache())?;
        return Ok(found(manifest));
    }
    // 3. Else the dataset's own annotation file and media folder, converted
    //    into a manifest once.
    let annotations: Vec<PathBuf> = p.annotations.iter().map(|a| under_root(a)).collect();
    let media: Vec<PathBuf> = p.media.iter().map(|m| under_root(m)).collect();
    let root = match std::env::var_os("GEOM_DATA") {
        Some(r) => format!("GEOM_DATA={}", r.to_string_lossy()),
        None => "GEOM_DATA is unset, so ./data".to_string(),
    };
    let list = |paths: &[PathBuf]| {
        paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let own_preset = match p.format {
        Some(f) => format!(
            "manifest = \"…\", or format = \"{}\" with annotations = \"…\" and media = \"…\"",
            f.name()
        ),
        None => "manifest = \"…\", or parquet = \"…\" with images = \"…\"".to_string(),
    };
    if let (Some(format), Some(ann)) = (p.format, annotations.iter().find(|a| a.is_file())) {
        let Some(dir) = media.iter().find(|m| m.is_dir()) else {
            return Err(GeomError::invalid(format!(
                "{what} ({}): found the annotations {} but no folder of {}: looked for {} ({root}); {}; \
                 then set GEOM_DATA to the folder holding them, or pass --pairs a preset .toml of your own ({own_preset})",
                p.description,
                ann.display(),
                media_noun(format),
                list(&media),
                p.how_to,
            )));
        };
        let manifest = match format {
            Format::Audiocaps => super::audiocaps::cached_manifest(&p.name, ann, dir, &cache())?,
            Format::Msrvtt => super::msrvtt::cached_manifest(&p.name, ann, dir, &cache())?,
        };
        return Ok(found(manifest));
    }
    // 4. None: say every place looked at, and how to point elsewhere.
    let mut looked: Vec<String> = manifest
        .iter()
        .map(|m| format!("the manifest {}", m.display()))
        .chain(
            pattern
                .iter()
                .map(|g| format!("parquet shards {}", g.display())),
        )
        .collect();
    if !annotations.is_empty() {
        let noun = p.format.map_or("media", media_noun);
        looked.push(format!(
            "the annotations {} (with the {noun} in {})",
            list(&annotations),
            list(&media)
        ));
    }
    let wanted: Vec<String> = [
        Some(&p.manifest).filter(|m| !m.is_empty()),
        p.parquet.as_ref(),
    ]
    .into_iter()
    .flatten()
    .chain(&p.annotations)
    .map(|s| format!("'{s}'"))
    .collect();
    Err(GeomError::invalid(format!(
        "{what} ({}): looked for {} ({root}) and found none of it; {}; then set GEOM_DATA to the folder holding {}, \
         or pass --pairs a manifest .jsonl or a preset .toml ({own_preset})",
        p.description,
        looked.join(" and for "),
        p.how_to,
        wanted.join(" or "),
    )))
}

/// What a format's media folder holds.
fn media_noun(f: Format) -> &'static str {
    match f {
        Format::Audiocaps => "audio clips",
        Format::Msrvtt => "videos",
    }
}

/// The files matching `pattern`, sorted by name: `*` (any run) and `?` (one
/// character) may appear in the file name, not in the folders.
pub fn glob(pattern: &Path) -> Result<Vec<PathBuf>> {
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = pattern.parent().unwrap_or(Path::new(""));
    if dir.to_string_lossy().contains(['*', '?']) {
        return Err(GeomError::invalid(format!(
            "{}: only the file name may hold wildcards (* or ?), not the folders",
            pattern.display()
        )));
    }
    if !name.contains(['*', '?']) {
        return Ok(if pattern.is_file() {
            vec![pattern.to_path_buf()]
        } else {
            Vec::new()
        });
    }
    let listing = if dir.as_os_str().is_empty() {
        std::fs::read_dir(".")
    } else {
        std::fs::read_dir(dir)
    };
    let Ok(entries) = listing else {
        return Ok(Vec::new());
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| wildcard(&name, &e.file_name().to_string_lossy()))
        .map(|e| dir.join(e.file_name()))
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    Ok(out)
}

/// `*` / `?` matching of a whole name (greedy, backtracking to the last `*`).
fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_name_their_files() {
        for (name, _) in BUILTIN {
            let p = Preset::builtin(name).unwrap();
            assert_eq!(p.name, name);
            assert!(p.manifest.ends_with("pairs.jsonl"));
            // The paper's 1000 pairs; the demo is small and used whole.
            let limit = if p.embedded { None } else { Some(1000) };
            assert_eq!(p.limit, limit, "{name}");
        }
    }

    #[test]
    fn globs_match_file_names_in_order() {
        let fx = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pixmo/data");
        let shards = [
            fx.join("train-00000-of-00002.parquet"),
            fx.join("train-00001-of-00002.parquet"),
        ];
        assert_eq!(glob(&fx.join("train-*-of-?????.parquet")).unwrap(), shards);
        assert_eq!(glob(&shards[1]).unwrap(), shards[1..]);
        assert!(glob(&fx.join("nothing-*.parquet")).unwrap().is_empty());
        assert!(glob(&fx.join("no-such-folder/*.parquet"))
            .unwrap()
            .is_empty());
        assert!(glob(&fx.join("*/train.parquet")).is_err());
        assert!(wildcard("a*b*c", "aXXbYc") && wildcard("*", "") && wildcard("a?c", "abc"));
        assert!(!wildcard("a*b", "ab_") && !wildcard("a?c", "ac"));
    }

    #[test]
    fn resolution() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("x.jsonl");
        std::fs::write(&m, "{}").unwrap();
        let r = resolve_pairs(m.to_str().unwrap()).unwrap();
        assert_eq!(
            (r.manifest, r.dataset, r.limit),
            (m.clone(), "x".to_string(), None)
        );
        // A preset file pointing at an absolute manifest.
        let t = dir.path().join("mine.toml");
        std::fs::write(
            &t,
            format!(
                "name = \"mine\"\ndescription = \"d\"\nmodalities = [\"text\"]\nmanifest = \"{}\"\nlimit = 5\n",
                m.display()
            ),
        )
        .unwrap();
        let r = resolve_pairs(t.to_str().unwrap()).unwrap();
        assert_eq!((r.dataset.as_str(), r.limit), ("mine", Some(5)));
        // A built-in whose data is not there says where it looked and what to do.
        let e = resolve_pairs("msrvtt").unwrap_err().to_string();
        assert!(
            e.contains("msrvtt/pairs.jsonl") && e.contains("GEOM_DATA"),
            "{e}"
        );
        // PixMo: the manifest and the parquet shards, both named.
        let e = resolve_pairs("pixmo").unwrap_err().to_string();
        assert!(
            e.contains("pixmo/pairs.jsonl")
                && e.contains("pixmo-cap/data/train-00000-of-*.parquet")
                && e.contains("GEOM_DATA")
                && e.contains("preset .toml"),
            "{e}"
        );
        // A preset naming no data at all.
        let e = Preset::from_toml(
            "name = \"x\"\ndescription = \"d\"\nmodalities = []\n",
            "x.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("names no data"), "{e}");
        let e = resolve_pairs("nosuch").unwrap_err().to_string();
        assert!(e.contains("presets: demo, pixmo, msrvtt, audiocaps"), "{e}");
    }

    #[test]
    fn annotation_presets_name_every_place_they_looked() {
        for (name, wanted) in [
            (
                "audiocaps",
                &[
                    "audiocaps/pairs.jsonl",
                    "audiocaps/test.csv",
                    "audiocaps/dataset/test.csv",
                    "AUDIOCAPS/test.csv",
                    "AUDIOCAPS_32000Hz/test.csv",
                    "audiocaps/test,",
                    "AUDIOCAPS/audio_32000Hz/test",
                    "with the audio clips in",
                    "format = \"audiocaps\" with annotations",
                ][..],
            ),
            (
                "msrvtt",
                &[
                    "msrvtt/pairs.jsonl",
                    "msrvtt/msrvtt_data/MSRVTT_JSFUSION_test.csv",
                    "msrvtt/MSRVTT_data.json",
                    "msrvtt/test_videodatainfo.json",
                    "msrvtt/MSRVTT/videos/all",
                    "msrvtt/TestVideo",
                    "with the videos in",
                ][..],
            ),
        ] {
            let p = Preset::builtin(name).unwrap();
            assert_eq!(p.format.map(Format::name), Some(name));
            let e = resolve_pairs(name).unwrap_err().to_string();
            for w in wanted {
                assert!(e.contains(w), "{name}: {e} (wanted {w})");
            }
            assert!(e.contains("GEOM_DATA") && e.contains("preset .toml"), "{e}");
        }
    }

    #[test]
    fn annotations_found_without_media_say_where_media_was_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("test.csv");
        std::fs::write(&csv, "audiocap_id,youtube_id,start_time,caption\n").unwrap();
        let t = dir.path().join("ac.toml");
        let (a, b) = (dir.path().join("clips"), dir.path().join("audio/test"));
        std::fs::write(
            &t,
            format!(
                "name = \"ac\"\ndescription = \"d\"\nmodalities = [\"text\", \"audio\"]\nformat = \"audiocaps\"\n\
                 annotations = [\"{}\", \"{}\"]\nmedia = [\"{}\", \"{}\"]\n",
                dir.path().join("nope.csv").display(),
                csv.display(),
                a.display(),
                b.display()
            ),
        )
        .unwrap();
        let e = resolve_pairs(t.to_str().unwrap()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("found the annotations {}", csv.display()))
                && e.contains(&format!("{}, {}", a.display(), b.display()))
                && e.contains("no folder of audio clips"),
            "{e}"
        );
    }

    #[test]
    fn format_fields_are_checked() {
        let head = "name = \"x\"\ndescription = \"d\"\nmodalities = []\n";
        let parse = |rest: &str| Preset::from_toml(&format!("{head}{rest}"), "x.toml");
        let p = parse("format = \"msrvtt\"\nannotations = \"a.csv\"\nmedia = [\"v\", \"w\"]\n")
            .unwrap();
        assert_eq!(
            (p.format, p.annotations, p.media),
            (
                Some(Format::Msrvtt),
                vec!["a.csv".to_string()],
                vec!["v".to_string(), "w".to_string()]
            )
        );
        for (rest, needle) in [
            (
                "annotations = \"a.csv\"\nmedia = \"v\"\n",
                "need format = \"audiocaps\" or \"msrvtt\"",
            ),
            (
                "format = \"msrvtt\"\nmanifest = \"m.jsonl\"\n",
                "needs annotations",
            ),
            (
                "format = \"audiocaps\"\nannotations = \"a.csv\"\n",
                "needs media = \"…\" (the folder of its audio clips)",
            ),
            (
                "format = \"clotho\"\nannotations = \"a.csv\"\nmedia = \"v\"\n",
                "unknown variant `clotho`",
            ),
            (
                "format = \"msrvtt\"\nannotations = 3\nmedia = \"v\"\n",
                "a path or a list of paths",
            ),
        ] {
            let e = parse(rest).unwrap_err().to_string();
            assert!(e.contains(needle), "{e} (wanted {needle})");
        }
    }
}
