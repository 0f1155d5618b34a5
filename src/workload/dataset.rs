//! Datasets from local files: what each request says and, where the data knows it, how long
//! its answer was. Three formats, recognised from the content or named:
//!
//! - `sharegpt`: the ShareGPT JSON array. Of each conversation the first human turn that a gpt
//!   turn answers is one request: the human text is the prompt, the gpt text's token count its
//!   output length (vLLM's reading of the same file).
//! - `jsonl`: one JSON object per line; `--dataset-prompt-field` holds the prompt,
//!   `--dataset-output-field` (optional) an output length in tokens or a text to count.
//! - `csv`: a header row naming the same fields as columns.
//!
//! Files are read as a stream: only the rows kept are held ([`MAX_ROWS`] at most, and
//! [`MAX_TEXT_BYTES`] of prompt text), so a multi-gigabyte dump costs its kept rows, not its
//! size. Errors name the file, the line (and column for JSON) and the field.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Deserialize;
use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde_json::Value;

use crate::tokens::TokenCounter;

/// Rows kept from one file; later rows are read (to check the file) but not kept.
pub const MAX_ROWS: usize = 100_000;
/// Prompt text kept from one file.
pub const MAX_TEXT_BYTES: usize = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Sharegpt,
    Jsonl,
    Csv,
}

impl Format {
    pub const NAMES: &'static str = "sharegpt, jsonl, csv";

    pub fn parse(s: &str) -> Result<Self, DatasetError> {
        match s {
            "sharegpt" => Ok(Self::Sharegpt),
            "jsonl" => Ok(Self::Jsonl),
            "csv" => Ok(Self::Csv),
            other => Err(DatasetError::Format(other.to_owned())),
        }
    }
}

/// How to read a dataset file.
#[derive(Debug, Clone, PartialEq)]
pub struct DatasetSpec {
    pub format: Option<Format>,
    pub prompt_field: String,
    pub output_field: Option<String>,
}

/// One usable row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub prompt: String,
    /// The answer's length in tokens (counted with the attack's counter when the data holds
    /// the answer's text).
    pub output_tokens: Option<u32>,
}

/// What was read: the kept rows and how many rows could not be used.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    pub rows: Vec<Row>,
    pub skipped: u64,
    /// Rows beyond [`MAX_ROWS`] / [`MAX_TEXT_BYTES`] that were read but not kept.
    pub unkept: u64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DatasetError {
    #[error("--dataset-format {0:?} is not known; use one of {names}", names = Format::NAMES)]
    Format(String),
    #[error("reading --dataset {path}: {cause}; pass a readable file")]
    Io { path: String, cause: String },
    #[error("--dataset {path}:{line}:{column}: {message}")]
    Json {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("--dataset {path}:{line}: {message}")]
    Row {
        path: String,
        line: u64,
        message: String,
    },
    #[error("--dataset {path} has no usable rows ({skipped} skipped); {hint}")]
    Empty {
        path: String,
        skipped: u64,
        hint: &'static str,
    },
}

/// Reads `path` as `spec` says, counting answer texts with `counter`.
pub fn load(
    path: &Path,
    spec: &DatasetSpec,
    counter: &TokenCounter,
) -> Result<Dataset, DatasetError> {
    let name = path.display().to_string();
    let io = |e: std::io::Error| DatasetError::Io {
        path: name.clone(),
        cause: crate::errors::io_cause(&e),
    };
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    let format = match spec.format {
        Some(f) => f,
        None => sniff(path, reader.fill_buf().map_err(io)?),
    };
    let mut keep = Keeper::default();
    match format {
        Format::Sharegpt => sharegpt(reader, &name, counter, &mut keep)?,
        Format::Jsonl => jsonl(reader, &name, spec, counter, &mut keep)?,
        Format::Csv => csv_rows(reader, &name, spec, counter, &mut keep)?,
    }
    if keep.data.rows.is_empty() {
        return Err(DatasetError::Empty {
            path: name,
            skipped: keep.data.skipped,
            hint: match format {
                Format::Sharegpt => {
                    "each entry needs `conversations` with a human turn followed by a gpt turn"
                }
                _ => "check --dataset-prompt-field names the prompt's field",
            },
        });
    }
    Ok(keep.data)
}

/// `[` opens a ShareGPT array, `{` a JSON line; anything else (or a `.csv` name) is CSV.
fn sniff(path: &Path, head: &[u8]) -> Format {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        return Format::Csv;
    }
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => Format::Sharegpt,
        Some(b'{') => Format::Jsonl,
        _ => Format::Csv,
    }
}

#[derive(Default)]
struct Keeper {
    data: Dataset,
    bytes: usize,
}

impl Keeper {
    fn push(&mut self, row: Row) {
        if self.data.rows.len() >= MAX_ROWS || self.bytes + row.prompt.len() > MAX_TEXT_BYTES {
            self.data.unkept += 1;
            return;
        }
        self.bytes += row.prompt.len();
        self.data.rows.push(row);
    }
}

fn clamp_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[derive(Deserialize)]
struct Conversation {
    #[serde(default)]
    conversations: Vec<Turn>,
}

#[derive(Deserialize)]
struct Turn {
    #[serde(default)]
    from: String,
    #[serde(default)]
    value: String,
}

fn sharegpt(
    reader: impl Read,
    name: &str,
    counter: &TokenCounter,
    keep: &mut Keeper,
) -> Result<(), DatasetError> {
    struct Entries<'a> {
        counter: &'a TokenCounter,
        keep: &'a mut Keeper,
    }
    impl<'de> Visitor<'de> for Entries<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a JSON array of ShareGPT conversations")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(c) = seq.next_element::<Conversation>()? {
                match first_exchange(&c.conversations) {
                    Some((prompt, answer)) => self.keep.push(Row {
                        prompt: prompt.to_owned(),
                        output_tokens: Some(clamp_u32(self.counter.count(answer)).max(1)),
                    }),
                    None => self.keep.data.skipped += 1,
                }
            }
            // Anything after the array is the JSON parser's to reject.
            let _ = IgnoredAny;
            Ok(())
        }
    }
    let mut de = serde_json::Deserializer::from_reader(reader);
    let result = serde::Deserializer::deserialize_seq(&mut de, Entries { counter, keep })
        .and_then(|()| de.end());
    result.map_err(|e| DatasetError::Json {
        path: name.to_owned(),
        line: e.line(),
        column: e.column(),
        message: e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or("")
            .to_owned(),
    })
}

/// The first human turn answered by the next gpt turn.
fn first_exchange(turns: &[Turn]) -> Option<(&str, &str)> {
    let human = |t: &Turn| matches!(t.from.as_str(), "human" | "user");
    let model = |t: &Turn| matches!(t.from.as_str(), "gpt" | "assistant" | "chatgpt" | "bard");
    turns.windows(2).find_map(|w| {
        (human(&w[0]) && model(&w[1]) && !w[0].value.is_empty())
            .then(|| (w[0].value.as_str(), w[1].value.as_str()))
    })
}

/// A field's value as an output length: a number of tokens, or a text to count.
fn output_of(value: &Value, counter: &TokenCounter) -> Result<u32, String> {
    match value {
        Value::Number(n) => match n.as_u64() {
            Some(n) if n >= 1 => Ok(clamp_u32(n)),
            _ => Err(format!("{n} is not a token count of at least 1")),
        },
        Value::String(s) => match s.trim().parse::<u64>() {
            Ok(n) if n >= 1 => Ok(clamp_u32(n)),
            Ok(_) => Err("0 is not a token count of at least 1".into()),
            Err(_) => Ok(clamp_u32(counter.count(s)).max(1)),
        },
        other => Err(format!("{other} is neither a token count nor a text")),
    }
}

fn jsonl(
    reader: impl BufRead,
    name: &str,
    spec: &DatasetSpec,
    counter: &TokenCounter,
    keep: &mut Keeper,
) -> Result<(), DatasetError> {
    for (i, line) in reader.lines().enumerate() {
        let line_no = i as u64 + 1;
        let bad = |message: String| DatasetError::Row {
            path: name.to_owned(),
            line: line_no,
            message,
        };
        let line = line.map_err(|e| bad(crate::errors::io_cause(&e)))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(&line).map_err(|e| bad(format!("not JSON ({e})")))?;
        let Value::Object(obj) = value else {
            return Err(bad("not a JSON object".into()));
        };
        let prompt = match obj.get(&spec.prompt_field) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::String(_)) | None => {
                keep.data.skipped += 1;
                continue;
            }
            Some(other) => {
                return Err(bad(format!(
                    "field `{}` is {other}, not a string; name the prompt's field with --dataset-prompt-field",
                    spec.prompt_field
                )));
            }
        };
        let output_tokens = match &spec.output_field {
            Some(f) => match obj.get(f) {
                Some(v) => {
                    Some(output_of(v, counter).map_err(|m| bad(format!("field `{f}`: {m}")))?)
                }
                None => None,
            },
            None => None,
        };
        keep.push(Row {
            prompt,
            output_tokens,
        });
    }
    Ok(())
}

fn csv_rows(
    reader: impl Read,
    name: &str,
    spec: &DatasetSpec,
    counter: &TokenCounter,
    keep: &mut Keeper,
) -> Result<(), DatasetError> {
    let mut rd = csv::ReaderBuilder::new().flexible(true).from_reader(reader);
    let header = |e: csv::Error| DatasetError::Row {
        path: name.to_owned(),
        line: 1,
        message: e.to_string(),
    };
    let headers = rd.headers().map_err(header)?.clone();
    let column = |field: &str| -> Result<usize, DatasetError> {
        headers.iter().position(|h| h.trim() == field).ok_or_else(|| DatasetError::Row {
            path: name.to_owned(),
            line: 1,
            message: format!(
                "no column `{field}` in the header (columns: {}); name it with --dataset-{}-field",
                headers.iter().take(8).collect::<Vec<_>>().join(", "),
                if field == spec.prompt_field { "prompt" } else { "output" },
            ),
        })
    };
    let prompt_col = column(&spec.prompt_field)?;
    let output_col = spec.output_field.as_deref().map(column).transpose()?;
    for record in rd.records() {
        let record = record.map_err(|e| DatasetError::Row {
            path: name.to_owned(),
            line: e.position().map_or(0, |p| p.line()),
            message: e.to_string(),
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let prompt = record.get(prompt_col).unwrap_or("");
        if prompt.is_empty() {
            keep.data.skipped += 1;
            continue;
        }
        let output_tokens = match output_col.and_then(|c| record.get(c)) {
            Some(v) if !v.trim().is_empty() => Some(
                output_of(&Value::String(v.to_owned()), counter).map_err(|m| {
                    DatasetError::Row {
                        path: name.to_owned(),
                        line,
                        message: format!(
                            "column `{}`: {m}",
                            spec.output_field.as_deref().unwrap_or("")
                        ),
                    }
                })?,
            ),
            _ => None,
        };
        keep.push(Row {
            prompt: prompt.to_owned(),
            output_tokens,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(output: Option<&str>) -> DatasetSpec {
        DatasetSpec {
            format: None,
            prompt_field: "prompt".into(),
            output_field: output.map(str::to_owned),
        }
    }

    fn write(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        (dir, p)
    }

    #[test]
    fn sharegpt_takes_the_first_answered_human_turn() {
        let (_d, p) = write(
            "s.json",
            r#"[{"id":"a","conversations":[{"from":"system","value":"x"},{"from":"human","value":"hi there"},{"from":"gpt","value":"abcdefgh"}]},
               {"id":"b","conversations":[{"from":"gpt","value":"orphan"}]},
               {"id":"c","conversations":[{"from":"human","value":"q"},{"from":"gpt","value":"abcd"},{"from":"human","value":"later"}]}]"#,
        );
        let d = load(&p, &spec(None), &TokenCounter::default()).unwrap();
        assert_eq!(d.skipped, 1);
        assert_eq!(
            d.rows,
            [
                Row {
                    prompt: "hi there".into(),
                    output_tokens: Some(2)
                },
                Row {
                    prompt: "q".into(),
                    output_tokens: Some(1)
                },
            ]
        );
    }

    #[test]
    fn jsonl_and_csv_read_the_named_fields() {
        let (_d, p) = write(
            "d.jsonl",
            "{\"q\": \"one\", \"n\": 7}\n\n{\"q\": \"two\", \"n\": \"abcdefgh\"}\n{\"other\": 1}\n",
        );
        let s = DatasetSpec {
            prompt_field: "q".into(),
            output_field: Some("n".into()),
            format: None,
        };
        let d = load(&p, &s, &TokenCounter::default()).unwrap();
        assert_eq!(
            d.rows.iter().map(|r| r.output_tokens).collect::<Vec<_>>(),
            [Some(7), Some(2)]
        );
        assert_eq!(d.skipped, 1);
        let (_d, p) = write("d.csv", "prompt,out\n\"a, b\",12\nc,\n");
        let d = load(&p, &spec(Some("out")), &TokenCounter::default()).unwrap();
        assert_eq!(
            d.rows[0],
            Row {
                prompt: "a, b".into(),
                output_tokens: Some(12)
            }
        );
        assert_eq!(d.rows[1].output_tokens, None);
    }

    #[test]
    fn bad_files_name_the_place_and_the_field() {
        let err = |name: &str, text: &str, s: DatasetSpec| {
            let (_d, p) = write(name, text);
            load(&p, &s, &TokenCounter::default())
                .unwrap_err()
                .to_string()
        };
        let e = err(
            "s.json",
            "[{\"conversations\": [{\"from\": \"human\"}]},\n {oops}]",
            spec(None),
        );
        assert!(e.contains("s.json:2:3:"), "{e}");
        let e = err(
            "d.jsonl",
            "{\"prompt\": \"a\"}\n{\"prompt\": 3}\n",
            spec(None),
        );
        assert!(
            e.contains("d.jsonl:2: field `prompt` is 3, not a string"),
            "{e}"
        );
        let e = err(
            "d.jsonl",
            "{\"prompt\": \"a\", \"n\": 0}\n",
            spec(Some("n")),
        );
        assert!(
            e.contains("d.jsonl:1: field `n`: 0 is not a token count"),
            "{e}"
        );
        let e = err("d.csv", "text,n\nabc,1\n", spec(None));
        assert!(
            e.contains("d.csv:1: no column `prompt` in the header (columns: text, n)"),
            "{e}"
        );
        let e = err("e.jsonl", "{\"x\": \"a\"}\n", spec(None));
        assert!(e.contains("has no usable rows (1 skipped)"), "{e}");
        assert!(
            Format::parse("parquet")
                .unwrap_err()
                .to_string()
                .contains("sharegpt, jsonl, csv")
        );
    }
}
