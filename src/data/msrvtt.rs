//! MSR-VTT read from its annotations as distributed (`--pairs msrvtt`
//! without writing a manifest by hand).
//!
//! MSR-VTT (Xu et al., CVPR 2016) has 10,000 clips, `video0` … `video9999`,
//! 20 captions each; the official test split is `video7010` … `video9999`
//! (2,990 clips). Two annotation files are read, told apart by extension:
//!
//! * **the 1k-A test split** (`.csv`), `MSRVTT_JSFUSION_test.csv` as
//!   CLIP4Clip's `msrvtt_data.zip` ships it: header
//!   `key,vid_key,video_id,sentence` (other columns and any order allowed),
//!   rows such as `ret0,msr9770,video9770,a person is connecting something
//!   to system`. One pair per row (1,000 rows, one per video), in file
//!   order, with that row's sentence;
//! * **`MSRVTT_data.json`** (`.json`; CLIP4Clip's, or the original
//!   release's `test_videodatainfo.json`, same shape):
//!   `{"videos": [...], "sentences": [{"video_id": "video7010", "caption":
//!   "...", "sen_id": 0}, ...]}`. One pair per test-split video
//!   (`video7010` … `video9999`, [`TEST_VIDEOS`]) that has a sentence, in
//!   video-number order, with its **first caption**: the one with the
//!   smallest `sen_id` (file order when `sen_id` is absent). Only
//!   `sentences` is read.
//!
//! Pair ids are the `video_id`s:
//!
//! ```json
//! {"id": "video9770", "text": "a person is connecting something to system", "video": "/data/msrvtt/MSRVTT/videos/all/video9770.mp4"}
//! ```
//!
//! A video is looked up in the media folder as `<video_id>.mp4`, `.webm`,
//! `.mkv`, `.avi` (in that order), then as a folder `<video_id>/` of frames
//! (read sorted by name). A video with neither is left out and counted
//! ([`Conversion::warning`]); when none is found the conversion fails,
//! naming the folder and what it holds. A CSV row that does not parse is an
//! error naming the file and line; a UTF-8 byte-order mark and CRLF line
//! ends are accepted.
//!
//! [`cached_manifest`] converts once per annotation file and folder, under
//! the geom cache, keyed by the file's path, size and modification time and
//! the folder's path and modification time.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;

use super::convert::{self, MediaIndex};
use crate::error::{GeomError, Result};

/// MSR-VTT's official test split: `video7010` … `video9999` (Xu et al.
/// 2016: 6,513 train, 497 validation, 2,990 test clips).
pub const TEST_VIDEOS: RangeInclusive<u32> = 7010..=9999;

/// The video file extensions looked for, in order (before a folder of
/// frames).
pub const VIDEO_EXTENSIONS: [&str; 4] = ["mp4", "webm", "mkv", "avi"];

/// The columns read from the 1k-A CSV (`MSRVTT_JSFUSION_test.csv`).
pub const CSV_COLUMNS: [&str; 2] = ["video_id", "sentence"];

/// One video–caption pair of the annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The video id (`video7010`), also the pair id.
    pub video_id: String,
    /// Its caption.
    pub caption: String,
    /// Where it is in the annotation file: `line 12` (CSV) or `sen_id 180`.
    pub origin: String,
}

/// Reads the pairs of an annotation file: the 1k-A CSV (`.csv`) or
/// `MSRVTT_data.json` (`.json`); see the module documentation.
pub fn read_annotations(path: &Path) -> Result<Vec<Item>> {
    let ext = path
        .extension()
        .map(|x| x.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("csv") => read_jsfusion_csv(path),
        Some("json") => read_data_json(path),
        _ => Err(GeomError::invalid(format!(
            "{}: not an MSR-VTT annotation file geom reads: give the 1k-A split MSRVTT_JSFUSION_test.csv \
             (key,vid_key,video_id,sentence) or MSRVTT_data.json",
            path.display()
        ))),
    }
}

/// The 1k-A CSV: one pair per row, in file order.
pub fn read_jsfusion_csv(path: &Path) -> Result<Vec<Item>> {
    let table = convert::read_csv(
        path,
        &CSV_COLUMNS,
        "the MSR-VTT 1k-A split CSV (MSRVTT_JSFUSION_test.csv, header key,vid_key,video_id,sentence)",
    )?;
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut items = Vec::with_capacity(table.rows.len());
    for (line, record) in &table.rows {
        let at = |msg: String| GeomError::invalid(format!("{}:{line}: {msg}", path.display()));
        let (video_id, sentence) = (table.field(record, 0), table.field(record, 1));
        if video_id.is_empty() {
            return Err(at("empty video_id".to_string()));
        }
        if sentence.is_empty() {
            return Err(at(format!("{video_id} has an empty sentence")));
        }
        if let Some(first) = seen.insert(video_id.to_string(), *line) {
            return Err(at(format!(
                "{video_id} again (first on line {first}); pairs are one per video"
            )));
        }
        items.push(Item {
            video_id: video_id.to_string(),
            caption: sentence.to_string(),
            origin: format!("line {line}"),
        });
    }
    Ok(items)
}

/// `MSRVTT_data.json`'s sentences (its other keys are not read).
#[derive(Deserialize)]
struct DataJson {
    sentences: Vec<Sentence>,
}

#[derive(Deserialize)]
struct Sentence {
    video_id: String,
    caption: String,
    #[serde(default)]
    sen_id: Option<u64>,
}

/// `MSRVTT_data.json`: the test-split videos' first captions, in
/// video-number order.
pub fn read_data_json(path: &Path) -> Result<Vec<Item>> {
    let file = std::fs::File::open(path).map_err(|source| GeomError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let data: DataJson = serde_json::from_reader(std::io::BufReader::new(file)).map_err(|e| {
        GeomError::invalid(format!(
            "{}: not MSR-VTT's MSRVTT_data.json ({e}); expected {{\"videos\": [...], \"sentences\": \
             [{{\"video_id\": \"video7010\", \"caption\": \"...\", \"sen_id\": 0}}, ...]}}",
            path.display()
        ))
    })?;
    // Video number → (sen_id, position in the file, sentence).
    let mut first: HashMap<u32, (Option<u64>, usize, Sentence)> = HashMap::new();
    for (i, s) in data.sentences.into_iter().enumerate() {
        let Some(n) = video_number(&s.video_id).filter(|n| TEST_VIDEOS.contains(n)) else {
            continue;
        };
        if s.caption.trim().is_empty() {
            continue;
        }
        let better = |(id, at, _): &(Option<u64>, usize, Sentence)| {
            (s.sen_id.unwrap_or(u64::MAX), i) < (id.unwrap_or(u64::MAX), *at)
        };
        if first.get(&n).is_none_or(better) {
            first.insert(n, (s.sen_id, i, s));
        }
    }
    if first.is_empty() {
        return Err(GeomError::invalid(format!(
            "{}: no sentence of a test-split video (video{} … video{})",
            path.display(),
            TEST_VIDEOS.start(),
            TEST_VIDEOS.end()
        )));
    }
    let mut items: Vec<(u32, Item)> = first
        .into_iter()
        .map(|(n, (sen_id, at, s))| {
            let origin = match sen_id {
                Some(id) => format!("sen_id {id}"),
                None => format!("sentence {at}"),
            };
            (
                n,
                Item {
                    video_id: s.video_id,
                    caption: s.caption.trim().to_string(),
                    origin,
                },
            )
        })
        .collect();
    items.sort_by_key(|(n, _)| *n);
    Ok(items.into_iter().map(|(_, i)| i).collect())
}

/// `N` of `videoN`.
fn video_number(id: &str) -> Option<u32> {
    let digits = id.strip_prefix("video")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The video of `video_id` in `media`: a file, else a folder of frames.
fn find(media: &MediaIndex, video_id: &str) -> Option<PathBuf> {
    media
        .file(video_id, &VIDEO_EXTENSIONS)
        .or_else(|| media.folder(video_id))
}

/// What [`manifest_from_annotations`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversion {
    /// The JSONL manifest (`<out_dir>/pairs.jsonl`).
    pub manifest: PathBuf,
    /// The annotation file read.
    pub annotations: PathBuf,
    /// The media folder (absolute).
    pub media: PathBuf,
    /// Pairs in the annotations.
    pub items: usize,
    /// Pairs written (with a video).
    pub pairs: usize,
    /// Pairs left out: no video file or folder.
    pub missing: usize,
    /// The first of them.
    pub first_missing: Option<Item>,
}

impl Conversion {
    /// A one-line note about videos left out, if any.
    pub fn warning(&self) -> Option<String> {
        let m = self.first_missing.as_ref()?;
        Some(format!(
            "{}: {} of {} videos are not in {} and are left out (the first: {}, {}; looked for {}.mp4 and the like, or a folder of frames)",
            self.annotations.display(),
            self.missing,
            self.items,
            self.media.display(),
            m.video_id,
            m.origin,
            m.video_id,
        ))
    }
}

/// Writes the manifest of the pairs of `annotations` whose video is in
/// `media` into `out_dir/pairs.jsonl`. Fails when the annotations do not
/// parse or hold no pair, the folder cannot be listed, or no video is
/// there.
pub fn manifest_from_annotations(
    annotations: &Path,
    media: &Path,
    out_dir: &Path,
) -> Result<Conversion> {
    let items = read_annotations(annotations)?;
    if items.is_empty() {
        return Err(GeomError::invalid(format!(
            "{}: no rows (expected video_id,sentence pairs)",
            annotations.display()
        )));
    }
    let index = MediaIndex::read(media)?;
    let mut lines = Vec::new();
    let mut missing = Vec::new();
    for item in &items {
        match find(&index, &item.video_id) {
            Some(video) => {
                lines.push(json!({"id": item.video_id, "text": item.caption, "video": video}))
            }
            None => missing.push(item),
        }
    }
    if lines.is_empty() {
        let first = &items[0];
        let (n, example) = index.sample();
        let holds = match example {
            Some(x) => format!("it holds {n} files, such as '{x}'"),
            None => "it holds no files".to_string(),
        };
        return Err(GeomError::invalid(format!(
            "{}: none of the {} videos is in {} ({holds}); the first, {} ({}), was looked for as {}.{{{}}} and as a folder of frames {}/; \
             put the MSR-VTT videos (videoN.mp4) in one folder, e.g. MSRVTT/videos/all/ from Frozen in Time's MSRVTT.zip or TestVideo/ from the original release",
            annotations.display(),
            items.len(),
            index.dir().display(),
            first.video_id,
            first.origin,
            first.video_id,
            VIDEO_EXTENSIONS.join(","),
            first.video_id,
        )));
    }
    let manifest = convert::write_manifest(out_dir, &lines)?;
    Ok(Conversion {
        manifest,
        annotations: annotations.to_path_buf(),
        media: index.dir().to_path_buf(),
        items: items.len(),
        pairs: lines.len(),
        missing: missing.len(),
        first_missing: missing.first().copied().cloned(),
    })
}

/// The manifest of `annotations` and `media` under `cache/<name>-<key>/`,
/// converted by [`manifest_from_annotations`] unless it is there already
/// (keyed by the annotation file's path, size and modification time and
/// the folder's path and modification time). Says on stderr when it
/// converts, and how many videos were left out.
pub fn cached_manifest(
    name: &str,
    annotations: &Path,
    media: &Path,
    cache: &Path,
) -> Result<PathBuf> {
    let (manifest, conv) = convert::cached(name, "msrvtt", &[annotations, media], cache, |dir| {
        eprintln!(
            "{name}: converting {} (videos in {}) into {} (once)",
            annotations.display(),
            media.display(),
            dir.join(convert::MANIFEST).display()
        );
        manifest_from_annotations(annotations, media, dir)
    })?;
    if let Some(w) = conv.as_ref().and_then(Conversion::warning) {
        eprintln!("{name}: warning: {w}");
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn jsfusion_rows_are_pairs_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        // As CLIP4Clip ships it, and with pandas' index column in front.
        for body in [
            "key,vid_key,video_id,sentence\nret0,msr9770,video9770,a person is connecting something\nret1,msr7010,video7010,\"a man, talking\"\n",
            "\u{feff},key,vid_key,video_id,sentence\r\n0,ret0,msr9770,video9770,a person is connecting something\r\n1,ret1,msr7010,video7010,\"a man, talking\"\r\n",
        ] {
            let p = write(dir.path(), "MSRVTT_JSFUSION_test.csv", body);
            let items = read_annotations(&p).unwrap();
            let got: Vec<(&str, &str, &str)> = items
                .iter()
                .map(|i| (i.video_id.as_str(), i.caption.as_str(), i.origin.as_str()))
                .collect();
            assert_eq!(
                got,
                [
                    ("video9770", "a person is connecting something", "line 2"),
                    ("video7010", "a man, talking", "line 3")
                ]
            );
        }
    }

    #[test]
    fn jsfusion_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        for (body, needle) in [
            (
                "key,video_id,sentence\nret0,video1,a\nret1,,b\n",
                ":3: empty video_id",
            ),
            (
                "key,video_id,sentence\nret0,video1,  \n",
                ":2: video1 has an empty sentence",
            ),
            (
                "key,video_id,sentence\nret0,video1,a\nret1,video1,b\n",
                ":3: video1 again (first on line 2)",
            ),
            (
                "key,video_id,sentence\nret0,video1\n",
                ":2: 2 fields, but the header has 3",
            ),
            (
                "key,video,sentence\nret0,video1,a\n",
                ":1: no column 'video_id'",
            ),
        ] {
            let p = write(dir.path(), "t.csv", body);
            let e = read_annotations(&p).unwrap_err().to_string();
            assert!(
                e.contains(&format!("t.csv{needle}")),
                "{e} (wanted {needle})"
            );
        }
        let p = write(dir.path(), "t.txt", "");
        let e = read_annotations(&p).unwrap_err().to_string();
        assert!(e.contains("MSRVTT_JSFUSION_test.csv"), "{e}");
    }

    #[test]
    fn data_json_takes_test_videos_first_captions() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "MSRVTT_data.json",
            r#"{"info": {}, "videos": [{"video_id": "video7010", "split": "test"}],
               "sentences": [
                 {"caption": "train video", "video_id": "video12", "sen_id": 1},
                 {"caption": "later", "video_id": "video9999", "sen_id": 9},
                 {"caption": "second", "video_id": "video7010", "sen_id": 5},
                 {"caption": "first", "video_id": "video7010", "sen_id": 4},
                 {"caption": "earliest", "video_id": "video9999", "sen_id": 3},
                 {"caption": "no number", "video_id": "clip7010", "sen_id": 0}
               ]}"#,
        );
        let items = read_annotations(&p).unwrap();
        let got: Vec<(&str, &str, &str)> = items
            .iter()
            .map(|i| (i.video_id.as_str(), i.caption.as_str(), i.origin.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("video7010", "first", "sen_id 4"),
                ("video9999", "earliest", "sen_id 3")
            ]
        );
        let bad = write(dir.path(), "bad.json", r#"{"videos": []}"#);
        let e = read_annotations(&bad).unwrap_err().to_string();
        assert!(
            e.contains("bad.json: not MSR-VTT's MSRVTT_data.json") && e.contains("sentences"),
            "{e}"
        );
        let train = write(
            dir.path(),
            "train.json",
            r#"{"sentences": [{"caption": "a", "video_id": "video1"}]}"#,
        );
        let e = read_annotations(&train).unwrap_err().to_string();
        assert!(e.contains("no sentence of a test-split video"), "{e}");
    }

    #[test]
    fn videos_files_and_frame_folders_found_missing_counted() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "MSRVTT_JSFUSION_test.csv",
            "key,vid_key,video_id,sentence\nret0,msr7010,video7010,a\nret1,msr7011,video7011,b\nret2,msr7012,video7012,c\nret3,msr7013,video7013,d\n",
        );
        let media = dir.path().join("videos/all");
        std::fs::create_dir_all(media.join("video7012")).unwrap();
        std::fs::write(media.join("video7012/00001.png"), b"x").unwrap();
        std::fs::write(media.join("video7010.mp4"), b"x").unwrap();
        std::fs::write(media.join("video7013.webm"), b"x").unwrap();
        let c = manifest_from_annotations(&p, &media, &dir.path().join("out")).unwrap();
        assert_eq!((c.items, c.pairs, c.missing), (4, 3, 1));
        let w = c.warning().unwrap();
        assert!(
            w.contains("1 of 4 videos") && w.contains("video7011, line 3"),
            "{w}"
        );
        let m = crate::data::Manifest::load(&c.manifest).unwrap();
        assert_eq!(m.modalities(), ["text", "video"]);
        let ids: Vec<&str> = m.pairs.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["video7010", "video7012", "video7013"]);
        assert!(m.pairs[1].video.as_ref().unwrap().is_dir());
        assert!(m.pairs[0]
            .video
            .as_ref()
            .unwrap()
            .ends_with("video7010.mp4"));
        // None there: an error naming the folder and what it holds.
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::write(empty.join("README"), b"x").unwrap();
        let e = manifest_from_annotations(&p, &empty, &dir.path().join("out2"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("none of the 4 videos")
                && e.contains("such as 'README'")
                && e.contains("video7010.{mp4,webm,mkv,avi}"),
            "{e}"
        );
    }

    #[test]
    fn video_numbers() {
        assert_eq!(video_number("video7010"), Some(7010));
        assert_eq!(video_number("video"), None);
        assert_eq!(video_number("video7a"), None);
        assert_eq!(video_number("clip1"), None);
    }
}
