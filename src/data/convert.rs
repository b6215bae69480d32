//! What the annotation readers ([`super::audiocaps`], [`super::msrvtt`])
//! share: a dataset's own annotation file converted once into a JSONL
//! manifest under the geom cache, CSV reading whose errors name the file and
//! line, and a listing of the media folder.
//!
//! A conversion lives in `<cache>/<name>-<key>/pairs.jsonl`, where the key
//! covers the annotation file (path, size, modification time) and the media
//! folder (path and modification time: adding or removing clips changes
//! it), so an edited annotation file or a download that went on is
//! converted again.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use crate::error::{GeomError, Result};

/// The manifest file of a conversion folder.
pub(crate) const MANIFEST: &str = "pairs.jsonl";

/// The cached manifest of `inputs` converted by `convert` (which writes
/// `<dir>/pairs.jsonl` through [`write_manifest`]), under
/// `cache/<name>-<key>/`. Returns the manifest and, when it converted now,
/// what `convert` returned (`None`: the cached one was reused). A failed
/// conversion leaves no folder behind.
pub(crate) fn cached<C>(
    name: &str,
    kind: &str,
    inputs: &[&Path],
    cache: &Path,
    convert: impl FnOnce(&Path) -> Result<C>,
) -> Result<(PathBuf, Option<C>)> {
    let mut key = Sha256::new();
    key.update(format!("geom {kind} manifest v1\0").as_bytes());
    for p in inputs {
        key.update(stamp(p)?.as_bytes());
    }
    let key: String = key.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let dir = cache.join(format!("{name}-{}", &key[..16]));
    let manifest = dir.join(MANIFEST);
    if manifest.is_file() {
        return Ok((manifest, None));
    }
    let conv = convert(&dir).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&dir);
    })?;
    Ok((manifest, Some(conv)))
}

/// Writes `lines` as `<out_dir>/pairs.jsonl` (the folder is created) through
/// a temporary file and a rename, so a reader never sees half a manifest.
pub(crate) fn write_manifest(out_dir: &Path, lines: &[serde_json::Value]) -> Result<PathBuf> {
    let io = |p: &Path| {
        let path = p.to_path_buf();
        move |source| GeomError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let manifest = out_dir.join(MANIFEST);
    let tmp = manifest.with_extension(format!("{}.tmp", std::process::id()));
    let written = (|| {
        let mut w = BufWriter::new(File::create(&tmp).map_err(io(&tmp))?);
        for l in lines {
            writeln!(w, "{l}").map_err(io(&tmp))?;
        }
        w.flush().map_err(io(&tmp))?;
        drop(w);
        std::fs::rename(&tmp, &manifest).map_err(io(&manifest))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map(|()| manifest)
}

/// A CSV file read whole: the position of each wanted column, and the rows
/// with their 1-based line numbers (the header is line 1).
#[derive(Debug)]
pub(crate) struct Csv {
    /// Index of each wanted column, in the order asked for.
    pub columns: Vec<usize>,
    /// `(line, record)` of every data row.
    pub rows: Vec<(usize, csv::StringRecord)>,
}

impl Csv {
    /// Field `col` (an index into the wanted columns) of `record`, trimmed.
    pub fn field<'r>(&self, record: &'r csv::StringRecord, col: usize) -> &'r str {
        record.get(self.columns[col]).unwrap_or("").trim()
    }
}

/// Reads a comma-separated file with a header naming at least `wanted`
/// (any order, other columns allowed). A UTF-8 byte-order mark and CRLF line
/// ends are accepted, fields may be quoted (`"a, b"`). Errors name the file
/// and line; `expected` describes the file (`AudioCaps' test.csv, header
/// audiocap_id,youtube_id,start_time,caption`).
pub(crate) fn read_csv(path: &Path, wanted: &[&str], expected: &str) -> Result<Csv> {
    let bytes = std::fs::read(path).map_err(|source| GeomError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // Lines are counted here from the records' byte offsets: the csv
    // crate's own line count does not advance on CRLF line ends. A record's
    // offset is where the previous one's line end begins, so line ends (and
    // blank lines) are stepped over first.
    let newlines: Vec<usize> = bytes
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .map(|(i, _)| i)
        .collect();
    let line_of = |p: &csv::Position| {
        let mut at = p.byte() as usize;
        while bytes.get(at).is_some_and(|b| matches!(b, b'\r' | b'\n')) {
            at += 1;
        }
        1 + newlines.partition_point(|&n| n < at) as u64
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(bytes.as_slice());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(path, e, line_of))?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    let columns = wanted
        .iter()
        .map(|w| {
            header.iter().position(|h| h == w).ok_or_else(|| {
                GeomError::invalid(format!(
                    "{}:1: no column '{w}' in the header (it has: {}); expected {expected}",
                    path.display(),
                    header.join(",")
                ))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_error(path, e, line_of)),
        }
        let line = record.position().map_or(0, line_of) as usize;
        rows.push((line, record.clone()));
    }
    Ok(Csv { columns, rows })
}

fn csv_error(path: &Path, e: csv::Error, line_of: impl Fn(&csv::Position) -> u64) -> GeomError {
    let line = e
        .position()
        .map(|p| format!(":{}", line_of(p)))
        .unwrap_or_default();
    match e.into_kind() {
        csv::ErrorKind::Io(source) => GeomError::Io {
            path: path.to_path_buf(),
            source,
        },
        csv::ErrorKind::Utf8 { .. } => {
            GeomError::invalid(format!("{}{line}: not valid UTF-8", path.display()))
        }
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => GeomError::invalid(format!(
            "{}{line}: {len} fields, but the header has {expected_len} (a field with a comma inside must be quoted)",
            path.display()
        )),
        other => GeomError::invalid(format!("{}{line}: {other:?}", path.display())),
    }
}

/// The entries of a media folder, listed once (a full download is tens of
/// thousands of files).
pub(crate) struct MediaIndex {
    /// The folder, absolute.
    dir: PathBuf,
    /// Names of its files.
    files: HashSet<String>,
    /// Names of its sub-folders.
    folders: HashSet<String>,
}

impl MediaIndex {
    /// Lists `dir` (not recursively).
    pub fn read(dir: &Path) -> Result<Self> {
        let io = |source| GeomError::Io {
            path: dir.to_path_buf(),
            source,
        };
        let mut files = HashSet::new();
        let mut folders = HashSet::new();
        for e in std::fs::read_dir(dir).map_err(io)?.filter_map(|e| e.ok()) {
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            // Follows symbolic links (a folder of links to the clips).
            let path = e.path();
            if path.is_dir() {
                folders.insert(name);
            } else if path.is_file() {
                files.insert(name);
            }
        }
        Ok(Self {
            dir: absolute(dir),
            files,
            folders,
        })
    }

    /// The folder listed.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/<stem>.<ext>` for the first of `exts` that is there.
    pub fn file(&self, stem: &str, exts: &[&str]) -> Option<PathBuf> {
        exts.iter()
            .map(|x| format!("{stem}.{x}"))
            .find(|n| self.files.contains(n))
            .map(|n| self.dir.join(n))
    }

    /// `<dir>/<name>/` when it is a folder.
    pub fn folder(&self, name: &str) -> Option<PathBuf> {
        self.folders.contains(name).then(|| self.dir.join(name))
    }

    /// How many files the folder holds, and one of them (the least by
    /// name), to say what is there when nothing matched.
    pub fn sample(&self) -> (usize, Option<&str>) {
        (
            self.files.len(),
            self.files.iter().min().map(String::as_str),
        )
    }
}

/// `path` made absolute (canonical when it exists), so a manifest in the
/// cache still finds it.
pub(crate) fn absolute(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    })
}

/// Path, size and modification time of a file or folder (the cache key).
fn stamp(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path).map_err(|source| GeomError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!(
        "{}\0{}\0{mtime}\0",
        absolute(path).display(),
        meta.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_bom_crlf_and_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        std::fs::write(
            &p,
            "\u{feff}x,name,caption\r\n1,a,\"one, two\"\r\n\r\n2,b,three\r\n",
        )
        .unwrap();
        let c = read_csv(&p, &["caption", "name"], "x").unwrap();
        assert_eq!(c.columns, [2, 1]);
        let got: Vec<(usize, &str, &str)> = c
            .rows
            .iter()
            .map(|(l, r)| (*l, c.field(r, 0), c.field(r, 1)))
            .collect();
        assert_eq!(got, [(2, "one, two", "a"), (4, "three", "b")]);
    }

    #[test]
    fn csv_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        for body in ["x,caption\n1,a\n2,b,c\n", "x,caption\r\n1,a\r\n2,b,c\r\n"] {
            std::fs::write(&p, body).unwrap();
            let e = read_csv(&p, &["caption"], "x").unwrap_err().to_string();
            assert!(e.contains("a.csv:3: 3 fields, but the header has 2"), "{e}");
        }
        let e = read_csv(&p, &["sentence"], "a CSV with sentences")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("a.csv:1: no column 'sentence'")
                && e.contains("it has: x,caption")
                && e.contains("a CSV with sentences"),
            "{e}"
        );
    }

    #[test]
    fn cache_converts_once_and_again_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.csv");
        std::fs::write(&input, "a").unwrap();
        let cache = dir.path().join("cache");
        let conv = |d: &Path| write_manifest(d, &[serde_json::json!({"id": "1", "text": "t"})]);
        let (a, first) = cached("x", "test", &[&input], &cache, conv).unwrap();
        assert!(first.is_some() && a.is_file());
        let (b, again) = cached("x", "test", &[&input], &cache, conv).unwrap();
        assert_eq!((a.clone(), again), (b, None));
        std::fs::write(&input, "ab").unwrap();
        let (c, _) = cached("x", "test", &[&input], &cache, conv).unwrap();
        assert_ne!(a, c);
        // A failed conversion leaves nothing behind.
        std::fs::write(&input, "abc").unwrap();
        let e = cached("x", "test", &[&input], &cache, |d: &Path| -> Result<()> {
            std::fs::create_dir_all(d).unwrap();
            Err(GeomError::invalid("no"))
        });
        assert!(e.is_err());
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
    }
}
