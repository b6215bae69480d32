//! `--pairs` presets that read AudioCaps and MSR-VTT as published: a preset
//! file (absolute paths, so GEOM_DATA plays no part) naming the annotation
//! files and the media folder, resolved into a manifest converted once
//! under the cache. The media files are placeholders: the conversion only
//! looks at their names.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use geom::data::preset::resolve_pairs;
use geom::data::Manifest;

/// The cache of every test here: `GEOM_CACHE` set once, before any
/// resolution reads it (emptied at the start of each run).
fn cache() -> &'static Path {
    static CACHE: OnceLock<PathBuf> = OnceLock::new();
    CACHE.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("datasets-cache");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::env::set_var("GEOM_CACHE", &dir);
        dir
    })
}

fn touch(dir: &Path, names: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    for n in names {
        std::fs::write(dir.join(n), b"placeholder").unwrap();
    }
}

/// A preset file `<dir>/<name>.toml` of `format` with the given places to
/// look.
fn preset(
    dir: &Path,
    name: &str,
    format: &str,
    annotations: &[PathBuf],
    media: &[PathBuf],
) -> String {
    let list = |ps: &[PathBuf]| {
        ps.iter()
            .map(|p| format!("\"{}\"", p.display()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let t = dir.join(format!("{name}.toml"));
    std::fs::write(
        &t,
        format!(
            "name = \"{name}\"\ndescription = \"a {format} fixture\"\nmodalities = [\"text\"]\n\
             format = \"{format}\"\nannotations = [{}]\nmedia = [{}]\nlimit = 3\n",
            list(annotations),
            list(media)
        ),
    )
    .unwrap();
    t.to_string_lossy().into_owned()
}

/// The first rows of AudioCaps' test.csv (cdjkim/audiocaps), as Excel on
/// Windows saves them: a byte-order mark, CRLF, quoted captions.
const AUDIOCAPS_TEST: &str = "\u{feff}audiocap_id,youtube_id,start_time,caption\r\n\
103549,7fmOlUlwoNg,20,constant rattling noise and sharp vibrations\r\n\
103548,6BJ455B1aAs,0,a rocket flies by followed by a loud explosion and fire crackling as a truck engine runs idle\r\n\
103542,VjSEIRnLAh8,30,\"food is frying, and a woman talks\"\r\n\
105639,Me4npKmtchA,270,\"water is trickling, and a man talks\"\r\n\
103540,7fmOlUlwoNg,20,a vibrating engine rattles\r\n\
107286,j0KvrVE_Oww,12,\"two adult males speak, a small horn blows, and clattering occurs\"\r\n";

#[test]
fn audiocaps_preset_reads_the_csv_and_the_clips_once() {
    let cache = cache();
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("AUDIOCAPS/test.csv");
    std::fs::create_dir_all(csv.parent().unwrap()).unwrap();
    std::fs::write(&csv, AUDIOCAPS_TEST).unwrap();
    let media = dir.path().join("AUDIOCAPS/audio_32000Hz/test");
    // aac-datasets' names, one clip under audiocaps-download's
    // (<audiocap_id>), VjSEIRnLAh8 and j0KvrVE_Oww not downloaded.
    touch(
        &media,
        &["7fmOlUlwoNg_20.flac", "6BJ455B1aAs_0.flac", "105639.wav"],
    );
    let t = preset(
        dir.path(),
        "ac",
        "audiocaps",
        &[dir.path().join("audiocaps/test.csv"), csv.clone()],
        &[dir.path().join("audiocaps/test"), media.clone()],
    );
    let r = resolve_pairs(&t).unwrap();
    assert_eq!((r.dataset.as_str(), r.limit), ("ac", Some(3)));
    assert!(
        r.manifest.starts_with(cache.join("datasets")),
        "{}",
        r.manifest.display()
    );
    let m = Manifest::load(&r.manifest).unwrap();
    assert_eq!(m.modalities(), ["text", "audio"]);
    let got: Vec<(&str, &str)> = m
        .pairs
        .iter()
        .map(|p| (p.id.as_str(), p.text.as_deref().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            // The smallest audiocap_id's caption (103540, not 103549).
            ("7fmOlUlwoNg_20", "a vibrating engine rattles"),
            ("6BJ455B1aAs_0", "a rocket flies by followed by a loud explosion and fire crackling as a truck engine runs idle"),
            ("Me4npKmtchA_270", "water is trickling, and a man talks"),
        ]
    );
    assert!(m.pairs[2].audio.as_ref().unwrap().ends_with("105639.wav"));
    // Converted once: the same manifest next time.
    assert_eq!(resolve_pairs(&t).unwrap().manifest, r.manifest);
    // A clip downloaded since: converted again, one more pair.
    touch(&media, &["VjSEIRnLAh8_30.wav"]);
    let again = resolve_pairs(&t).unwrap();
    assert_ne!(again.manifest, r.manifest);
    assert_eq!(Manifest::load(&again.manifest).unwrap().pairs.len(), 4);
}

#[test]
fn msrvtt_preset_reads_the_1k_a_csv_or_the_data_json() {
    cache();
    let dir = tempfile::tempdir().unwrap();
    let videos = dir.path().join("MSRVTT/videos/all");
    touch(&videos, &["video7010.mp4", "video9770.mp4", "video12.mp4"]);
    std::fs::create_dir_all(videos.join("video7011")).unwrap();
    let ann = dir.path().join("msrvtt_data");
    std::fs::create_dir_all(&ann).unwrap();
    std::fs::write(
        ann.join("MSRVTT_JSFUSION_test.csv"),
        "key,vid_key,video_id,sentence\nret0,msr9770,video9770,a person is connecting something to system\n\
         ret1,msr7579,video7579,a girl wearing red top and black trousers is streching on a carpet\n\
         ret2,msr7010,video7010,a man is talking\n",
    )
    .unwrap();
    std::fs::write(
        ann.join("MSRVTT_data.json"),
        r#"{"videos": [{"video_id": "video12", "split": "train"}, {"video_id": "video7010", "split": "test"}],
            "sentences": [
              {"caption": "a train clip", "video_id": "video12", "sen_id": 0},
              {"caption": "cars drive by", "video_id": "video7011", "sen_id": 140221},
              {"caption": "a cartoon plays", "video_id": "video7010", "sen_id": 140201},
              {"caption": "a cartoon", "video_id": "video7010", "sen_id": 140200}
            ]}"#,
    )
    .unwrap();
    let csv = ann.join("MSRVTT_JSFUSION_test.csv");
    let json = ann.join("MSRVTT_data.json");
    let media = [dir.path().join("TestVideo"), videos.clone()];
    // The 1k-A CSV first: one pair per row, video7579 not downloaded.
    let t = preset(dir.path(), "vtt", "msrvtt", &[csv, json.clone()], &media);
    let m = Manifest::load(&resolve_pairs(&t).unwrap().manifest).unwrap();
    assert_eq!(m.modalities(), ["text", "video"]);
    let ids: Vec<&str> = m.pairs.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["video9770", "video7010"]);
    assert_eq!(m.pairs[1].text.as_deref(), Some("a man is talking"));
    // Only MSRVTT_data.json: the test split's videos, their first captions;
    // a folder of frames is a video too.
    let t = preset(dir.path(), "vtt-json", "msrvtt", &[json], &media);
    let m = Manifest::load(&resolve_pairs(&t).unwrap().manifest).unwrap();
    let got: Vec<(&str, &str)> = m
        .pairs
        .iter()
        .map(|p| (p.id.as_str(), p.text.as_deref().unwrap()))
        .collect();
    assert_eq!(
        got,
        [("video7010", "a cartoon"), ("video7011", "cars drive by")]
    );
    assert!(m.pairs[1].video.as_ref().unwrap().is_dir());
}

#[test]
fn missing_annotations_name_every_path_tried() {
    cache();
    let dir = tempfile::tempdir().unwrap();
    let tried = [
        dir.path().join("audiocaps/test.csv"),
        dir.path().join("AUDIOCAPS/test.csv"),
    ];
    let media = [dir.path().join("audiocaps/test")];
    let t = preset(dir.path(), "ac", "audiocaps", &tried, &media);
    let e = resolve_pairs(&t).unwrap_err().to_string();
    for p in tried.iter().chain(&media) {
        assert!(
            e.contains(&p.display().to_string()),
            "{e} (wanted {})",
            p.display()
        );
    }
    assert!(
        e.contains("GEOM_DATA")
            && e.contains("preset .toml")
            && e.contains("format = \"audiocaps\""),
        "{e}"
    );
    // No clip at all in the folder: an error, not an empty manifest.
    std::fs::create_dir_all(tried[1].parent().unwrap()).unwrap();
    std::fs::write(&tried[1], AUDIOCAPS_TEST).unwrap();
    touch(&media[0], &["notes.txt"]);
    let e = resolve_pairs(&t).unwrap_err().to_string();
    assert!(
        e.contains("none of the 5 clips") && e.contains("such as 'notes.txt'"),
        "{e}"
    );
    // A row that does not parse: the file and line.
    std::fs::write(
        &tried[1],
        "audiocap_id,youtube_id,start_time,caption\n1,abc,0,x\n2,abc,soon,y\n",
    )
    .unwrap();
    let e = resolve_pairs(&t).unwrap_err().to_string();
    assert!(
        e.contains(&format!("{}:3: start_time 'soon'", tried[1].display())),
        "{e}"
    );
}
