//! The embedded default: the demo stores compiled into the binary, so
//! `geom anisotropy` with no argument works anywhere, with no download.

use std::path::PathBuf;

use super::common::StoreArg;
use crate::error::{GeomError, Result};

/// The demo stores: (label, file name, bytes).
const DEMO: [(&str, &str, &[u8]); 2] = [
    (
        "before CL",
        "before.h5",
        include_bytes!("../../assets/demo/before.h5"),
    ),
    (
        "after CL",
        "after.h5",
        include_bytes!("../../assets/demo/after.h5"),
    ),
];

/// Writes the embedded demo stores to a per-version cache folder (once) and
/// returns them as store arguments.
pub fn demo_stores() -> Result<Vec<StoreArg>> {
    let dir = std::env::temp_dir().join(format!("geom-demo-{}", env!("CARGO_PKG_VERSION")));
    std::fs::create_dir_all(&dir).map_err(|source| GeomError::Io {
        path: dir.clone(),
        source,
    })?;
    DEMO.iter()
        .map(|(label, name, bytes)| {
            let path: PathBuf = dir.join(name);
            let same = std::fs::metadata(&path)
                .map(|m| m.len() == bytes.len() as u64)
                .unwrap_or(false)
                && std::fs::read(&path).map(|b| b == *bytes).unwrap_or(false);
            if !same {
                let tmp = dir.join(format!("{name}.{}.tmp", std::process::id()));
                std::fs::write(&tmp, bytes)
                    .and_then(|_| std::fs::rename(&tmp, &path))
                    .map_err(|source| GeomError::Io {
                        path: path.clone(),
                        source,
                    })?;
            }
            Ok(StoreArg {
                label: label.to_string(),
                path,
            })
        })
        .collect()
}
