//! The `ffmpeg` and `ffprobe` programs, run as child processes: probing a
//! video stream, decoding chosen frames to `rgb24`, and the audio track to
//! mono 16 kHz `f32` (see the parent module for what matches the reference).
//!
//! Every child's stderr is read on its own thread, so no pipe can fill and
//! block; a child that geom stops reading from is killed. Everything read
//! from a child is bounded ([`MAX_VIDEO_FRAMES`], [`MAX_AUDIO_SECONDS`],
//! 64 KiB lines).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, OnceLock};
use std::thread::JoinHandle;

use image::RgbImage;

use super::{AUDIO_SAMPLE_RATE, MAX_AUDIO_SECONDS, MAX_VIDEO_EDGE, MAX_VIDEO_FRAMES};
use crate::error::{GeomError, Result};
use crate::input::image::MAX_IMAGE_PIXELS;

/// What a bad video file error says was expected.
const EXPECTED: &str =
    "expected a video file FFmpeg can decode (mp4, webm, avi, mkv, mov) or a folder of frame images";

/// The one-line error for a bad video file.
pub(super) fn bad(path: &Path, why: &str) -> GeomError {
    GeomError::invalid(format!("{}: {why}; {EXPECTED}", path.display()))
}

/// A missing or empty file, before FFmpeg is asked.
pub(super) fn check_file(path: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Err(e) => Err(bad(path, &format!("cannot read it ({e})"))),
        Ok(m) if m.len() == 0 => Err(bad(path, "the file is empty (0 bytes)")),
        Ok(_) => Ok(()),
    }
}

/// The FFmpeg programs: `GEOM_FFMPEG` / `GEOM_FFPROBE`, or from `PATH`.
fn program(var: &str, name: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(name))
}

fn missing_program(program: &Path, e: std::io::Error) -> GeomError {
    if e.kind() == std::io::ErrorKind::NotFound {
        GeomError::invalid(format!(
            "the '{}' program was not found: geom decodes video files with FFmpeg; install it \
             (Debian/Ubuntu: sudo apt-get install ffmpeg, or `make deps`), or point GEOM_FFMPEG and \
             GEOM_FFPROBE at the programs",
            program.display()
        ))
    } else {
        GeomError::invalid(format!("cannot run '{}': {e}", program.display()))
    }
}

/// What `ffmpeg -version` says: the options geom uses differ by version.
#[derive(Clone)]
struct FfmpegInfo {
    program: PathBuf,
    /// `-fps_mode passthrough` (FFmpeg ≥ 5.1) rather than `-vsync passthrough`.
    fps_mode: bool,
    /// Built with libsoxr.
    soxr: bool,
}

fn ffmpeg_info() -> Result<FfmpegInfo> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, FfmpegInfo>>> = OnceLock::new();
    let program = program("GEOM_FFMPEG", "ffmpeg");
    let cache = CACHE.get_or_init(Default::default);
    if let Some(info) = cache.lock().expect("not poisoned").get(&program) {
        return Ok(info.clone());
    }
    let out = Command::new(&program)
        .args(["-hide_banner", "-version"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| missing_program(&program, e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "ffmpeg version 5.1.9-0+deb12u1 …"; git builds ("N-…", "n7.1") count as new.
    let version: Vec<u32> = text
        .split_whitespace()
        .nth(2)
        .unwrap_or("")
        .split(['.', '-'])
        .take(2)
        .map_while(|p| p.parse().ok())
        .collect();
    let old = match version[..] {
        [major, minor] => (major, minor) < (5, 1),
        [major] => major < 5,
        _ => false,
    };
    let info = FfmpegInfo {
        program: program.clone(),
        fps_mode: !old,
        soxr: text.contains("--enable-libsoxr"),
    };
    cache
        .lock()
        .expect("not poisoned")
        .insert(program, info.clone());
    Ok(info)
}

/// A child process, killed if dropped before [`Running::finish`].
struct Running(Child);

impl Running {
    fn spawn(mut cmd: Command, program: &Path) -> Result<Self> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn()
            .map(Running)
            .map_err(|e| missing_program(program, e))
    }

    /// Waits for the exit; a failure is an error quoting the child's last
    /// lines.
    fn finish(mut self, path: &Path, stderr: JoinHandle<String>) -> Result<()> {
        let status = self.0.wait();
        let tail = stderr.join().unwrap_or_default();
        match status {
            Ok(s) if s.success() => Ok(()),
            Ok(s) => Err(bad(path, &format!("FFmpeg failed ({s}): {}", tail.trim()))),
            Err(e) => Err(bad(path, &format!("FFmpeg failed: {e}"))),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Reads a child's stderr on a thread. Each line goes to `consume`; lines
/// it does not take are kept (the last 8, joined) for error messages.
fn drain_stderr(
    child: &mut Child,
    mut consume: impl FnMut(&str) -> bool + Send + 'static,
) -> JoinHandle<String> {
    let stderr = child.stderr.take().expect("stderr is piped");
    std::thread::spawn(move || {
        let mut tail = VecDeque::new();
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        // Lines are cut at 64 KiB.
        while reader
            .by_ref()
            .take(1 << 16)
            .read_until(b'\n', &mut line)
            .is_ok_and(|n| n > 0)
        {
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end();
            if !consume(text) && !text.starts_with("[Parsed_showinfo") {
                tail.push_back(text.to_string());
                if tail.len() > 8 {
                    tail.pop_front();
                }
            }
            line.clear();
        }
        Vec::from(tail).join(" | ")
    })
}

/// One frame as `showinfo` logs it: timestamp and size.
#[derive(Debug, PartialEq)]
struct FrameInfo {
    pts: Option<i64>,
    width: usize,
    height: usize,
}

/// `[Parsed_showinfo_0 @ 0x…] n:   3 pts:    125 pts_time:0.125 … s:80x44 …`
/// (numbers are padded to a width, so `pts:12345678` has no space): `None`
/// for other lines, an error for a frame line that does not parse.
fn parse_showinfo(line: &str) -> Option<std::result::Result<FrameInfo, String>> {
    if !line.starts_with("[Parsed_showinfo") {
        return None;
    }
    let rest = &line[line.find("] n:")? + 2..];
    let mut tokens = rest.split_whitespace();
    let (mut pts, mut size) = (None, None);
    while let Some(t) = tokens.next() {
        if let Some(v) = t.strip_prefix("pts:") {
            let v = if v.is_empty() {
                tokens.next().unwrap_or("")
            } else {
                v
            };
            // NOPTS: a frame without a timestamp.
            pts = Some(v.parse::<i64>().ok());
        } else if let Some(s) = t.strip_prefix("s:") {
            size = s
                .split_once('x')
                .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)));
        }
    }
    Some(match (pts, size) {
        (Some(pts), Some((width, height))) => Ok(FrameInfo { pts, width, height }),
        _ => Err(format!("cannot read FFmpeg's frame line '{line}'")),
    })
}

/// One line of `ffprobe -of compact`: `section|key=value|…`.
struct Fields {
    section: String,
    values: Vec<(String, String)>,
}

impl Fields {
    fn get(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn parse<T: std::str::FromStr>(&self, key: &str) -> Option<T> {
        self.get(key)?.parse().ok()
    }
}

fn parse_compact(line: &str) -> Fields {
    let mut parts = line.trim_end().split('|');
    let section = parts.next().unwrap_or("").to_string();
    let values = parts
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Fields { section, values }
}

/// Runs `ffprobe -select_streams {stream} -show_entries {entries}` and
/// hands each compact line to `each` (at most [`MAX_VIDEO_FRAMES`] + 16).
fn ffprobe(
    path: &Path,
    stream: &str,
    entries: &str,
    mut each: impl FnMut(Fields) -> Result<()>,
) -> Result<()> {
    let program = program("GEOM_FFPROBE", "ffprobe");
    let mut cmd = Command::new(&program);
    cmd.args(["-v", "error", "-select_streams", stream])
        .args(["-show_entries", entries, "-of", "compact"])
        .arg(path);
    let mut child = Running::spawn(cmd, &program)?;
    let stderr = drain_stderr(&mut child.0, |_| false);
    let stdout = child.0.stdout.take().expect("stdout is piped");
    let mut reader = BufReader::new(stdout);
    let mut line = Vec::new();
    let mut n = 0usize;
    while reader
        .by_ref()
        .take(1 << 16)
        .read_until(b'\n', &mut line)
        .map_err(|e| bad(path, &format!("reading ffprobe's output failed: {e}")))?
        > 0
    {
        n += 1;
        if n > MAX_VIDEO_FRAMES + 16 {
            return Err(bad(
                path,
                &format!("it has more than {MAX_VIDEO_FRAMES} frames"),
            ));
        }
        each(parse_compact(&String::from_utf8_lossy(&line)))?;
        line.clear();
    }
    child.finish(path, stderr)
}

/// What `ffprobe` tells about the first video stream.
pub(super) struct Probe {
    /// `avg_frame_rate`, or `r_frame_rate` when there is none.
    pub fps: f64,
    /// torchvision's frame list predicted from the packets: timestamps
    /// sorted, distinct, non-negative, without packets flagged for
    /// discarding.
    pub timestamps: Vec<i64>,
}

fn parse_rate(r: &str) -> Option<f64> {
    let (n, d) = r.split_once('/')?;
    let (n, d): (f64, f64) = (n.parse().ok()?, d.parse().ok()?);
    (n > 0.0 && d > 0.0).then(|| n / d)
}

pub(super) fn probe_video(path: &Path) -> Result<Probe> {
    let mut stream = None;
    let mut timestamps = Vec::new();
    ffprobe(
        path,
        "v:0",
        "stream=codec_name,width,height,avg_frame_rate,r_frame_rate:packet=pts,flags",
        |f| {
            match f.section.as_str() {
                "stream" => stream = Some(f),
                "packet" if !f.get("flags").unwrap_or("").contains('D') => {
                    if let Some(p) = f.parse::<i64>("pts").filter(|&p| p >= 0) {
                        timestamps.push(p);
                    }
                }
                _ => {}
            }
            Ok(())
        },
    )?;
    let Some(stream) = stream else {
        return Err(bad(path, "it has no video stream"));
    };
    check_size(
        path,
        stream.parse("width").unwrap_or(0),
        stream.parse("height").unwrap_or(0),
    )?;
    let fps = stream
        .get("avg_frame_rate")
        .and_then(parse_rate)
        .or_else(|| stream.get("r_frame_rate").and_then(parse_rate))
        .ok_or_else(|| bad(path, "its video stream has no frame rate"))?;
    timestamps.sort_unstable();
    timestamps.dedup();
    Ok(Probe { fps, timestamps })
}

/// Refuses frames of no size or beyond [`MAX_VIDEO_EDGE`] /
/// [`MAX_IMAGE_PIXELS`].
pub(super) fn check_size(path: &Path, w: usize, h: usize) -> Result<()> {
    if w == 0 || h == 0 {
        return Err(bad(
            path,
            &format!("its video stream has no size ({w}x{h})"),
        ));
    }
    if w > MAX_VIDEO_EDGE || h > MAX_VIDEO_EDGE || (w * h) as u64 > MAX_IMAGE_PIXELS {
        return Err(bad(
            path,
            &format!(
                "its frames are {w}x{h}, larger than the {MAX_VIDEO_EDGE}x{MAX_VIDEO_EDGE} and \
                 {MAX_IMAGE_PIXELS} pixels allowed"
            ),
        ));
    }
    Ok(())
}

/// The result of one decoding pass.
pub(super) struct Decoded {
    /// Every decoded timestamp as torchvision keeps them (sorted, distinct,
    /// non-negative).
    pub timestamps: Vec<i64>,
    /// The wanted frames by timestamp, after `keep` (the last decoded frame
    /// of a repeated timestamp).
    pub kept: HashMap<i64, RgbImage>,
}

/// Decodes the first video stream of `path` once to `rgb24`: `first` sees
/// the frame size before anything is kept (to refuse it), `keep` turns each
/// frame whose timestamp is in `wanted` into what is kept.
pub(super) fn decode_frames(
    path: &Path,
    wanted: &HashSet<i64>,
    first: impl FnOnce(usize, usize) -> Result<()>,
    mut keep: impl FnMut(RgbImage) -> Result<RgbImage>,
) -> Result<Decoded> {
    let ff = ffmpeg_info()?;
    let mut cmd = Command::new(&ff.program);
    cmd.args(["-nostdin", "-hide_banner", "-nostats", "-loglevel", "info"])
        .args(["-copyts", "-noautorotate", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-vf", "showinfo"])
        .args(if ff.fps_mode {
            ["-fps_mode", "passthrough"]
        } else {
            ["-vsync", "passthrough"]
        })
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]);
    let mut child = Running::spawn(cmd, &ff.program)?;
    let (tx, rx) = mpsc::channel();
    let stderr = drain_stderr(&mut child.0, move |line| match parse_showinfo(line) {
        Some(info) => tx.send(info).is_ok(),
        None => false,
    });
    let mut stdout = child.0.stdout.take().expect("stdout is piped");
    let (mut seen, mut kept) = (Vec::new(), HashMap::new());
    let mut buf = Vec::new();
    let mut first = Some(first);
    let mut dims = (0, 0);
    while let Ok(info) = rx.recv() {
        let info = info.map_err(|e| bad(path, &e))?;
        // FFmpeg scales every frame to the first one's size.
        if let Some(first) = first.take() {
            check_size(path, info.width, info.height)?;
            first(info.width, info.height)?;
            dims = (info.width, info.height);
            buf.resize(info.width * info.height * 3, 0);
        }
        stdout.read_exact(&mut buf).map_err(|e| {
            bad(
                path,
                &format!("FFmpeg's output ended inside frame {} ({e})", seen.len()),
            )
        })?;
        if seen.len() >= MAX_VIDEO_FRAMES {
            return Err(bad(
                path,
                &format!("it has more than {MAX_VIDEO_FRAMES} frames"),
            ));
        }
        let Some(pts) = info.pts else { continue };
        seen.push(pts);
        if wanted.contains(&pts) {
            let frame = RgbImage::from_raw(dims.0 as u32, dims.1 as u32, buf.clone())
                .expect("buffer size matches the dimensions");
            kept.insert(pts, keep(frame)?);
        }
    }
    let mut rest = [0u8; 1];
    if matches!(stdout.read(&mut rest), Ok(n) if n > 0) {
        return Err(bad(path, "FFmpeg wrote more frames than it logged"));
    }
    child.finish(path, stderr)?;
    seen.retain(|&p| p >= 0);
    seen.sort_unstable();
    seen.dedup();
    Ok(Decoded {
        timestamps: seen,
        kept,
    })
}

/// The first audio stream as mono [`AUDIO_SAMPLE_RATE`] `f32`, as
/// `librosa.load(path, sr=16000)` gives it (parent module docs); `None`
/// without an audio stream.
pub(super) fn decode_audio(path: &Path) -> Result<Option<Vec<f32>>> {
    let mut stream = None;
    ffprobe(path, "a:0", "stream=channels,sample_rate", |f| {
        if f.section == "stream" {
            stream = Some(f);
        }
        Ok(())
    })?;
    let Some(stream) = stream else {
        return Ok(None);
    };
    let channels = stream
        .parse::<usize>("channels")
        .filter(|c| (1..=64).contains(c))
        .ok_or_else(|| {
            bad(
                path,
                "its audio stream has no usable channel count (1 to 64)",
            )
        })?;
    let rate: Option<f64> = stream.parse("sample_rate").filter(|&r: &f64| r > 0.0);
    let gain = 1.0 / channels as f64;
    let mix: Vec<String> = (0..channels).map(|c| format!("{gain}*c{c}")).collect();
    let ff = ffmpeg_info()?;
    let resampler = if ff.soxr { ":resampler=soxr" } else { "" };
    // astats reports the input sample count, which fixes the output length.
    let filter = format!(
        "pan=mono|c0={},astats=measure_perchannel=none:measure_overall=Number_of_samples,\
         aresample={AUDIO_SAMPLE_RATE}{resampler}",
        mix.join("+")
    );
    let mut cmd = Command::new(&ff.program);
    cmd.args([
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "info",
        "-i",
    ])
    .arg(path)
    .args(["-map", "0:a:0", "-af", &filter, "-f", "f32le", "pipe:1"]);
    let mut child = Running::spawn(cmd, &ff.program)?;
    let (tx, rx) = mpsc::channel();
    let stderr = drain_stderr(&mut child.0, move |line| {
        let n = line
            .starts_with("[Parsed_astats")
            .then(|| line.split_once("Number of samples:"))
            .flatten()
            .and_then(|(_, n)| n.trim().parse::<u64>().ok());
        n.is_some_and(|n| tx.send(n).is_ok())
    });
    let limit = (MAX_AUDIO_SECONDS * AUDIO_SAMPLE_RATE * 4) as u64;
    let mut bytes = Vec::new();
    let stdout = child.0.stdout.take().expect("stdout is piped");
    stdout
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(path, &format!("reading FFmpeg's output failed: {e}")))?;
    if bytes.len() as u64 > limit {
        return Err(bad(
            path,
            &format!("its audio track is longer than {MAX_AUDIO_SECONDS} s"),
        ));
    }
    child.finish(path, stderr)?;
    let mut audio: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    // python-soxr returns ceil(n · 16000 / rate) samples, the last ones zero
    // where libsoxr produced fewer; FFmpeg's soxr stops one short.
    if let (Ok(n), Some(rate)) = (rx.try_recv(), rate) {
        let len = (n as f64 * AUDIO_SAMPLE_RATE as f64 / rate).ceil() as usize;
        audio.resize(len.min(MAX_AUDIO_SECONDS * AUDIO_SAMPLE_RATE), 0.0);
    }
    Ok(Some(audio))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_showinfo_and_compact_lines() {
        let line = "[Parsed_showinfo_0 @ 0x556c2dea4b40] n:   3 pts:    125 pts_time:0.125   \
                    pos:     2547 fmt:yuv420p sar:1/1 s:80x44 i:P iskey:0 type:P checksum:F51B1249";
        assert_eq!(
            parse_showinfo(line),
            Some(Ok(FrameInfo {
                pts: Some(125),
                width: 80,
                height: 44
            }))
        );
        let wide = "[Parsed_showinfo_0 @ 0x1] n:  31 pts:1233333 pts_time:1.23333 s:48x32 i:P";
        assert_eq!(parse_showinfo(wide).unwrap().unwrap().pts, Some(1_233_333));
        let nopts = "[Parsed_showinfo_0 @ 0x1] n:   0 pts: NOPTS pts_time:NOPTS s:8x6 i:P";
        assert_eq!(parse_showinfo(nopts).unwrap().unwrap().pts, None);
        let side = "[Parsed_showinfo_0 @ 0x1] color_range:tv color_space:unknown";
        assert_eq!(parse_showinfo(side), None);
        let broken = "[Parsed_showinfo_0 @ 0x1] n:   0 pts: 5 pts_time:0.2";
        assert!(parse_showinfo(broken).unwrap().is_err());
        let f = parse_compact("packet|pts=-1024|flags=KD");
        assert_eq!(f.section, "packet");
        assert_eq!(f.parse::<i64>("pts"), Some(-1024));
        assert_eq!(f.get("flags"), Some("KD"));
        assert_eq!(parse_rate("30000/1001"), Some(30000.0 / 1001.0));
        assert_eq!(parse_rate("0/0"), None);
    }

    #[test]
    fn missing_program_says_how_to_install() {
        let program = Path::new("/nonexistent/geom-test/ffmpeg");
        let e = Command::new(program)
            .output()
            .map_err(|e| missing_program(program, e))
            .unwrap_err()
            .to_string();
        assert!(e.contains("apt-get install ffmpeg"), "{e}");
        assert!(e.contains("/nonexistent/geom-test/ffmpeg"), "{e}");
    }
}
