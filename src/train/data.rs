//! Training examples for contrastive learning: an anchor, its positive and
//! an optional hard negative, in the layout of sentence-transformers'
//! `all-nli` (`anchor`, `positive`, `negative`; pairs have no `negative`).
//!
//! Formats, by extension:
//!
//! * `.jsonl` — one JSON object per line (blank lines skipped):
//!   `{"anchor": "...", "positive": "...", "negative": "..."}`;
//! * `.csv`, `.tsv` — a header row naming the columns, then one row per
//!   example; fields may be quoted as in RFC 4180 (commas, tabs, quotes and
//!   newlines inside quotes).
//!
//! A `negative` that is absent, `null` or empty means a pair without a hard
//! negative. Other fields and columns are ignored. Every error names the
//! file, the line, and what was expected.

use std::io::BufRead;
use std::path::Path;

use crate::error::{GeomError, Result};

/// What a file must provide, for error messages.
const EXPECTED: &str = "expected fields anchor, positive[, negative]";

/// One training example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The query side (all-nli: the premise).
    pub anchor: String,
    /// The text that should embed close to the anchor.
    pub positive: String,
    /// A hard negative, when the file has one for this example.
    pub negative: Option<String>,
    /// 1-based line of the example in the file (where its row starts, for
    /// CSV rows spanning lines; the header is line 1).
    pub line: usize,
}

/// Reads the examples of a `.jsonl`, `.csv` or `.tsv` file, in file order.
/// Fails on an empty file (no example), a missing or empty anchor or
/// positive, or a line that does not parse, naming the file and the line.
pub fn load_examples(path: &Path) -> Result<Vec<Example>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let examples = match ext.as_deref() {
        Some("jsonl") => load_jsonl(path)?,
        Some("csv") => load_delimited(path, b',')?,
        Some("tsv") => load_delimited(path, b'\t')?,
        _ => {
            return Err(GeomError::invalid(format!(
                "{}: unknown format (expected a .jsonl, .csv or .tsv file)",
                path.display()
            )))
        }
    };
    if examples.is_empty() {
        return Err(GeomError::invalid(format!(
            "{}: no examples ({EXPECTED})",
            path.display()
        )));
    }
    Ok(examples)
}

fn open(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|source| GeomError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn load_jsonl(path: &Path) -> Result<Vec<Example>> {
    let reader = std::io::BufReader::new(open(path)?);
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let at = || format!("{}:{n}", path.display());
        let line = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => {
                GeomError::invalid(format!("{}: not valid UTF-8", at()))
            }
            _ => GeomError::Io {
                path: path.to_path_buf(),
                source: e,
            },
        })?;
        let text = line.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| GeomError::invalid(format!("{}: not JSON: {e}", at())))?;
        let serde_json::Value::Object(obj) = v else {
            return Err(GeomError::invalid(format!(
                "{}: {} is not a JSON object ({EXPECTED})",
                at(),
                kind(&v)
            )));
        };
        let field = |name: &str| -> Result<Option<String>> {
            match obj.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(GeomError::invalid(format!(
                    "{}: \"{name}\" is {} (expected a string)",
                    at(),
                    kind(other)
                ))),
            }
        };
        let anchor = required(field("anchor")?, "anchor", &at)?;
        let positive = required(field("positive")?, "positive", &at)?;
        let negative = field("negative")?.filter(|s| !s.trim().is_empty());
        out.push(Example {
            anchor,
            positive,
            negative,
            line: n,
        });
    }
    Ok(out)
}

/// A required text: present and not blank.
fn required(v: Option<String>, name: &str, at: &dyn Fn() -> String) -> Result<String> {
    match v {
        None => Err(GeomError::invalid(format!(
            "{}: missing \"{name}\" ({EXPECTED})",
            at()
        ))),
        Some(s) if s.trim().is_empty() => Err(GeomError::invalid(format!(
            "{}: empty \"{name}\" (expected a non-empty text)",
            at()
        ))),
        Some(s) => Ok(s),
    }
}

fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn load_delimited(path: &Path, delimiter: u8) -> Result<Vec<Example>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_reader(std::io::BufReader::new(open(path)?));
    let csv_err = |e: csv::Error| csv_error(path, e);
    let header: Vec<String> = reader
        .headers()
        .map_err(csv_err)?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    if header.iter().all(|h| h.is_empty()) {
        return Err(GeomError::invalid(format!(
            "{}: empty file (expected a header row with the columns anchor, positive[, negative])",
            path.display()
        )));
    }
    let column = |name: &str| header.iter().position(|h| h == name);
    let missing = |name: &str| {
        GeomError::invalid(format!(
            "{}: no \"{name}\" column (header: {}; expected columns anchor, positive[, negative])",
            path.display(),
            header.join(", ")
        ))
    };
    let anchor_col = column("anchor").ok_or_else(|| missing("anchor"))?;
    let positive_col = column("positive").ok_or_else(|| missing("positive"))?;
    let negative_col = column("negative");

    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => return Err(csv_err(e)),
        }
        let n = record.position().map_or(0, |p| p.line() as usize);
        let at = || format!("{}:{n}", path.display());
        let cell = |c: usize| record.get(c).map(str::to_string);
        let anchor = required(cell(anchor_col), "anchor", &at)?;
        let positive = required(cell(positive_col), "positive", &at)?;
        let negative = negative_col.and_then(cell).filter(|s| !s.trim().is_empty());
        out.push(Example {
            anchor,
            positive,
            negative,
            line: n,
        });
    }
    Ok(out)
}

/// A csv error as `file:line: what`.
fn csv_error(path: &Path, e: csv::Error) -> GeomError {
    let line = e
        .position()
        .map(|p| format!(":{}", p.line()))
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
            "{}{line}: {len} fields, but the header has {expected_len} (a field with the delimiter inside must be quoted)",
            path.display()
        )),
        other => GeomError::invalid(format!("{}{line}: {other:?}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    fn err(dir: &Path, name: &str, body: &str) -> String {
        load_examples(&write(dir, name, body))
            .unwrap_err()
            .to_string()
    }

    fn ex(anchor: &str, positive: &str, negative: Option<&str>, line: usize) -> Example {
        Example {
            anchor: anchor.into(),
            positive: positive.into(),
            negative: negative.map(Into::into),
            line,
        }
    }

    #[test]
    fn jsonl_triplets_and_pairs() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "nli.jsonl",
            concat!(
                "{\"anchor\": \"a1\", \"positive\": \"p1\", \"negative\": \"n1\", \"id\": 7}\n",
                "\n",
                "   \n",
                "{\"anchor\": \"a2\", \"positive\": \"p2\"}\r\n",
                "{\"anchor\": \"a3\", \"positive\": \"p3\", \"negative\": null}\n",
                "{\"anchor\": \"a4\", \"positive\": \"p4\", \"negative\": \"\"}",
            ),
        );
        assert_eq!(
            load_examples(&p).unwrap(),
            [
                ex("a1", "p1", Some("n1"), 1),
                ex("a2", "p2", None, 4),
                ex("a3", "p3", None, 5),
                ex("a4", "p4", None, 6),
            ]
        );
    }

    #[test]
    fn jsonl_errors() {
        let d = tempfile::tempdir().unwrap();
        let ok = "{\"anchor\": \"a\", \"positive\": \"p\"}\n";
        let e = err(
            d.path(),
            "nli.jsonl",
            &format!("{ok}{ok}{{\"anchor\": \"a\"}}\n"),
        );
        assert!(
            e.ends_with(
                "nli.jsonl:3: missing \"positive\" (expected fields anchor, positive[, negative])"
            ),
            "{e}"
        );
        let e = err(
            d.path(),
            "x.jsonl",
            &format!("{ok}\n{{\"anchor\": \"a\",\n"),
        );
        assert!(e.contains("x.jsonl:3: not JSON: "), "{e}");
        let e = err(d.path(), "x.jsonl", "[1, 2]\n");
        assert!(
            e.contains("x.jsonl:1: an array is not a JSON object"),
            "{e}"
        );
        let e = err(
            d.path(),
            "x.jsonl",
            "{\"anchor\": 3, \"positive\": \"p\"}\n",
        );
        assert!(
            e.contains("x.jsonl:1: \"anchor\" is a number (expected a string)"),
            "{e}"
        );
        let e = err(
            d.path(),
            "x.jsonl",
            "{\"anchor\": \" \", \"positive\": \"p\"}\n",
        );
        assert!(e.contains("x.jsonl:1: empty \"anchor\""), "{e}");
        let e = err(
            d.path(),
            "x.jsonl",
            "{\"anchor\": \"a\", \"positive\": \"\"}\n",
        );
        assert!(e.contains("x.jsonl:1: empty \"positive\""), "{e}");
        let e = err(d.path(), "x.jsonl", "{\"positive\": \"p\"}\n");
        assert!(e.contains("x.jsonl:1: missing \"anchor\""), "{e}");
        let e = err(d.path(), "empty.jsonl", "\n\n");
        assert!(e.contains("empty.jsonl: no examples"), "{e}");
        let e = err(d.path(), "empty.jsonl", "");
        assert!(e.contains("empty.jsonl: no examples"), "{e}");
    }

    #[test]
    fn csv_with_quotes_and_extra_columns() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "train.csv",
            concat!(
                "\u{feff}id,anchor,positive,negative\n",
                "1,\"A man, eating\",\"He said \"\"hi\"\"\",n1\n",
                "2,\"two\nlines\",p2,\n",
                "3,a3,p3,n3\n",
            ),
        );
        assert_eq!(
            load_examples(&p).unwrap(),
            [
                ex("A man, eating", "He said \"hi\"", Some("n1"), 2),
                ex("two\nlines", "p2", None, 3),
                ex("a3", "p3", Some("n3"), 5),
            ]
        );
        // Pairs: no negative column at all.
        let p = write(d.path(), "pairs.csv", "positive,anchor\np,a\n");
        assert_eq!(load_examples(&p).unwrap(), [ex("a", "p", None, 2)]);
    }

    #[test]
    fn tsv() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "nli.TSV",
            "anchor\tpositive\tnegative\na, b\tp\tn\n\"tab\there\"\tp2\t\n",
        );
        assert_eq!(
            load_examples(&p).unwrap(),
            [
                ex("a, b", "p", Some("n"), 2),
                ex("tab\there", "p2", None, 3)
            ]
        );
    }

    #[test]
    fn csv_errors() {
        let d = tempfile::tempdir().unwrap();
        let e = err(d.path(), "train.csv", "a,b,c\n1,2,3\n");
        assert!(
            e.contains("train.csv: no \"anchor\" column (header: a, b, c"),
            "{e}"
        );
        let e = err(d.path(), "train.csv", "anchor,b\n1,2\n");
        assert!(
            e.contains("no \"positive\" column (header: anchor, b"),
            "{e}"
        );
        let e = err(d.path(), "train.csv", "anchor,positive\na,p\n,p\n");
        assert!(e.contains("train.csv:3: empty \"anchor\""), "{e}");
        let e = err(d.path(), "train.csv", "anchor,positive\na,p\nb,p,extra\n");
        assert!(
            e.contains("train.csv:3: 3 fields, but the header has 2"),
            "{e}"
        );
        let e = err(d.path(), "train.tsv", "anchor\tpositive\n");
        assert!(e.contains("train.tsv: no examples"), "{e}");
        let e = err(d.path(), "train.csv", "");
        assert!(e.contains("train.csv: empty file"), "{e}");
        std::fs::write(d.path().join("bad.csv"), b"anchor,positive\na,\xff\xfe\n").unwrap();
        let e = load_examples(&d.path().join("bad.csv"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad.csv:2: not valid UTF-8"), "{e}");
    }

    #[test]
    fn unknown_extension_and_missing_file() {
        let d = tempfile::tempdir().unwrap();
        let e = err(d.path(), "data.txt", "anchor,positive\n");
        assert!(
            e.contains("data.txt: unknown format (expected a .jsonl, .csv or .tsv file)"),
            "{e}"
        );
        let e = load_examples(&d.path().join("none.jsonl")).unwrap_err();
        assert!(matches!(e, GeomError::Io { .. }), "{e}");
    }
}
