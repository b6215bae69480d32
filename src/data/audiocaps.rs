//! AudioCaps read from its own CSVs (`--pairs audiocaps` without writing a
//! manifest by hand).
//!
//! AudioCaps (Kim et al., NAACL 2019; cdjkim/audiocaps `dataset/`) ships
//! `train.csv`, `val.csv` and `test.csv` with the header
//! `audiocap_id,youtube_id,start_time,caption`: one row per caption, each
//! caption of a 10-second YouTube clip that starts at `start_time` seconds.
//! `train` has one caption per clip (49,838 clips), `val` and `test` five
//! (495 and 975 clips; 2,475 and 4,875 rows); AudioCaps 2.0 keeps the same
//! header. Users download the clips themselves, which YouTube no longer
//! serves in full (typically 90–95 % of them).
//!
//! [`manifest_from_csv`] makes **one pair per clip** (a clip is a
//! `(youtube_id, start_time)`), in the order its first row appears in the
//! CSV. Its text is the caption with the **smallest `audiocap_id`** among
//! the clip's rows (deterministic, whatever the row order); its id is
//! `<youtube_id>_<start_time>`:
//!
//! ```json
//! {"id": "7fmOlUlwoNg_20", "text": "constant rattling noise and sharp vibrations", "audio": "/data/audiocaps/test/7fmOlUlwoNg_20.wav"}
//! ```
//!
//! The clip's file is looked up in the media folder under the names the
//! common downloaders give it ([`file_names`]), in this order, each with
//! the extensions `.wav`, `.flac`, `.mp3`, `.ogg` (in that order; what the
//! audio decoder reads):
//!
//! 1. `<youtube_id>_<start>`: aac-datasets (Labbeti/aac-datasets,
//!    `AUDIOCAPS/audio_32000Hz/<split>/<youtube_id>_<start_time>.flac`);
//! 2. `Y<youtube_id>_<start>.000_<end>.000`: AudioSet segment dumps (the
//!    DCASE / DESED naming);
//! 3. `Y<youtube_id>_<start>_<end>`: the same in whole seconds;
//! 4. `<youtube_id>_<start_ms>_<end_ms>`: xieh97/audiocaps-dl
//!    (milliseconds);
//! 5. `<youtube_id>_<start>.0-<end>.0`: MorenoLaQuatra/audioset-download;
//! 6. `<audiocap_id>` of each of the clip's rows, smallest first:
//!    MorenoLaQuatra/audiocaps-download (`pip install audiocaps-download`,
//!    `<root>/<split>/<audiocap_id>.ogg` or `.wav`, one file per caption);
//! 7. `<youtube_id>`, then `Y<youtube_id>`: per-video scripts (such as
//!    Shunsuke1119/audiocaps_dl), only when that YouTube id has a single
//!    start time in the CSV.
//!
//! `<start>` is `start_time` as a number (`20`, or `12.5`), `<end>` is
//! `start + 10`. A clip with no file under any of these names is left out
//! and counted ([`Conversion::warning`]); when no clip has a file the
//! conversion fails, naming the folder, the names tried and what the folder
//! holds. A row that does not parse (a missing field, an `audiocap_id` that
//! is not a whole number, a `start_time` that is not a number, an empty
//! caption) is an error naming the file and line. A UTF-8 byte-order mark
//! and CRLF line ends are accepted.
//!
//! [`cached_manifest`] converts once per CSV and folder, under the geom
//! cache, keyed by the CSV's path, size and modification time and the
//! folder's path and modification time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::convert::{self, MediaIndex};
use crate::error::{GeomError, Result};

/// The columns of AudioCaps' CSVs (cdjkim/audiocaps `dataset/*.csv`).
pub const COLUMNS: [&str; 4] = ["audiocap_id", "youtube_id", "start_time", "caption"];

/// The audio file extensions looked for, in order (what the audio decoder
/// reads: WAV, FLAC, MP3, Ogg Vorbis).
pub const AUDIO_EXTENSIONS: [&str; 4] = ["wav", "flac", "mp3", "ogg"];

/// An AudioCaps clip's length in seconds (cdjkim/audiocaps: clips are 10 s
/// from `start_time`), for the names that carry an end time.
pub const CLIP_SECONDS: f64 = 10.0;

/// How to get the clips (in errors).
const HOW_TO_FETCH: &str =
    "download the clips of the CSV's rows into one folder with an AudioCaps \
downloader (aac-datasets, audiocaps-download, ...), as .wav, .flac, .mp3 or .ogg, named \
<youtube_id>_<start_time> (aac-datasets), <audiocap_id> (audiocaps-download), \
Y<youtube_id>_<start>.000_<end>.000, <youtube_id>_<start_ms>_<end_ms> or <youtube_id>";

/// One AudioCaps clip: the rows of a `(youtube_id, start_time)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// The YouTube id.
    pub youtube_id: String,
    /// `start_time` as a number: `20` (for `20` or `20.0`), `12.5`.
    pub start: String,
    /// `start_time` in seconds.
    pub start_seconds: f64,
    /// The `audiocap_id` of every row of the clip, smallest first.
    pub audiocap_ids: Vec<u64>,
    /// The caption of the row with the smallest `audiocap_id`.
    pub caption: String,
    /// The CSV line of the clip's first row.
    pub line: usize,
    /// Whether no other clip of the CSV has the same YouTube id (the names
    /// without a start time are tried only then).
    pub sole_clip_of_video: bool,
}

impl Clip {
    /// The pair id: `<youtube_id>_<start>`.
    pub fn id(&self) -> String {
        format!("{}_{}", self.youtube_id, self.start)
    }
}

/// Reads the clips of an AudioCaps CSV, in the order of their first rows.
/// Errors name the file and line of a row that does not parse.
pub fn read_clips(csv: &Path) -> Result<Vec<Clip>> {
    let table = convert::read_csv(
        csv,
        &COLUMNS,
        "an AudioCaps CSV (train.csv, val.csv or test.csv) with the header audiocap_id,youtube_id,start_time,caption",
    )?;
    let mut clips: Vec<Clip> = Vec::new();
    let mut by_key: HashMap<(String, String), usize> = HashMap::new();
    // Rows' audiocap_ids, to refuse a repeated one.
    let mut ids: HashMap<u64, usize> = HashMap::new();
    for (line, record) in &table.rows {
        let at = |msg: String| GeomError::invalid(format!("{}:{line}: {msg}", csv.display()));
        let [id, youtube_id, start, caption] = [0, 1, 2, 3].map(|c| table.field(record, c));
        let audiocap_id: u64 = id.parse().map_err(|_| {
            at(format!(
                "audiocap_id '{id}' is not a whole number (columns: audiocap_id,youtube_id,start_time,caption)"
            ))
        })?;
        if let Some(first) = ids.insert(audiocap_id, *line) {
            return Err(at(format!(
                "audiocap_id {audiocap_id} again (first on line {first})"
            )));
        }
        if youtube_id.is_empty() {
            return Err(at("empty youtube_id".to_string()));
        }
        let start_seconds = start
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| {
                at(format!(
                    "start_time '{start}' is not a number of seconds >= 0"
                ))
            })?;
        if caption.is_empty() {
            return Err(at(format!(
                "audiocap_id {audiocap_id} has an empty caption"
            )));
        }
        let start = seconds(start_seconds, start);
        let key = (youtube_id.to_string(), start.clone());
        match by_key.get(&key) {
            Some(&i) => {
                let clip = &mut clips[i];
                if audiocap_id < clip.audiocap_ids[0] {
                    clip.caption = caption.to_string();
                }
                let pos = clip.audiocap_ids.partition_point(|&x| x < audiocap_id);
                clip.audiocap_ids.insert(pos, audiocap_id);
            }
            None => {
                by_key.insert(key, clips.len());
                clips.push(Clip {
                    youtube_id: youtube_id.to_string(),
                    start,
                    start_seconds,
                    audiocap_ids: vec![audiocap_id],
                    caption: caption.to_string(),
                    line: *line,
                    sole_clip_of_video: true,
                });
            }
        }
    }
    let mut per_video: HashMap<&str, usize> = HashMap::new();
    for c in &clips {
        *per_video.entry(c.youtube_id.as_str()).or_default() += 1;
    }
    let shared: Vec<bool> = clips
        .iter()
        .map(|c| per_video[c.youtube_id.as_str()] > 1)
        .collect();
    for (c, shared) in clips.iter_mut().zip(shared) {
        c.sole_clip_of_video = !shared;
    }
    Ok(clips)
}

/// `s` written as a number: whole seconds without a fraction (`20`), else
/// as `raw` was written (`12.5`).
fn seconds(s: f64, raw: &str) -> String {
    if s.fract() == 0.0 && s < 1e15 {
        format!("{}", s as u64)
    } else {
        raw.to_string()
    }
}

/// The file names (without extension) tried for `clip`, in order; see the
/// module documentation for which downloader writes which.
pub fn file_names(clip: &Clip) -> Vec<String> {
    let (y, s) = (&clip.youtube_id, clip.start_seconds);
    let e = s + CLIP_SECONDS;
    let whole = s.fract() == 0.0;
    let mut names = vec![format!("{y}_{}", clip.start), format!("Y{y}_{s:.3}_{e:.3}")];
    if whole {
        names.push(format!("Y{y}_{}_{}", s as u64, e as u64));
    }
    names.push(format!(
        "{y}_{}_{}",
        (s * 1000.0).round() as u64,
        (e * 1000.0).round() as u64
    ));
    // Python's str() of a float: `20.0`, `12.5`.
    names.push(format!("{y}_{s:?}-{e:?}"));
    names.extend(clip.audiocap_ids.iter().map(u64::to_string));
    if clip.sole_clip_of_video {
        names.push(y.clone());
        names.push(format!("Y{y}"));
    }
    names
}

/// The audio file of `clip` in `media`, if any.
fn find(media: &MediaIndex, clip: &Clip) -> Option<PathBuf> {
    file_names(clip)
        .iter()
        .find_map(|n| media.file(n, &AUDIO_EXTENSIONS))
}

/// What [`manifest_from_csv`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    /// The JSONL manifest (`<out_dir>/pairs.jsonl`).
    pub manifest: PathBuf,
    /// The CSV read.
    pub csv: PathBuf,
    /// The media folder (absolute).
    pub media: PathBuf,
    /// Clips in the CSV.
    pub clips: usize,
    /// Pairs written (clips with an audio file).
    pub pairs: usize,
    /// Clips left out: no audio file under any name tried.
    pub missing: usize,
    /// The first of them.
    pub first_missing: Option<Clip>,
}

impl Conversion {
    /// A one-line note about clips left out, if any.
    pub fn warning(&self) -> Option<String> {
        let m = self.first_missing.as_ref()?;
        Some(format!(
            "{}: {} of {} clips have no audio file in {} and are left out (the first: '{}', line {}; tried {}.wav and the other names)",
            self.csv.display(),
            self.missing,
            self.clips,
            self.media.display(),
            m.id(),
            m.line,
            file_names(m)[0],
        ))
    }
}

/// Writes the manifest of the clips of `csv` that have an audio file in
/// `media` into `out_dir/pairs.jsonl` (one pair per clip, see the module
/// documentation). Fails when the CSV has no rows, a row does not parse,
/// the folder cannot be listed, or no clip has a file.
pub fn manifest_from_csv(csv: &Path, media: &Path, out_dir: &Path) -> Result<Conversion> {
    let clips = read_clips(csv)?;
    if clips.is_empty() {
        return Err(GeomError::invalid(format!(
            "{}: no rows (expected AudioCaps rows audiocap_id,youtube_id,start_time,caption)",
            csv.display()
        )));
    }
    let index = MediaIndex::read(media)?;
    let mut lines = Vec::new();
    let mut missing = Vec::new();
    for clip in &clips {
        match find(&index, clip) {
            Some(audio) => {
                lines.push(json!({"id": clip.id(), "text": clip.caption, "audio": audio}))
            }
            None => missing.push(clip),
        }
    }
    if lines.is_empty() {
        let first = clips[0].clone();
        let tried: Vec<String> = file_names(&first)
            .iter()
            .map(|n| format!("{n}.{{{}}}", AUDIO_EXTENSIONS.join(",")))
            .collect();
        let (n, example) = index.sample();
        let holds = match example {
            Some(x) => format!("it holds {n} files, such as '{x}'"),
            None => "it holds no files".to_string(),
        };
        return Err(GeomError::invalid(format!(
            "{}: none of the {} clips has an audio file in {} ({holds}); the first clip, line {} ('{}'), was looked for as {}; {HOW_TO_FETCH}",
            csv.display(),
            clips.len(),
            index.dir().display(),
            first.line,
            first.id(),
            tried.join(", "),
        )));
    }
    let manifest = convert::write_manifest(out_dir, &lines)?;
    Ok(Conversion {
        manifest,
        csv: csv.to_path_buf(),
        media: index.dir().to_path_buf(),
        clips: clips.len(),
        pairs: lines.len(),
        missing: missing.len(),
        first_missing: missing.first().copied().cloned(),
    })
}

/// The manifest of `csv` and `media` under `cache/<name>-<key>/`,
/// converted by [`manifest_from_csv`] unless it is there already (keyed by
/// the CSV's path, size and modification time and the folder's path and
/// modification time). Says on stderr when it converts, and how many clips
/// were left out.
pub fn cached_manifest(name: &str, csv: &Path, media: &Path, cache: &Path) -> Result<PathBuf> {
    let (manifest, conv) = convert::cached(name, "audiocaps", &[csv, media], cache, |dir| {
        eprintln!(
            "{name}: converting {} (clips in {}) into {} (once)",
            csv.display(),
            media.display(),
            dir.join(convert::MANIFEST).display()
        );
        manifest_from_csv(csv, media, dir)
    })?;
    if let Some(w) = conv.as_ref().and_then(Conversion::warning) {
        eprintln!("{name}: warning: {w}");
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "audiocap_id,youtube_id,start_time,caption\n";

    fn csv(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("test.csv");
        std::fs::write(&p, body).unwrap();
        p
    }

    fn touch(dir: &Path, names: &[&str]) {
        std::fs::create_dir_all(dir).unwrap();
        for n in names {
            std::fs::write(dir.join(n), b"RIFF").unwrap();
        }
    }

    #[test]
    fn one_pair_per_clip_with_the_smallest_audiocap_id_caption() {
        let dir = tempfile::tempdir().unwrap();
        let p = csv(
            dir.path(),
            &format!(
                "{HEADER}103549,7fmOlUlwoNg,20,constant rattling\n\
                 103548,6BJ455B1aAs,0,a rocket flies by\n\
                 103541,7fmOlUlwoNg,20.0,\"rattling, then vibrations\"\n\
                 107285,_ezm-TpKj1w,30,an engine revving\n"
            ),
        );
        let clips = read_clips(&p).unwrap();
        assert_eq!(clips.len(), 3);
        let c = &clips[0];
        assert_eq!(
            (c.id(), c.caption.as_str(), c.line),
            ("7fmOlUlwoNg_20".to_string(), "rattling, then vibrations", 2)
        );
        assert_eq!(c.audiocap_ids, [103541, 103549]);
        assert_eq!(clips[1].id(), "6BJ455B1aAs_0");
        assert_eq!(clips[2].id(), "_ezm-TpKj1w_30");
    }

    #[test]
    fn naming_patterns_in_order() {
        let clip = Clip {
            youtube_id: "abcdefghijk".into(),
            start: "30".into(),
            start_seconds: 30.0,
            audiocap_ids: vec![7, 9],
            caption: "c".into(),
            line: 2,
            sole_clip_of_video: true,
        };
        assert_eq!(
            file_names(&clip),
            [
                "abcdefghijk_30",
                "Yabcdefghijk_30.000_40.000",
                "Yabcdefghijk_30_40",
                "abcdefghijk_30000_40000",
                "abcdefghijk_30.0-40.0",
                "7",
                "9",
                "abcdefghijk",
                "Yabcdefghijk",
            ]
        );
        let half = Clip {
            start: "12.5".into(),
            start_seconds: 12.5,
            sole_clip_of_video: false,
            ..clip
        };
        assert_eq!(
            file_names(&half),
            [
                "abcdefghijk_12.5",
                "Yabcdefghijk_12.500_22.500",
                "abcdefghijk_12500_22500",
                "abcdefghijk_12.5-22.5",
                "7",
                "9",
            ]
        );
    }

    #[test]
    fn every_downloader_naming_is_found_and_missing_clips_counted() {
        let dir = tempfile::tempdir().unwrap();
        let rows = [
            ("1", "aaaaaaaaaaa", "0"),  // aac-datasets
            ("2", "bbbbbbbbbbb", "10"), // AudioSet dump
            ("3", "ccccccccccc", "20"), // audiocaps-dl, ms
            ("4", "ddddddddddd", "30"), // audiocaps-download, second caption's id
            ("5", "eeeeeeeeeee", "40"), // youtube id only
            ("6", "fffffffffff", "50"), // not downloaded
            ("7", "ddddddddddd", "30"),
            ("8", "ggggggggggg", "60"), // audioset-download
        ];
        let body: String = rows
            .iter()
            .map(|(i, y, s)| format!("{i},{y},{s},caption {i}\n"))
            .collect();
        let p = csv(dir.path(), &format!("{HEADER}{body}"));
        let media = dir.path().join("audio");
        touch(
            &media,
            &[
                "aaaaaaaaaaa_0.flac",
                "Ybbbbbbbbbbb_10.000_20.000.wav",
                "ccccccccccc_20000_30000.wav",
                "7.ogg",
                "eeeeeeeeeee.mp3",
                "ggggggggggg_60.0-70.0.ogg",
                // Not audio the decoder reads, and an unfinished download.
                "fffffffffff_50.m4a",
                "fffffffffff_50.wav.part",
            ],
        );
        let out = dir.path().join("out");
        let c = manifest_from_csv(&p, &media, &out).unwrap();
        assert_eq!((c.clips, c.pairs, c.missing), (7, 6, 1));
        assert_eq!(c.first_missing.as_ref().unwrap().id(), "fffffffffff_50");
        let w = c.warning().unwrap();
        assert!(
            w.contains("1 of 7 clips") && w.contains("'fffffffffff_50', line 7"),
            "{w}"
        );
        let m = crate::data::Manifest::load(&c.manifest).unwrap();
        assert_eq!(m.modalities(), ["text", "audio"]);
        let files: Vec<String> = m
            .pairs
            .iter()
            .map(|p| {
                let a = p.audio.as_ref().unwrap();
                assert!(a.is_absolute() && a.is_file(), "{}", a.display());
                a.file_name().unwrap().to_string_lossy().into_owned()
            })
            .collect();
        assert_eq!(
            files,
            [
                "aaaaaaaaaaa_0.flac",
                "Ybbbbbbbbbbb_10.000_20.000.wav",
                "ccccccccccc_20000_30000.wav",
                "7.ogg",
                "eeeeeeeeeee.mp3",
                "ggggggggggg_60.0-70.0.ogg",
            ]
        );
        assert_eq!(m.pairs[3].text.as_deref(), Some("caption 4"));
    }

    #[test]
    fn a_shared_youtube_id_is_not_matched_by_the_bare_id() {
        let dir = tempfile::tempdir().unwrap();
        let p = csv(
            dir.path(),
            &format!("{HEADER}1,aaaaaaaaaaa,0,one\n2,aaaaaaaaaaa,30,two\n3,bbbbbbbbbbb,0,three\n"),
        );
        let media = dir.path().join("audio");
        touch(&media, &["aaaaaaaaaaa.wav", "bbbbbbbbbbb_0.wav"]);
        let c = manifest_from_csv(&p, &media, &dir.path().join("out")).unwrap();
        assert_eq!((c.pairs, c.missing), (1, 2));
    }

    #[test]
    fn no_clip_found_is_an_error_saying_what_is_there() {
        let dir = tempfile::tempdir().unwrap();
        let p = csv(dir.path(), &format!("{HEADER}1,aaaaaaaaaaa,0,one\n"));
        let media = dir.path().join("audio");
        touch(&media, &["aaaaaaaaaaa_0.m4a"]);
        let out = dir.path().join("out");
        let e = manifest_from_csv(&p, &media, &out).unwrap_err().to_string();
        assert!(
            e.contains("none of the 1 clips")
                && e.contains("such as 'aaaaaaaaaaa_0.m4a'")
                && e.contains("line 2")
                && e.contains("aaaaaaaaaaa_0.{wav,flac,mp3,ogg}"),
            "{e}"
        );
        assert!(!out.join("pairs.jsonl").exists());
        let e = manifest_from_csv(&p, &dir.path().join("nope"), &out).unwrap_err();
        assert!(matches!(e, GeomError::Io { .. }), "{e}");
    }

    #[test]
    fn malformed_rows_are_named_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        for (rows, needle) in [
            (
                "1,a,0,x\nx1,b,0,y\n",
                "test.csv:3: audiocap_id 'x1' is not a whole number",
            ),
            (
                "1,a,zero,x\n",
                "test.csv:2: start_time 'zero' is not a number",
            ),
            (
                "1,a,0,x\n2,b,0,  \n",
                "test.csv:3: audiocap_id 2 has an empty caption",
            ),
            (
                "1,a,0,x\n1,b,0,y\n",
                "test.csv:3: audiocap_id 1 again (first on line 2)",
            ),
            ("1,a,0\n", "test.csv:2: 3 fields, but the header has 4"),
            ("1,,0,x\n", "test.csv:2: empty youtube_id"),
        ] {
            let p = csv(dir.path(), &format!("{HEADER}{rows}"));
            let e = read_clips(&p).unwrap_err().to_string();
            assert!(e.contains(needle), "{e} (wanted {needle})");
        }
        let p = csv(dir.path(), "id,youtube_id,start_time,caption\n1,a,0,x\n");
        let e = read_clips(&p).unwrap_err().to_string();
        assert!(
            e.contains("test.csv:1: no column 'audiocap_id'") && e.contains("AudioCaps CSV"),
            "{e}"
        );
        let p = csv(dir.path(), HEADER);
        let e = manifest_from_csv(&p, dir.path(), dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("no rows"), "{e}");
    }

    #[test]
    fn bom_and_crlf_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let p = csv(
            dir.path(),
            "\u{feff}audiocap_id,youtube_id,start_time,caption\r\n5,aaaaaaaaaaa,0,\"one, crlf\"\r\n",
        );
        let clips = read_clips(&p).unwrap();
        assert_eq!(clips.len(), 1);
        assert_eq!(
            (clips[0].id(), clips[0].caption.as_str()),
            ("aaaaaaaaaaa_0".to_string(), "one, crlf")
        );
        // Lines are still counted right with CRLF.
        let p = csv(
            dir.path(),
            "\u{feff}audiocap_id,youtube_id,start_time,caption\r\n5,a,0,x\r\n\r\n6,b,later,y\r\n",
        );
        let e = read_clips(&p).unwrap_err().to_string();
        assert!(e.contains("test.csv:4: start_time 'later'"), "{e}");
    }
}
