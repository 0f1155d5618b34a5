//! One HTTP exchange of the attacker: send, judge the status, check the content type, read the
//! body within the attack's budget into the API's decoder, and turn whatever went wrong into a
//! [`Failure`] of a known kind. Keeps what it learned (status, bytes, final URL) outside the
//! future, so a timeout or an abort still records it. Chunks are read through
//! [`Arrivals`](super::arrival::Arrivals), so token times and the end are stamped where the
//! bytes arrived.

use reqwest::header::HeaderMap;

use super::api::{self, DecodeError, RequestSpec};
use super::arrival::Arrivals;
use super::{Requests, Shared};
use crate::record::ErrorKind;

pub(super) struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: ErrorKind, message: String) -> Self {
        Self { kind, message }
    }
}

/// What is known of a response so far; kept outside the future so a timeout keeps it.
#[derive(Default)]
pub(super) struct Exchange {
    pub code: u16,
    pub bytes_in: u64,
    /// Where a followed redirect ended (redacted), when it is not the request's URL.
    pub final_url: Option<String>,
    /// When the body's end arrived (attack clock), once the whole answer was read.
    pub ended_at: Option<std::time::Duration>,
    /// The largest wake-to-read delay over the body's chunks: how far the receive loop fell
    /// behind the bytes (`arrival.rs`).
    pub recv_lag: std::time::Duration,
}

impl Exchange {
    pub async fn run(
        &mut self,
        shared: &Shared,
        spec: RequestSpec,
        mut decoder: Box<dyn api::Decoder>,
    ) -> Result<api::Decoded, Failure> {
        let mut req = shared
            .client
            .request(spec.method, &*spec.url)
            .headers(spec.headers);
        if !spec.body.is_empty() {
            req = req.body(spec.body);
        }
        let mut resp = req.send().await.map_err(classify)?;
        let status = resp.status();
        self.code = status.as_u16();
        // Only a followed redirect moves the URL (reqwest may also normalise a typed one).
        if shared.cfg.client.redirects > 0 && resp.url().as_str() != &*spec.url {
            self.final_url = Some(crate::redact::url(resp.url().as_str()));
        }
        let headers: HeaderMap = resp.headers().clone();
        let llm = matches!(shared.cfg.requests, Requests::Api { .. });
        if llm && status.is_redirection() {
            let to = headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map_or_else(String::new, |l| format!(" to {}", crate::redact::url(l)));
            return Err(Failure::new(
                ErrorKind::Other,
                format!(
                    "{}{to} not followed; pass --redirects 1 to follow it",
                    status_line(status)
                ),
            ));
        }
        if !(200..400).contains(&self.code) {
            // Read a little of the body: servers put the reason there (TGI's {"error": ...}).
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(classify)? {
                self.bytes_in += chunk.len() as u64;
                if body.len() < 512 {
                    body.extend_from_slice(&chunk[..chunk.len().min(512 - body.len())]);
                }
            }
            return Err(Failure::new(
                ErrorKind::from_status(self.code),
                status_message(status, &body),
            ));
        }
        if decoder.wants_event_stream()
            && let Some(ct) = headers.get(reqwest::header::CONTENT_TYPE)
            && !ct.as_bytes().starts_with(b"text/event-stream")
        {
            let ct = String::from_utf8_lossy(ct.as_bytes())
                .chars()
                .take(60)
                .collect::<String>();
            return Err(Failure::new(
                ErrorKind::Stream,
                format!("the answer is {ct:?}, not text/event-stream: the server did not stream"),
            ));
        }
        let mut hold = decoder.keeps_body().then(|| shared.budget.hold());
        let mut arrivals = Arrivals::new(shared.clock);
        let read = loop {
            let next = arrivals.next(&mut resp).await;
            self.recv_lag = arrivals.worst_lag();
            let (chunk, at) = next.map_err(classify)?;
            let Some(chunk) = chunk else { break at };
            self.bytes_in += chunk.len() as u64;
            if let Some(h) = &mut hold {
                h.reserve(chunk.len())
                    .map_err(|e| Failure::new(ErrorKind::Body, e.to_string()))?;
            }
            decoder.chunk(&chunk, at).map_err(decode_failure)?;
        };
        self.ended_at = Some(read);
        decoder.finish(&headers).map_err(decode_failure)
    }
}

fn decode_failure(e: DecodeError) -> Failure {
    match &e {
        DecodeError::Body(_) => Failure::new(ErrorKind::Body, e.to_string()),
        DecodeError::Stream(_) => Failure::new(ErrorKind::Stream, e.to_string()),
    }
}

/// `307 Temporary Redirect`.
fn status_line(status: reqwest::StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .trim_end()
    .to_owned()
}

/// `503 Service Unavailable: <server's error message>` (Vegeta writes the status line).
fn status_message(status: reqwest::StatusCode, body: &[u8]) -> String {
    let line = status_line(status);
    let reason = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?;
            e.as_str()
                .map(str::to_owned)
                .or_else(|| e.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        });
    match reason {
        Some(r) => format!("{line}: {}", r.chars().take(160).collect::<String>()),
        None => line,
    }
}

/// Maps a transport error to its kind; the message keeps the whole cause chain but not the
/// URL (the record has it, redacted).
fn classify(e: reqwest::Error) -> Failure {
    let e = e.without_url();
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    let kind = if e.is_connect() {
        ErrorKind::Connect
    } else if e.is_timeout() {
        ErrorKind::Timeout
    } else if e.is_body() || e.is_request() || e.is_decode() {
        ErrorKind::Reset
    } else {
        ErrorKind::Other
    };
    Failure::new(kind, message)
}
