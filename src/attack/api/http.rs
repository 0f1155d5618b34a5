//! Plain HTTP targets: a single URL (GET), or a Vegeta targets file in its `http` format
//! (`METHOD URL`, header lines, optional `@body-file`, blank line) or `json` format (one object
//! per line: `method`, `url`, base64 `body`, `header` of lists). Targets are round-robined.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use super::{DecodeError, Decoded, Decoder, RequestSpec};

/// Targets-file syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetsFormat {
    Http,
    Json,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetsError {
    #[error("reading targets file {path}: {cause}; pass a readable file to --targets")]
    Io { path: String, cause: String },
    #[error("{path}:{line}: {message}")]
    Syntax {
        path: String,
        line: usize,
        message: String,
    },
    #[error(
        "targets file {0} has no targets; write at least one `GET http://127.0.0.1:8080/` line"
    )]
    Empty(String),
}

/// Parses a header line `Key: Value` into the map (`-H` flags and targets files alike).
pub fn add_header(headers: &mut HeaderMap, line: &str) -> Result<(), String> {
    let (k, v) = line
        .split_once(':')
        .ok_or_else(|| format!("header {line:?} has no ':'; write it as 'Name: value'"))?;
    let (k, v) = (k.trim(), v.trim());
    if k.is_empty() || v.is_empty() {
        return Err(format!("header {line:?} needs both a name and a value"));
    }
    let name = HeaderName::from_bytes(k.as_bytes())
        .map_err(|_| format!("header name {k:?} is not a valid HTTP token"))?;
    let value = HeaderValue::from_str(v)
        .map_err(|_| format!("header value {v:?} has invalid characters"))?;
    headers.append(name, value);
    Ok(())
}

fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("invalid URL {url:?} ({e})"))?;
    match parsed.scheme() {
        "http" | "https" => Ok(()),
        s => Err(format!(
            "URL {url:?} has scheme {s:?}; use http:// or https://"
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonTarget {
    method: String,
    url: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    header: std::collections::BTreeMap<String, Vec<String>>,
}

/// Loads and checks every target; `global` headers (from `-H`) come first on each.
pub fn load_targets(
    path: &Path,
    format: TargetsFormat,
    global: &HeaderMap,
) -> Result<Vec<RequestSpec>, TargetsError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| TargetsError::Io {
        path: name.clone(),
        cause: crate::errors::io_cause(&e),
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let syntax = |line: usize, message: String| TargetsError::Syntax {
        path: name.clone(),
        line,
        message,
    };
    let mut targets = Vec::new();
    match format {
        TargetsFormat::Json => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let t: JsonTarget = serde_json::from_str(line)
                    .map_err(|e| syntax(i + 1, format!("not a JSON target ({e})")))?;
                let mut headers = global.clone();
                for (k, vs) in &t.header {
                    for v in vs {
                        add_header(&mut headers, &format!("{k}: {v}"))
                            .map_err(|m| syntax(i + 1, m))?;
                    }
                }
                let body = match t.body {
                    Some(b) => base64::engine::general_purpose::STANDARD
                        .decode(b)
                        .map_err(|e| syntax(i + 1, format!("`body` is not base64 ({e})")))?,
                    None => Vec::new(),
                };
                targets.push(spec(&t.method, &t.url, headers, body).map_err(|m| syntax(i + 1, m))?);
            }
        }
        TargetsFormat::Http => {
            let mut current: Option<(usize, String, String, HeaderMap, Vec<u8>)> = None;
            let flush = |cur: &mut Option<(usize, String, String, HeaderMap, Vec<u8>)>,
                         out: &mut Vec<RequestSpec>|
             -> Result<(), TargetsError> {
                if let Some((line, method, url, headers, body)) = cur.take() {
                    out.push(spec(&method, &url, headers, body).map_err(|m| syntax(line, m))?);
                }
                Ok(())
            };
            for (i, raw) in text.lines().enumerate() {
                let line = raw.trim();
                let n = i + 1;
                if line.starts_with('#') {
                    continue;
                }
                if line.is_empty() {
                    flush(&mut current, &mut targets)?;
                    continue;
                }
                match &mut current {
                    None => {
                        let (method, url) =
                            line.split_once(char::is_whitespace).ok_or_else(|| {
                                syntax(n, format!("expected `METHOD URL`, found {line:?}"))
                            })?;
                        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                            return Err(syntax(
                                n,
                                format!("method {method:?} must be upper-case, e.g. GET"),
                            ));
                        }
                        current = Some((
                            n,
                            method.to_owned(),
                            url.trim().to_owned(),
                            global.clone(),
                            Vec::new(),
                        ));
                    }
                    Some((_, _, _, headers, body)) => {
                        if let Some(file) = line.strip_prefix('@') {
                            let p = resolve(&base, file);
                            *body = std::fs::read(&p).map_err(|e| {
                                syntax(n, format!("reading body file {} ({e})", p.display()))
                            })?;
                            flush(&mut current, &mut targets)?;
                        } else {
                            add_header(headers, line).map_err(|m| syntax(n, m))?;
                        }
                    }
                }
            }
            flush(&mut current, &mut targets)?;
        }
    }
    if targets.is_empty() {
        return Err(TargetsError::Empty(name));
    }
    Ok(targets)
}

fn resolve(base: &Path, file: &str) -> PathBuf {
    let p = PathBuf::from(file);
    if p.is_absolute() { p } else { base.join(p) }
}

fn spec(method: &str, url: &str, headers: HeaderMap, body: Vec<u8>) -> Result<RequestSpec, String> {
    check_url(url)?;
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("invalid method {method:?}"))?;
    Ok(RequestSpec {
        method,
        url: Arc::from(url),
        shown_url: Arc::from(crate::redact::url(url)),
        headers,
        body: Bytes::from(body),
    })
}

/// A single-URL target with a method and optional body (the `--target URL` form).
pub fn single(
    method: &str,
    url: &str,
    headers: HeaderMap,
    body: Vec<u8>,
) -> Result<RequestSpec, String> {
    spec(method, url, headers, body)
}

/// Plain HTTP bodies are read and counted, never parsed.
pub struct Discard;

impl Decoder for Discard {
    fn chunk(&mut self, _data: &[u8], _at: Duration) -> Result<(), DecodeError> {
        Ok(())
    }

    fn keeps_body(&self) -> bool {
        false
    }

    fn finish(self: Box<Self>, _headers: &HeaderMap) -> Result<Decoded, DecodeError> {
        Ok(Decoded::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_format_with_headers_bodies_and_comments() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.json"), b"{\"x\":1}").unwrap();
        let path = dir.path().join("targets.txt");
        std::fs::write(
            &path,
            "# comment\nGET http://127.0.0.1:1/a\nX-Trace: 1\n\nPOST http://127.0.0.1:1/b\nContent-Type: application/json\n@b.json\nGET http://127.0.0.1:1/c\n",
        )
        .unwrap();
        let mut global = HeaderMap::new();
        add_header(&mut global, "Authorization: Bearer t").unwrap();
        let t = load_targets(&path, TargetsFormat::Http, &global).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t[0].headers["x-trace"], "1");
        assert_eq!(t[0].headers["authorization"], "Bearer t");
        assert_eq!(t[1].method, reqwest::Method::POST);
        assert_eq!(&t[1].body[..], b"{\"x\":1}");
        assert_eq!(&*t[2].url, "http://127.0.0.1:1/c");
    }

    #[test]
    fn json_format_and_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(
            &path,
            "{\"method\":\"POST\",\"url\":\"http://127.0.0.1:1/\",\"body\":\"aGk=\",\"header\":{\"A\":[\"1\",\"2\"]}}\n",
        )
        .unwrap();
        let t = load_targets(&path, TargetsFormat::Json, &HeaderMap::new()).unwrap();
        assert_eq!(&t[0].body[..], b"hi");
        assert_eq!(t[0].headers.get_all("a").iter().count(), 2);
        std::fs::write(&path, "\n{\"method\":\"GET\",\"url\":\"ftp://x\"}\n").unwrap();
        let err = load_targets(&path, TargetsFormat::Json, &HeaderMap::new())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t.jsonl:2:") && err.contains("http://"),
            "{err}"
        );
        std::fs::write(&path, "get http://127.0.0.1/\n").unwrap();
        let err = load_targets(&path, TargetsFormat::Http, &HeaderMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains(":1:") && err.contains("upper-case"), "{err}");
    }

    #[test]
    fn header_lines_are_checked() {
        let mut h = HeaderMap::new();
        assert!(
            add_header(&mut h, "NoColon")
                .unwrap_err()
                .contains("no ':'")
        );
        assert!(add_header(&mut h, "K:").is_err());
        add_header(&mut h, "X-Case: Value").unwrap();
        assert_eq!(h["x-case"], "Value");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Any text is a targets file or an error naming a line; never a panic. (`@` is left
        /// out: it names a body file, and random text must not read `/dev/zero`.)
        #[test]
        fn any_text_loads_or_names_its_line(text in "[ -?A-~\n]{0,300}", json in proptest::bool::ANY) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("targets");
            std::fs::write(&path, &text).unwrap();
            let format = if json { TargetsFormat::Json } else { TargetsFormat::Http };
            match load_targets(&path, format, &HeaderMap::new()) {
                Ok(targets) => proptest::prop_assert!(!targets.is_empty()),
                Err(TargetsError::Syntax { line, .. }) => {
                    proptest::prop_assert!(line >= 1 && line <= text.lines().count());
                }
                Err(TargetsError::Empty(_)) => {}
                Err(e) => proptest::prop_assert!(false, "unexpected {e}"),
            }
        }

        /// Targets written in the http format load back with their methods, URLs and headers.
        #[test]
        fn written_targets_load_back(
            targets in proptest::collection::vec(
                ("(GET|POST|PUT)", "/[a-z0-9]{0,12}", proptest::option::of("[a-z]{1,8}")),
                1..6,
            ),
        ) {
            let mut text = String::new();
            for (method, path, header) in &targets {
                text.push_str(&format!("{method} http://127.0.0.1:8080{path}\n"));
                if let Some(h) = header {
                    text.push_str(&format!("X-{h}: v-{h}\n"));
                }
                text.push('\n');
            }
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("targets");
            std::fs::write(&path, &text).unwrap();
            let loaded = load_targets(&path, TargetsFormat::Http, &HeaderMap::new()).unwrap();
            proptest::prop_assert_eq!(loaded.len(), targets.len());
            for (spec, (method, path, header)) in loaded.iter().zip(&targets) {
                proptest::prop_assert_eq!(spec.method.as_str(), method.as_str());
                let url = format!("http://127.0.0.1:8080{path}");
                proptest::prop_assert_eq!(&*spec.url, url.as_str());
                if let Some(h) = header {
                    let name = format!("x-{h}");
                    let want = format!("v-{h}");
                    proptest::prop_assert_eq!(spec.headers[name.as_str()].to_str().unwrap(), want.as_str());
                }
            }
        }
    }
}
