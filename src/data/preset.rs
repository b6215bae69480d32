//! Named dataset presets (`--pairs pixmo`): TOML files in
//! `configs/datasets/`, compiled into the binary, that say where a
//! dataset's manifest lives under the data root and how many pairs the
//! paper used.
//!
//! The data root is `$GEOM_DATA`, or `./data` when it is unset. `--pairs`
//! also takes a manifest path (`pairs.jsonl`) or a preset file
//! (`my-dataset.toml`, whose `manifest` resolves against the data root, or
//! is absolute).

use std::path::{Path, PathBuf};

use serde::Deserialize;

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
    /// The manifest, relative to the data root (or absolute).
    pub manifest: String,
    /// How many pairs (from the start) the paper's analysis used.
    #[serde(default)]
    pub limit: Option<usize>,
    /// How to prepare the data.
    #[serde(default)]
    pub how_to: String,
}

/// The presets shipped with geom.
pub const BUILTIN: [(&str, &str); 3] = [
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
        toml::from_str(text).map_err(|e| {
            GeomError::invalid(format!(
                "{source}: not a dataset preset ({e}); expected name, description, modalities, manifest"
            ))
        })
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
    let rel = PathBuf::from(&p.manifest);
    let manifest = if rel.is_absolute() {
        rel
    } else {
        data_root().join(rel)
    };
    if !manifest.exists() {
        let root = match std::env::var_os("GEOM_DATA") {
            Some(r) => format!("GEOM_DATA={}", r.to_string_lossy()),
            None => "GEOM_DATA is unset, so ./data".to_string(),
        };
        return Err(GeomError::invalid(format!(
            "{what} ({}): looked for {} ({root}) and it is not there; {}; then set GEOM_DATA to the folder holding '{}', or pass --pairs path/to/manifest.jsonl",
            p.description,
            manifest.display(),
            p.how_to,
            p.manifest
        )));
    }
    Ok(ResolvedPairs {
        manifest,
        dataset: p.name,
        limit: p.limit,
    })
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
            assert_eq!(p.limit, Some(1000));
        }
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
        let e = resolve_pairs("nosuch").unwrap_err().to_string();
        assert!(e.contains("presets: pixmo, msrvtt, audiocaps"), "{e}");
    }
}
