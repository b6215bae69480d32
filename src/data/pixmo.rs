//! PixMo-Cap read straight from its parquet shards (`--pairs pixmo` without
//! converting to JSONL by hand).
//!
//! PixMo-Cap (Hugging Face dataset `allenai/pixmo-cap`, 717,042 rows in
//! `data/train-0000N-of-00004.parquet`) has three columns: `image_url`
//! (string), `caption` (string, the long caption) and `transcripts`
//! (list of strings, the annotators' spoken descriptions; not used here). It
//! ships URLs, not images: users download the images into a folder, and
//! molmo's downloader (allenai/molmo `olmo/data/download_urls.py`) names each
//! file by the SHA-256 of its URL, `<sha256(image_url) in hex>`, without an
//! extension. Re-uploads with the images embedded (such as
//! `anthracite-org/pixmo-cap-images`) add a column `image` holding Hugging
//! Face `datasets`' `Image` feature, a struct `{bytes: binary, path: string}`.
//!
//! [`manifest_from_parquet`] reads the shards in order (only the columns it
//! needs) and writes a standard JSONL manifest (see [`super::manifest`]):
//!
//! ```json
//! {"id": "pixmo-0-17", "text": "<caption>", "image": "/data/pixmo-cap/images/3f2a…"}
//! ```
//!
//! where `0` is the shard number (`train-00000-of-00004`) and `17` the
//! 0-based row in that shard. Per row:
//!
//! * **embedded bytes** (`image.bytes`) are written once into `images/`
//!   beside the manifest (the extractor reads files);
//! * **a URL** points at `<images>/<sha256(url)>` (or that name with an
//!   extension, if that is what the folder holds). When the file is not
//!   there the line still points at the expected path: the conversion
//!   reports how many are missing (and the first), and `geom extract` stops
//!   at such a pair naming the line and file, or leaves it out with
//!   `--skip-bad` (molmo's downloader also leaves the error text of a failed
//!   download in the file, which the extractor reports as undecodable in the
//!   same way). When *none* of the URLs has its file, or the folder is not
//!   there, the conversion fails instead: the images were not downloaded, or
//!   were named another way.
//!
//! [`cached_manifest`] does the conversion once per set of shards (keyed by
//! their paths, sizes and modification times) under a cache folder.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use parquet::basic::Type as PhysicalType;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use parquet::schema::types::{Type, TypePtr};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::{GeomError, Result};

/// The caption column (`allenai/pixmo-cap`).
pub const CAPTION: &str = "caption";
/// The image URL column (`allenai/pixmo-cap`).
pub const IMAGE_URL: &str = "image_url";
/// The embedded image column (`datasets`' `Image` feature: `{bytes, path}`).
pub const IMAGE: &str = "image";

/// How to get PixMo-Cap's images (in errors).
const HOW_TO_FETCH: &str =
    "PixMo-Cap ships image URLs, not images: download them into one folder, \
each file named by the SHA-256 of its URL in hex (as molmo's downloader, \
olmo/data/download_urls.py, names them; an extension such as .jpg is allowed), \
and give that folder as the preset's `images`";

/// What [`manifest_from_parquet`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// The JSONL manifest (`<out_dir>/pairs.jsonl`).
    pub manifest: PathBuf,
    /// Its lines (pairs).
    pub rows: usize,
    /// Embedded images written into `<out_dir>/images/`.
    pub materialised: usize,
    /// Lines whose URL's file is not in the images folder.
    pub missing: usize,
    /// The first of them.
    pub first_missing: Option<Missing>,
}

/// A row whose image URL has no file in the images folder (yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// Its pair id.
    pub id: String,
    /// Its shard.
    pub shard: PathBuf,
    /// Its 0-based row in the shard.
    pub row: usize,
    /// Its image URL.
    pub url: String,
    /// The file the manifest line points at (molmo's name for the URL).
    pub expected: PathBuf,
}

impl Conversion {
    /// A one-line warning about missing image files, if any.
    pub fn warning(&self) -> Option<String> {
        let m = self.first_missing.as_ref()?;
        Some(format!(
            "{}: {} of {} pairs have no image file yet (the first: '{}', row {} of {}, {} expected at {}); \
             geom extract stops at such a pair unless --limit keeps it out or --skip-bad leaves it out",
            self.manifest.display(),
            self.missing,
            self.rows,
            m.id,
            m.row,
            m.shard.display(),
            m.url,
            m.expected.display()
        ))
    }
}

/// Where a shard's rows get their image.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// The `image` struct column (bytes, path).
    Embedded,
    /// The `image_url` column.
    Url,
}

/// An open shard: its reader, the projection onto the columns geom reads,
/// and where its images come from.
type Shard = (SerializedFileReader<File>, Type, Source);

/// Writes the manifest of the first `limit` rows (all when `None`) of
/// `shards`, read in order, into `out_dir/pairs.jsonl` (created, with
/// `out_dir/images/` for embedded images). `images` is the folder of
/// downloaded images, needed when a shard has URLs only.
///
/// Every shard's schema is checked before any row is read. Errors (one line
/// each) name the shard, and the row or column: a file that is not parquet,
/// a missing `caption` / `image_url` column, an empty caption, a row
/// without an image, a missing images folder, a folder holding none of the
/// URLs' files.
pub fn manifest_from_parquet(
    shards: &[PathBuf],
    images: Option<&Path>,
    limit: Option<usize>,
    out_dir: &Path,
) -> Result<Conversion> {
    if shards.is_empty() {
        return Err(GeomError::invalid("no parquet shards to read"));
    }
    let opened = shards.iter().map(|s| open(s)).collect::<Result<Vec<_>>>()?;
    let index = shards
        .iter()
        .zip(&opened)
        .find(|(_, (_, _, source))| matches!(source, Source::Url))
        .map(|(shard, _)| ImageIndex::read(shard, images))
        .transpose()?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GeomError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io(out_dir))?;
    let mut rows = Rows {
        images,
        index,
        out_dir,
        url_rows: 0,
        conv: Conversion {
            manifest: out_dir.join("pairs.jsonl"),
            rows: 0,
            materialised: 0,
            missing: 0,
            first_missing: None,
        },
    };
    let tmp = rows
        .conv
        .manifest
        .with_extension(format!("{}.tmp", std::process::id()));
    let mut w = BufWriter::new(File::create(&tmp).map_err(io(&tmp))?);
    let written = rows
        .write(shards, &opened, limit.unwrap_or(usize::MAX), &mut w)
        .and_then(|()| w.flush().map_err(io(&tmp)));
    drop(w);
    let done = written
        .and_then(|()| rows.check(shards))
        .and_then(|()| std::fs::rename(&tmp, &rows.conv.manifest).map_err(io(&tmp)));
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done.map(|()| rows.conv)
}

fn open(shard: &Path) -> Result<Shard> {
    let file = File::open(shard).map_err(|source| GeomError::Io {
        path: shard.to_path_buf(),
        source,
    })?;
    let reader = SerializedFileReader::new(file).map_err(|e| {
        GeomError::invalid(format!(
            "{}: not a readable parquet file ({e}); expected a PixMo-Cap shard such as data/train-00000-of-00004.parquet",
            shard.display()
        ))
    })?;
    let (projection, source) = project(shard, reader.metadata().file_metadata().schema())?;
    Ok((reader, projection, source))
}

/// The state of a conversion.
struct Rows<'a> {
    images: Option<&'a Path>,
    index: Option<ImageIndex>,
    out_dir: &'a Path,
    /// Rows with an image URL (not embedded) so far.
    url_rows: usize,
    conv: Conversion,
}

impl Rows<'_> {
    /// Writes the manifest lines of the first `limit` rows of the shards.
    fn write(
        &mut self,
        shards: &[PathBuf],
        opened: &[Shard],
        limit: usize,
        w: &mut impl Write,
    ) -> Result<()> {
        let tags = shard_tags(shards);
        for ((shard, tag), (reader, projection, source)) in shards.iter().zip(&tags).zip(opened) {
            let rows = reader
                .get_row_iter(Some(projection.clone()))
                .map_err(|e| parquet_err(shard, e))?;
            for (r, row) in rows.enumerate() {
                if self.conv.rows >= limit {
                    return Ok(());
                }
                let row = row.map_err(|e| parquet_err(shard, e))?;
                let line = self.line(shard, tag, r, &row, *source)?;
                writeln!(w, "{line}").map_err(|source| GeomError::Io {
                    path: self.conv.manifest.clone(),
                    source,
                })?;
                self.conv.rows += 1;
            }
        }
        Ok(())
    }

    /// The manifest line of row `r` of `shard`.
    fn line(
        &mut self,
        shard: &Path,
        tag: &str,
        r: usize,
        row: &Row,
        source: Source,
    ) -> Result<serde_json::Value> {
        let at = |msg: &str| GeomError::invalid(format!("{}: row {r}: {msg}", shard.display()));
        let id = format!("pixmo-{tag}-{r}");
        let caption = match text(get(row, CAPTION)) {
            Some(c) if !c.trim().is_empty() => c,
            _ => return Err(at("empty caption")),
        };
        let image = match source {
            Source::Embedded => {
                let Some(Field::Group(img)) = get(row, IMAGE) else {
                    return Err(at("no image (the 'image' column is null)"));
                };
                let path = text(get(img, "path"));
                match (get(img, "bytes"), path) {
                    (Some(Field::Bytes(b)), path) => {
                        let name = format!("{tag}-{r}.{}", extension(path, b.data()));
                        write_atomic(&self.out_dir.join("images").join(&name), b.data())?;
                        self.conv.materialised += 1;
                        PathBuf::from("images").join(name)
                    }
                    // datasets' Image feature may hold a path instead of bytes.
                    (_, Some(p)) => {
                        let base = self.images.or(shard.parent()).unwrap_or(Path::new("."));
                        absolute(&base.join(p))
                    }
                    _ => return Err(at("no image (image.bytes and image.path are both null)")),
                }
            }
            Source::Url => {
                let Some(url) = text(get(row, IMAGE_URL)) else {
                    return Err(at("no image URL (the 'image_url' column is null)"));
                };
                self.url_rows += 1;
                let index = self.index.as_ref().expect("read for URL shards");
                match index.find(&url) {
                    Some(p) => p,
                    None => {
                        let expected = index.expected(&url);
                        self.conv.missing += 1;
                        self.conv.first_missing.get_or_insert_with(|| Missing {
                            id: id.clone(),
                            shard: shard.to_path_buf(),
                            row: r,
                            url,
                            expected: expected.clone(),
                        });
                        expected
                    }
                }
            }
        };
        Ok(json!({"id": id, "text": caption, "image": image}))
    }

    /// Fails when there were no rows, or when no URL had its image file
    /// (not downloaded, or named another way).
    fn check(&self, shards: &[PathBuf]) -> Result<()> {
        if self.conv.rows == 0 {
            let names: Vec<String> = shards.iter().map(|s| s.display().to_string()).collect();
            return Err(GeomError::invalid(format!(
                "{}: no rows to convert",
                names.join(", ")
            )));
        }
        match &self.conv.first_missing {
            Some(m) if self.conv.missing == self.url_rows => Err(GeomError::invalid(format!(
                "{}: none of the {} image URLs has its file in {} (row {}, {}, expects {}); {HOW_TO_FETCH}",
                m.shard.display(),
                self.url_rows,
                self.images.map_or_else(String::new, |p| p.display().to_string()),
                m.row,
                m.url,
                m.expected.display()
            ))),
            _ => Ok(()),
        }
    }
}

/// The manifest of `shards` under `cache/<name>-<key>/`, converted by
/// [`manifest_from_parquet`] unless it is there already. The key covers
/// the shards' paths, sizes and modification times, the images folder
/// (path and modification time: downloading more images changes it) and
/// `limit`, so changed shards are converted again. Says on stderr when it
/// converts, and warns about missing image files.
pub fn cached_manifest(
    name: &str,
    shards: &[PathBuf],
    images: Option<&Path>,
    limit: Option<usize>,
    cache: &Path,
) -> Result<PathBuf> {
    let mut key = Sha256::new();
    key.update(b"geom pixmo manifest v1\0");
    for s in shards {
        key.update(stamp(s)?.as_bytes());
    }
    if let Some(dir) = images.filter(|d| d.exists()) {
        key.update(stamp(dir)?.as_bytes());
    }
    key.update(format!("{limit:?}").as_bytes());
    let key = hex(&key.finalize());
    let dir = cache.join(format!("{name}-{}", &key[..16]));
    let manifest = dir.join("pairs.jsonl");
    if manifest.is_file() {
        return Ok(manifest);
    }
    eprintln!(
        "{name}: converting {} parquet shard(s) into {} (once)",
        shards.len(),
        manifest.display()
    );
    let conv = manifest_from_parquet(shards, images, limit, &dir).inspect_err(|_| {
        // Leave no half-converted folder behind (the next run starts afresh).
        let _ = std::fs::remove_dir_all(&dir);
    })?;
    if let Some(w) = conv.warning() {
        eprintln!("{name}: warning: {w}");
    }
    Ok(conv.manifest)
}

/// The projection of a shard's schema onto the columns geom reads, and where
/// its images come from; errors name the file and the expected column.
fn project(shard: &Path, schema: &Type) -> Result<(Type, Source)> {
    let fields = schema.get_fields();
    let find = |name: &str| fields.iter().find(|f| f.name() == name);
    let have = || {
        fields
            .iter()
            .map(|f| f.name().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let is_bytes =
        |f: &TypePtr| f.is_primitive() && f.get_physical_type() == PhysicalType::BYTE_ARRAY;
    let missing = |col: &str, what: &str| {
        GeomError::invalid(format!(
            "{}: no column '{col}' ({what}); a PixMo-Cap shard has image_url, caption, transcripts (this one has: {})",
            shard.display(),
            have()
        ))
    };
    let wrong = |col: &str, want: &str| {
        GeomError::invalid(format!("{}: column '{col}' is not {want}", shard.display()))
    };
    let caption = find(CAPTION).ok_or_else(|| missing(CAPTION, "the caption"))?;
    if !is_bytes(caption) {
        return Err(wrong(CAPTION, "a string"));
    }
    let mut keep: Vec<TypePtr> = vec![Arc::clone(caption)];
    let source = if let Some(img) = find(IMAGE) {
        let has_bytes = img.is_group()
            && img
                .get_fields()
                .iter()
                .any(|f| f.name() == "bytes" && is_bytes(f));
        if !has_bytes {
            return Err(wrong(
                IMAGE,
                "a struct {bytes: binary, path: string} (datasets' Image feature)",
            ));
        }
        keep.push(Arc::clone(img));
        Source::Embedded
    } else {
        let url = find(IMAGE_URL).ok_or_else(|| {
            missing(
                IMAGE_URL,
                "the image's URL; or 'image' with the image bytes embedded",
            )
        })?;
        if !is_bytes(url) {
            return Err(wrong(IMAGE_URL, "a string"));
        }
        keep.push(Arc::clone(url));
        Source::Url
    };
    let projection = Type::group_type_builder(schema.name())
        .with_fields(keep)
        .build()
        .map_err(|e| parquet_err(shard, e))?;
    Ok((projection, source))
}

/// The downloaded images: files named `<sha256 hex>` or `<sha256 hex>.<ext>`,
/// listed once (a full PixMo-Cap download is ~700k files).
struct ImageIndex {
    dir: PathBuf,
    /// Hash → extension (`None`: the bare name, molmo's).
    files: HashMap<[u8; 32], Option<String>>,
}

impl ImageIndex {
    fn read(shard: &Path, images: Option<&Path>) -> Result<Self> {
        let Some(dir) = images else {
            return Err(GeomError::invalid(format!(
                "{}: rows have image URLs and no images folder was given; {HOW_TO_FETCH}",
                shard.display()
            )));
        };
        if !dir.is_dir() {
            return Err(GeomError::invalid(format!(
                "{}: rows have image URLs, but the images folder {} is not there; {HOW_TO_FETCH}",
                shard.display(),
                dir.display()
            )));
        }
        let entries = std::fs::read_dir(dir).map_err(|source| GeomError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files = HashMap::new();
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name().to_string_lossy().into_owned();
            let (stem, ext) = match name.split_once('.') {
                Some((s, x)) => (s, Some(x.to_string())),
                None => (name.as_str(), None),
            };
            // Unfinished downloads (molmo writes `<hash>.tmp`, then renames).
            if ext.as_deref() == Some("tmp") {
                continue;
            }
            if let Some(h) = unhex(stem) {
                let slot = files.entry(h).or_insert(ext.clone());
                if ext.is_none() {
                    *slot = None;
                }
            }
        }
        Ok(Self {
            dir: absolute(dir),
            files,
        })
    }

    /// The file of `url`, if it was downloaded.
    fn find(&self, url: &str) -> Option<PathBuf> {
        let h: [u8; 32] = Sha256::digest(url.as_bytes()).into();
        let ext = self.files.get(&h)?;
        let name = hex(&h);
        Some(self.dir.join(match ext {
            Some(x) => format!("{name}.{x}"),
            None => name,
        }))
    }

    /// Where molmo's downloader puts the file of `url`.
    fn expected(&self, url: &str) -> PathBuf {
        self.dir.join(url_file_name(url))
    }
}

/// The file name molmo's downloader gives the image of `url`: the SHA-256
/// of its UTF-8 bytes, in lowercase hex (`compute_hash` in
/// allenai/molmo `olmo/data/download_urls.py`).
pub fn url_file_name(url: &str) -> String {
    hex(&Sha256::digest(url.as_bytes()))
}

/// Shard tags for pair ids: `N` of `…-0000N-of-0000M.parquet` when every
/// shard has such a distinct number, else the position in `shards`.
fn shard_tags(shards: &[PathBuf]) -> Vec<String> {
    let number = |p: &PathBuf| -> Option<u64> {
        let stem = p.file_stem()?.to_string_lossy().into_owned();
        let (head, _) = stem.rsplit_once("-of-")?;
        let digits = head.rsplit('-').next()?;
        digits.parse().ok()
    };
    let nums: Option<Vec<u64>> = shards.iter().map(number).collect();
    match nums {
        Some(n) if n.iter().collect::<HashSet<_>>().len() == n.len() => {
            n.iter().map(u64::to_string).collect()
        }
        _ => (0..shards.len()).map(|i| i.to_string()).collect(),
    }
}

fn get<'a>(row: &'a Row, name: &str) -> Option<&'a Field> {
    row.get_column_iter()
        .find(|(n, _)| n.as_str() == name)
        .map(|(_, f)| f)
}

/// A string field (UTF-8 bytes without the string annotation too).
fn text(f: Option<&Field>) -> Option<String> {
    match f? {
        Field::Str(s) => Some(s.clone()),
        Field::Bytes(b) => String::from_utf8(b.data().to_vec()).ok(),
        _ => None,
    }
}

/// The extension of an embedded image: its `path`'s, else sniffed from the
/// bytes (the extractor reads the format from the bytes either way).
fn extension(path: Option<String>, bytes: &[u8]) -> String {
    let from_path = path.as_deref().and_then(|p| {
        let x = Path::new(p).extension()?.to_str()?.to_ascii_lowercase();
        (!x.is_empty() && x.len() <= 5 && x.chars().all(|c| c.is_ascii_alphanumeric())).then_some(x)
    });
    from_path.unwrap_or_else(|| {
        match bytes {
            [0x89, b'P', b'N', b'G', ..] => "png",
            [0xff, 0xd8, 0xff, ..] => "jpg",
            [b'G', b'I', b'F', b'8', ..] => "gif",
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => "webp",
            _ => "img",
        }
        .to_string()
    })
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a
/// reader (or a second process converting the same shards) never sees half
/// a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |p: &Path| {
        let path = p.to_path_buf();
        move |source| GeomError::Io { path, source }
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

/// `path` made absolute (canonical when it exists), so a manifest in the
/// cache still finds it.
fn absolute(path: &Path) -> PathBuf {
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

fn parquet_err(shard: &Path, e: parquet::errors::ParquetError) -> GeomError {
    GeomError::invalid(format!("{}: cannot read parquet ({e})", shard.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Manifest;

    fn fx() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pixmo")
    }

    fn url_shard() -> PathBuf {
        fx().join("data/train-00000-of-00002.parquet")
    }

    fn embedded_shard() -> PathBuf {
        fx().join("data/train-00001-of-00002.parquet")
    }

    fn lines(p: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn url_rows_become_manifest_lines() {
        let out = tempfile::tempdir().unwrap();
        let images = fx().join("images");
        let c = manifest_from_parquet(&[url_shard()], Some(&images), None, out.path()).unwrap();
        assert_eq!((c.rows, c.materialised, c.missing), (5, 0, 3));
        let l = lines(&c.manifest);
        assert_eq!(l.len(), 5);
        assert_eq!(l[0]["id"], "pixmo-0-0");
        assert_eq!(l[4]["id"], "pixmo-0-4");
        assert!(l[1]["text"]
            .as_str()
            .unwrap()
            .starts_with("A tall narrow picture"));
        // Named as molmo's downloader names them: sha256(url), no extension.
        let url = "https://images.example.org/pixmo/0000.png";
        let want = images.canonicalize().unwrap().join(url_file_name(url));
        assert_eq!(l[0]["image"].as_str().unwrap(), want.to_str().unwrap());
        assert!(want.is_file());
        // Rows 2..5 were not downloaded: the lines point at the expected files.
        let m = c.first_missing.clone().unwrap();
        assert_eq!((m.id.as_str(), m.row), ("pixmo-0-2", 2));
        assert_eq!(m.url, "https://images.example.org/pixmo/0002.png");
        assert!(!m.expected.exists() && m.expected.starts_with(images.canonicalize().unwrap()));
        let w = c.warning().unwrap();
        assert!(w.contains("3 of 5") && w.contains("--skip-bad"), "{w}");
        // A standard manifest.
        let m = Manifest::load(&c.manifest).unwrap();
        assert_eq!(m.modalities(), vec!["text", "image"]);
    }

    #[test]
    fn limit_spans_shards_in_order() {
        let out = tempfile::tempdir().unwrap();
        let shards = [url_shard(), embedded_shard()];
        let images = fx().join("images");
        let c = manifest_from_parquet(&shards, Some(&images), Some(3), out.path()).unwrap();
        assert_eq!(c.rows, 3);
        assert_eq!(lines(&c.manifest).len(), 3);
        let c = manifest_from_parquet(&shards, Some(&images), Some(7), out.path()).unwrap();
        let ids: Vec<String> = lines(&c.manifest)
            .iter()
            .map(|v| v["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids[4..], ["pixmo-0-4", "pixmo-1-0", "pixmo-1-1"]);
        assert_eq!(c.materialised, 2);
    }

    #[test]
    fn embedded_bytes_are_materialised() {
        let out = tempfile::tempdir().unwrap();
        // No images folder needed: the shard carries the bytes.
        let c = manifest_from_parquet(&[embedded_shard()], None, None, out.path()).unwrap();
        assert_eq!((c.rows, c.materialised, c.missing), (5, 5, 0));
        let l = lines(&c.manifest);
        assert_eq!(l[0]["image"], "images/1-0.png");
        let m = Manifest::load(&c.manifest).unwrap();
        for p in &m.pairs {
            let img = p.image.as_ref().unwrap();
            let bytes = std::fs::read(img).unwrap();
            assert_eq!(&bytes[..4], b"\x89PNG", "{}", img.display());
        }
        assert_eq!(
            m.pairs[2].text.as_deref().unwrap().split(' ').next(),
            Some("Two")
        );
    }

    #[test]
    fn missing_column_is_named() {
        let out = tempfile::tempdir().unwrap();
        let bad = fx().join("bad/no_caption.parquet");
        let e = manifest_from_parquet(&[bad], None, None, out.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no_caption.parquet") && e.contains("no column 'caption'"),
            "{e}"
        );
        assert!(e.contains("this one has: image_url, transcripts"), "{e}");
    }

    #[test]
    fn not_a_parquet_names_the_file() {
        let out = tempfile::tempdir().unwrap();
        let bogus = out.path().join("train-00000-of-00001.parquet");
        std::fs::write(&bogus, "{\"id\": 1}\n").unwrap();
        let e = manifest_from_parquet(std::slice::from_ref(&bogus), None, None, out.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&bogus.display().to_string()) && e.contains("not a readable parquet file"),
            "{e}"
        );
        assert!(matches!(
            manifest_from_parquet(&[out.path().join("nope.parquet")], None, None, out.path()),
            Err(GeomError::Io { .. })
        ));
    }

    #[test]
    fn missing_images_folder_is_an_error() {
        let out = tempfile::tempdir().unwrap();
        let e = manifest_from_parquet(&[url_shard()], None, None, out.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no images folder was given") && e.contains("SHA-256"),
            "{e}"
        );
        let gone = out.path().join("images-not-here");
        let e = manifest_from_parquet(&[url_shard()], Some(&gone), None, out.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("images-not-here") && e.contains("is not there"),
            "{e}"
        );
        // A folder holding none of the files: not downloaded, or named another way.
        let empty = tempfile::tempdir().unwrap();
        let e = manifest_from_parquet(&[url_shard()], Some(empty.path()), None, out.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("none of the 5 image URLs")
                && e.contains("row 0,")
                && e.contains(&url_file_name("https://images.example.org/pixmo/0000.png")),
            "{e}"
        );
        assert!(!out.path().join("pairs.jsonl").exists());
    }

    #[test]
    fn extensions_in_the_images_folder_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let url = "https://images.example.org/pixmo/0001.png";
        let name = format!("{}.jpg", url_file_name(url));
        std::fs::write(dir.path().join(&name), b"x").unwrap();
        std::fs::write(dir.path().join(format!("{}.tmp", url_file_name("u"))), b"x").unwrap();
        let idx = ImageIndex::read(Path::new("s"), Some(dir.path())).unwrap();
        assert_eq!(idx.find(url).unwrap().file_name().unwrap(), name.as_str());
        assert!(idx.find("u").is_none());
    }

    #[test]
    fn cache_is_reused_and_keyed_by_the_shards() {
        let cache = tempfile::tempdir().unwrap();
        let shard_dir = tempfile::tempdir().unwrap();
        let shard = shard_dir.path().join("train-00001-of-00002.parquet");
        std::fs::copy(embedded_shard(), &shard).unwrap();
        let a =
            cached_manifest("fx", std::slice::from_ref(&shard), None, None, cache.path()).unwrap();
        let b =
            cached_manifest("fx", std::slice::from_ref(&shard), None, None, cache.path()).unwrap();
        assert_eq!(a, b);
        let c = cached_manifest(
            "fx",
            std::slice::from_ref(&shard),
            None,
            Some(2),
            cache.path(),
        )
        .unwrap();
        assert_ne!(a, c);
        // A changed shard (here: other contents, other size) is converted again.
        std::fs::copy(url_shard(), &shard).unwrap();
        let images = fx().join("images");
        let d = cached_manifest("fx", &[shard], Some(&images), None, cache.path()).unwrap();
        assert_ne!(a, d);
        assert!(lines(&d)[0]["image"]
            .as_str()
            .unwrap()
            .contains(&url_file_name("https://images.example.org/pixmo/0000.png")));
    }

    #[test]
    fn shard_tags_are_the_shard_numbers() {
        let p = |s: &str| PathBuf::from(s);
        assert_eq!(
            shard_tags(&[
                p("d/train-00002-of-00004.parquet"),
                p("train-00003-of-00004.parquet")
            ]),
            ["2", "3"]
        );
        assert_eq!(
            shard_tags(&[p("a/x.parquet"), p("b/x.parquet")]),
            ["0", "1"]
        );
        assert_eq!(
            shard_tags(&[
                p("a/train-00000-of-00001.parquet"),
                p("b/train-00000-of-00001.parquet")
            ]),
            ["0", "1"]
        );
    }
}
