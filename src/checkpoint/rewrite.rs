//! Writing checkpoints: a copy of a checkpoint folder with some tensors'
//! values replaced ([`rewrite_checkpoint`], e.g. LoRA adapters merged into
//! their base weights), and weighted averages of checkpoints of one
//! architecture ([`soup_checkpoints`], the "model soup" of LCO-Emb's
//! Table 2).
//!
//! The output mirrors its input: the same shard files (or the one
//! `model.safetensors`), each tensor in its own dtype (F32, BF16 or F16;
//! values come back from f32 with round-to-nearest-even), each file's
//! safetensors `__metadata__`, `model.safetensors.index.json`, and every
//! other file of the folder (config, tokenizer, chat template, processor
//! configs ...). Tensors of other dtypes (integers, bool, f64) are copied
//! unchanged.
//!
//! Writes go to a temporary sibling folder renamed to `out` at the end, so an
//! error or a kill never leaves a half-written checkpoint under `out`. Memory:
//! the new values of one shard at a time (inputs are memory-mapped).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use memmap2::Mmap;
use rayon::prelude::*;
use safetensors::tensor::View;
use safetensors::{Dtype, SafeTensors};

use crate::error::{GeomError, Result};
use crate::checkpoint::load::canonical_key;

const INDEX: &str = "model.safetensors.index.json";
const SINGLE: &str = "model.safetensors";

/// What [`rewrite_checkpoint`] or [`soup_checkpoints`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewriteReport {
    /// The checkpoint folder written.
    pub out: PathBuf,
    /// Tensors whose values were replaced.
    pub tensors_replaced: usize,
    /// Tensors whose bytes were copied unchanged.
    pub tensors_kept: usize,
    /// Safetensors files written (1, or the number of shards).
    pub shards: usize,
    /// Names of the other files copied (config.json, tokenizer.json, the index ...).
    pub files_copied: Vec<String>,
    /// `*.safetensors` files of the input folder that are not part of its
    /// checkpoint (e.g. a stale `model.safetensors` beside an index): not copied.
    pub files_skipped: Vec<String>,
    /// Bytes of every file written.
    pub bytes_written: u64,
}

/// Copies checkpoint folder `base` to `out`, passing every tensor through
/// `f(key_as_stored, shape, values_f32)`: `Ok(Some(v))` replaces the
/// tensor's values (`v.len()` must be the product of `shape`), `Ok(None)`
/// keeps its bytes unchanged; an `Err` stops the rewrite and nothing is
/// left under `out`.
///
/// Tensors are visited shard by shard, in key order within a shard. Each
/// keeps its dtype (F32, BF16 or F16, converted back with
/// round-to-nearest-even); tensors of any other dtype are copied without
/// calling `f`. Refuses an existing non-empty `out`.
pub fn rewrite_checkpoint(
    base: &Path,
    out: &Path,
    f: impl FnMut(&str, &[usize], Vec<f32>) -> Result<Option<Vec<f32>>>,
) -> Result<RewriteReport> {
    rewrite_checkpoint_with(base, out, f, false)
}

/// [`rewrite_checkpoint`] with a progress bar on stderr when `progress`.
pub fn rewrite_checkpoint_with(
    base: &Path,
    out: &Path,
    mut f: impl FnMut(&str, &[usize], Vec<f32>) -> Result<Option<Vec<f32>>>,
    progress: bool,
) -> Result<RewriteReport> {
    check_out(out)?;
    let src = Source::open(base)?;
    write_checkpoint(&src, out, &mut f, progress)
}

/// Weighted average of checkpoints of one architecture (the model soup of
/// LCO-Emb's Table 2), written to `out` like [`rewrite_checkpoint`] in the
/// first input's layout (its shards, key names, dtypes and other files).
///
/// Every tensor (by canonical key, so the `model.language_model.*` and
/// `model.*` layouts mix), shape and dtype must match across inputs, else one
/// error names the tensor and the two folders. `weights` default to equal,
/// must be positive and finite, one per input, and are normalised to sum 1.
/// The average is taken in f64 and rounded once to the tensor's dtype; a
/// tensor whose bytes are identical in every input (e.g. a frozen vision
/// tower) is copied unchanged.
pub fn soup_checkpoints(
    inputs: &[PathBuf],
    weights: Option<&[f64]>,
    out: &Path,
) -> Result<RewriteReport> {
    soup_checkpoints_with(inputs, weights, out, false)
}

/// [`soup_checkpoints`] with a progress bar on stderr when `progress`.
pub fn soup_checkpoints_with(
    inputs: &[PathBuf],
    weights: Option<&[f64]>,
    out: &Path,
    progress: bool,
) -> Result<RewriteReport> {
    let weights = soup_weights(inputs.len(), weights)?;
    check_out(out)?;
    let sources = inputs
        .iter()
        .map(|d| Source::open(d))
        .collect::<Result<Vec<_>>>()?;
    let first = &sources[0];
    for other in &sources[1..] {
        check_same_architecture(first, other)?;
    }
    let others: Vec<(&Source, f64)> = sources[1..]
        .iter()
        .zip(weights[1..].iter().copied())
        .collect();
    let w0 = weights[0];
    let mut f =
        |stored: &str, _shape: &[usize], mut values: Vec<f32>| -> Result<Option<Vec<f32>>> {
            let key = canonical_key(stored);
            let mine = &first.tensors[&key];
            let mine_bytes = first.bytes(mine);
            let views: Vec<(Dtype, &[u8], f64)> = others
                .iter()
                .map(|(s, w)| {
                    let t = &s.tensors[&key];
                    (t.dtype, s.bytes(t), *w)
                })
                .collect();
            if views.iter().all(|(_, b, _)| *b == mine_bytes) {
                for (s, _) in &others {
                    s.evict(&s.tensors[&key]);
                }
                return Ok(None);
            }
            values.par_iter_mut().enumerate().for_each(|(i, v)| {
                let mut acc = w0 * *v as f64;
                for (dt, b, w) in &views {
                    acc += w * element(*dt, b, i) as f64;
                }
                *v = acc as f32;
            });
            for (s, _) in &others {
                s.evict(&s.tensors[&key]);
            }
            Ok(Some(values))
        };
    write_checkpoint(first, out, &mut f, progress)
}

/// Validates soup weights (one per input, positive, finite) and normalises
/// them to sum 1; `None` = equal weights.
pub fn soup_weights(n: usize, weights: Option<&[f64]>) -> Result<Vec<f64>> {
    if n == 0 {
        return Err(GeomError::invalid("a soup needs at least one checkpoint"));
    }
    let Some(w) = weights else {
        return Ok(vec![1.0 / n as f64; n]);
    };
    if w.len() != n {
        return Err(GeomError::invalid(format!(
            "{} weights for {n} checkpoints (expected one weight per checkpoint)",
            w.len()
        )));
    }
    if let Some((i, x)) = w
        .iter()
        .enumerate()
        .find(|(_, x)| !(x.is_finite() && **x > 0.0))
    {
        return Err(GeomError::invalid(format!(
            "weight {} is {x} (expected a positive number)",
            i + 1
        )));
    }
    let sum: f64 = w.iter().sum();
    Ok(w.iter().map(|x| x / sum).collect())
}

/// One tensor of a [`Source`].
struct Tensor {
    shard: usize,
    stored: String,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range of its data within the shard's mapping.
    range: Range<usize>,
}

/// One safetensors file of a [`Source`].
struct Shard {
    name: String,
    mmap: Mmap,
    metadata: Option<HashMap<String, String>>,
}

/// A checkpoint folder's safetensors, memory-mapped, with every tensor's
/// location.
struct Source {
    dir: PathBuf,
    /// The index file's name when the checkpoint is sharded.
    index: Option<String>,
    shards: Vec<Shard>,
    /// canonical key → tensor
    tensors: BTreeMap<String, Tensor>,
}

impl Source {
    fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(GeomError::invalid(format!(
                "{}: not a checkpoint folder (no such folder)",
                dir.display()
            )));
        }
        let (index, names) = shard_names(dir)?;
        let mut shards = Vec::with_capacity(names.len());
        let mut tensors: BTreeMap<String, Tensor> = BTreeMap::new();
        for (si, name) in names.into_iter().enumerate() {
            let path = dir.join(&name);
            let mmap = crate::checkpoint::load::map_file(&path)?;
            let not_st = |e: safetensors::SafeTensorError| {
                GeomError::invalid(format!("{}: not a safetensors file: {e}", path.display()))
            };
            let (_, meta) = SafeTensors::read_metadata(&mmap).map_err(not_st)?;
            let st = SafeTensors::deserialize(&mmap).map_err(not_st)?;
            for (stored, view) in st.iter() {
                let start = view.data().as_ptr() as usize - mmap.as_ptr() as usize;
                let t = Tensor {
                    shard: si,
                    stored: stored.to_string(),
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    range: start..start + view.data().len(),
                };
                if let Some(prev) = tensors.insert(canonical_key(stored), t) {
                    return Err(GeomError::invalid(format!(
                        "{}: tensor '{}' is stored twice ('{}' and '{stored}')",
                        dir.display(),
                        canonical_key(stored),
                        prev.stored
                    )));
                }
            }
            drop(st);
            shards.push(Shard {
                name,
                metadata: meta.metadata().clone(),
                mmap,
            });
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            index,
            shards,
            tensors,
        })
    }

    fn bytes(&self, t: &Tensor) -> &[u8] {
        &self.shards[t.shard].mmap[t.range.clone()]
    }

    /// Drops a tensor's pages from this process's resident set once read
    /// (they fault back in from the unchanged file if read again).
    fn evict(&self, t: &Tensor) {
        evict(&self.shards[t.shard].mmap, t.range.clone());
    }
}

fn evict(mmap: &Mmap, range: Range<usize>) {
    #[cfg(unix)]
    // SAFETY: a read-only, shared, file-backed mapping: MADV_DONTNEED only
    // evicts its pages from this process; a later access reads the file again.
    unsafe {
        let _ = mmap.unchecked_advise_range(
            memmap2::UncheckedAdvice::DontNeed,
            range.start,
            range.len(),
        );
    }
    #[cfg(not(unix))]
    let _ = (mmap, range);
}

/// The index file (when sharded) and the shard file names of a checkpoint
/// folder, as `Checkpoint::open` finds them.
fn shard_names(dir: &Path) -> Result<(Option<String>, Vec<String>)> {
    let index = dir.join(INDEX);
    if index.exists() {
        let text = std::fs::read_to_string(&index).map_err(|source| GeomError::Io {
            path: index.clone(),
            source,
        })?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| GeomError::invalid(format!("{}: not valid JSON: {e}", index.display())))?;
        let map = v["weight_map"].as_object().ok_or_else(|| {
            GeomError::invalid(format!("{}: no \"weight_map\" object", index.display()))
        })?;
        let mut names: Vec<String> = Vec::new();
        for file in map.values() {
            let name = file.as_str().filter(|n| {
                !n.is_empty() && Path::new(n).file_name().and_then(|f| f.to_str()) == Some(*n)
            });
            let Some(name) = name else {
                return Err(GeomError::invalid(format!(
                    "{}: weight_map value {file} is not a file name in the folder",
                    index.display()
                )));
            };
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok((Some(INDEX.to_string()), names))
    } else if dir.join(SINGLE).exists() {
        Ok((None, vec![SINGLE.to_string()]))
    } else {
        Err(GeomError::invalid(format!(
            "{}: not a checkpoint folder (no {SINGLE} or {INDEX}; geom reads safetensors checkpoints only)",
            dir.display()
        )))
    }
}

/// Every tensor of `b` must be in `a` with the same shape and dtype, and
/// the other way round; non-float tensors must be byte-identical.
fn check_same_architecture(a: &Source, b: &Source) -> Result<()> {
    let (da, db) = (a.dir.display(), b.dir.display());
    let hint = "a soup needs checkpoints of one architecture";
    for (key, ta) in &a.tensors {
        let Some(tb) = b.tensors.get(key) else {
            return Err(GeomError::invalid(format!(
                "tensor '{key}' is in {da} but not in {db} ({hint})"
            )));
        };
        if ta.shape != tb.shape {
            return Err(GeomError::invalid(format!(
                "tensor '{key}' has shape {:?} in {da} but {:?} in {db} ({hint})",
                ta.shape, tb.shape
            )));
        }
        if ta.dtype != tb.dtype {
            return Err(GeomError::invalid(format!(
                "tensor '{key}' has dtype {:?} in {da} but {:?} in {db} ({hint} saved in one dtype)",
                ta.dtype, tb.dtype
            )));
        }
        if !is_float(ta.dtype) && a.bytes(ta) != b.bytes(tb) {
            return Err(GeomError::invalid(format!(
                "tensor '{key}' has dtype {:?}, which is not averaged, and differs between {da} and {db}",
                ta.dtype
            )));
        }
    }
    if let Some(key) = b.tensors.keys().find(|k| !a.tensors.contains_key(*k)) {
        return Err(GeomError::invalid(format!(
            "tensor '{key}' is in {db} but not in {da} ({hint})"
        )));
    }
    Ok(())
}

fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::BF16 | Dtype::F16)
}

/// Element `i` of little-endian F32 / BF16 / F16 data.
fn element(dtype: Dtype, b: &[u8], i: usize) -> f32 {
    match dtype {
        Dtype::F32 => f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]),
        Dtype::BF16 => half::bf16::from_bits(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])).to_f32(),
        Dtype::F16 => half::f16::from_bits(u16::from_le_bytes([b[2 * i], b[2 * i + 1]])).to_f32(),
        other => unreachable!("element() of a {other:?} tensor"),
    }
}

fn decode(dtype: Dtype, b: &[u8]) -> Vec<f32> {
    crate::checkpoint::load::decode_f32(dtype, b)
        .unwrap_or_else(|| unreachable!("decode() of a {dtype:?} tensor"))
}

/// f32 values to little-endian bytes of `dtype` (round-to-nearest-even for
/// the 16-bit types).
fn encode(dtype: Dtype, v: &[f32]) -> Vec<u8> {
    match dtype {
        Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::BF16 => v
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_bits().to_le_bytes())
            .collect(),
        Dtype::F16 => v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_bits().to_le_bytes())
            .collect(),
        other => unreachable!("encode() to {other:?}"),
    }
}

/// A tensor to serialise: borrowed from the input's mapping, or new bytes.
struct OutTensor<'a> {
    dtype: Dtype,
    shape: &'a [usize],
    data: Cow<'a, [u8]>,
}

impl View for &OutTensor<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Refuses an `out` that exists and is not an empty folder.
pub(crate) fn check_out(out: &Path) -> Result<()> {
    match std::fs::symlink_metadata(out) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => {
            let mut entries = std::fs::read_dir(out).map_err(|source| GeomError::Io {
                path: out.to_path_buf(),
                source,
            })?;
            if entries.next().is_none() {
                Ok(())
            } else {
                Err(GeomError::invalid(format!(
                    "{}: already exists and is not empty (choose a new output folder; geom never overwrites a checkpoint)",
                    out.display()
                )))
            }
        }
        Ok(_) => Err(GeomError::invalid(format!(
            "{}: already exists and is not a folder (choose a new output folder)",
            out.display()
        ))),
    }
}

/// Removes the temporary folder unless disarmed (error, panic).
struct TempDir(Option<PathBuf>);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_dir_all(p);
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> GeomError + '_ {
    move |source| GeomError::Io {
        path: path.to_path_buf(),
        source,
    }
}

type Rewrite<'f> = dyn FnMut(&str, &[usize], Vec<f32>) -> Result<Option<Vec<f32>>> + 'f;

/// Writes `src` with `f` applied into a temporary sibling of `out`, then
/// renames it to `out`.
fn write_checkpoint(
    src: &Source,
    out: &Path,
    f: &mut Rewrite<'_>,
    progress: bool,
) -> Result<RewriteReport> {
    check_out(out)?;
    let name = out
        .file_name()
        .ok_or_else(|| GeomError::invalid(format!("{}: not a folder name", out.display())))?;
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let tmp = parent.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir(&tmp).map_err(io(&tmp))?;
    let mut guard = TempDir(Some(tmp.clone()));

    let total: u64 = src.tensors.values().map(|t| t.range.len() as u64).sum();
    let bar = if progress {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "writing [{bar:30}] {bytes}/{total_bytes}, {bytes_per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let mut report = RewriteReport {
        out: out.to_path_buf(),
        shards: src.shards.len(),
        ..Default::default()
    };
    for (si, shard) in src.shards.iter().enumerate() {
        let mut outs: Vec<(&str, OutTensor<'_>)> = Vec::new();
        for t in src.tensors.values().filter(|t| t.shard == si) {
            let bytes = src.bytes(t);
            let data = if is_float(t.dtype) {
                match f(&t.stored, &t.shape, decode(t.dtype, bytes))? {
                    Some(v) => {
                        let n: usize = t.shape.iter().product();
                        if v.len() != n {
                            return Err(GeomError::invalid(format!(
                                "rewrite of tensor '{}' returned {} values for shape {:?} ({n} expected)",
                                t.stored,
                                v.len(),
                                t.shape
                            )));
                        }
                        report.tensors_replaced += 1;
                        Cow::Owned(encode(t.dtype, &v))
                    }
                    None => {
                        report.tensors_kept += 1;
                        Cow::Borrowed(bytes)
                    }
                }
            } else {
                report.tensors_kept += 1;
                Cow::Borrowed(bytes)
            };
            bar.inc(t.range.len() as u64);
            outs.push((
                t.stored.as_str(),
                OutTensor {
                    dtype: t.dtype,
                    shape: &t.shape,
                    data,
                },
            ));
        }
        let path = tmp.join(&shard.name);
        safetensors::serialize_to_file(
            outs.iter().map(|(k, t)| (*k, t)),
            shard.metadata.clone(),
            &path,
        )
        .map_err(|e| GeomError::invalid(format!("{}: cannot write: {e}", path.display())))?;
        drop(outs);
        evict(&shard.mmap, 0..shard.mmap.len());
        report.bytes_written += sync(&path)?;
    }
    bar.finish_and_clear();

    // The other files: config, tokenizer, chat template, processor configs,
    // the index (whose total_size stays right: same shapes and dtypes).
    let mut entries: Vec<(String, PathBuf)> = std::fs::read_dir(&src.dir)
        .map_err(io(&src.dir))?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
        .collect();
    entries.sort();
    for (fname, path) in entries {
        if src.shards.iter().any(|s| s.name == fname) || !path.is_file() {
            continue;
        }
        if fname.ends_with(".safetensors") {
            report.files_skipped.push(fname);
            continue;
        }
        let dest = tmp.join(&fname);
        if src.index.as_deref() == Some(fname.as_str()) {
            write_index(&path, &dest, total)?;
        } else {
            std::fs::copy(&path, &dest).map_err(io(&dest))?;
        }
        report.bytes_written += sync(&dest)?;
        report.files_copied.push(fname);
    }
    if let Ok(d) = std::fs::File::open(&tmp) {
        let _ = d.sync_all();
    }

    if out.exists() {
        // An empty folder (check_out): replaced by the new one.
        std::fs::remove_dir(out).map_err(io(out))?;
    }
    std::fs::rename(&tmp, out).map_err(io(out))?;
    guard.0 = None;
    if let Ok(d) = std::fs::File::open(&parent) {
        let _ = d.sync_all();
    }
    Ok(report)
}

/// Copies the shard index, setting `metadata.total_size` (the sum of the
/// tensors' bytes) when it was missing or wrong; otherwise byte for byte.
fn write_index(src: &Path, dest: &Path, total_size: u64) -> Result<()> {
    let text = std::fs::read_to_string(src).map_err(io(src))?;
    let mut v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| GeomError::invalid(format!("{}: not valid JSON: {e}", src.display())))?;
    if v["metadata"]["total_size"].as_u64() == Some(total_size) {
        std::fs::copy(src, dest).map_err(io(dest))?;
        return Ok(());
    }
    if !v["metadata"].is_object() {
        v["metadata"] = serde_json::json!({});
    }
    v["metadata"]["total_size"] = total_size.into();
    let mut body = serde_json::to_string_pretty(&v).expect("a JSON value serialises");
    body.push('\n');
    std::fs::write(dest, body).map_err(io(dest))
}

/// Flushes a written file to disk; returns its size.
fn sync(path: &Path) -> Result<u64> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    file.sync_all().map_err(io(path))?;
    Ok(file.metadata().map_err(io(path))?.len())
}

#[cfg(test)]
mod tests;
