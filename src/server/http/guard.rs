//! Gates a request passes before its handler reads the body: the API key (`rpload serve
//! --api-key`, a bearer token on every route but `/health` and `/metrics`) and the JSON
//! `Content-Type` of the POST routes. Both answer in the routes' error shape
//! ([`ServerError`]). Must not read bodies or know the model.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ServerError;

/// The bearer token clients must send. Its `Debug` hides the value so that no config dump or
/// log line carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// Compares in time independent of where the bytes differ, so the answer's timing does not
    /// tell a guesser how much of a key was right (the length may show; keys are random).
    fn matches(&self, sent: &[u8]) -> bool {
        let want = self.0.as_bytes();
        if want.len() != sent.len() {
            return false;
        }
        let diff = want
            .iter()
            .zip(sent)
            .fold(0u8, |acc, (a, b)| acc | std::hint::black_box(a ^ b));
        diff == 0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl std::str::FromStr for ApiKey {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err("the key is empty: pass a non-empty key or leave --api-key out".into());
        }
        Ok(Self::new(s))
    }
}

/// Paths anyone may read: probes and scrapers seldom carry credentials.
const OPEN_PATHS: &[&str] = &["/health", "/metrics"];

/// Middleware: 401 unless the request carries `Authorization: Bearer <key>`.
pub(super) async fn require_key(
    State(key): State<Arc<ApiKey>>,
    req: Request,
    next: Next,
) -> Response {
    if OPEN_PATHS.contains(&req.uri().path())
        || bearer(req.headers()).is_some_and(|k| key.matches(k))
    {
        return next.run(req).await;
    }
    let mut resp = ServerError::Unauthorized.into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    resp
}

fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

/// Checks that a POST body is declared JSON (`application/json`, or a `+json` type), as
/// axum's `Json` extractor does, before any byte of it is read.
pub(super) fn json_content_type(headers: &HeaderMap) -> Result<(), ServerError> {
    let reject = |message: String| ServerError::Body {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message,
    };
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(reject(
            "missing `Content-Type`: the body must be JSON; send `Content-Type: application/json`"
                .to_string(),
        ));
    };
    let text = value.to_str().unwrap_or("");
    let essence = text
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|sub| sub.ends_with("+json"));
    if json {
        return Ok(());
    }
    Err(reject(format!(
        "`Content-Type` is `{}`, not JSON: send the body as JSON with `Content-Type: application/json`",
        text.escape_debug()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_matches_only_itself_and_never_prints() {
        let key: ApiKey = "s3cret".parse().unwrap();
        assert!(key.matches(b"s3cret"));
        assert!(!key.matches(b"s3cre"));
        assert!(!key.matches(b"s3creT"));
        assert_eq!(format!("{key:?}"), "ApiKey(<redacted>)");
        assert!("".parse::<ApiKey>().is_err());
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some(&b"abc"[..]));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn content_types() {
        let check = |v: Option<&str>| {
            let mut h = HeaderMap::new();
            if let Some(v) = v {
                h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            }
            json_content_type(&h).map_err(|e| e.to_string())
        };
        assert!(check(Some("application/json")).is_ok());
        assert!(check(Some("Application/JSON; charset=utf-8")).is_ok());
        assert!(check(Some("application/vnd.api+json")).is_ok());
        assert_eq!(
            check(Some("text/plain")).unwrap_err(),
            "`Content-Type` is `text/plain`, not JSON: send the body as JSON with `Content-Type: application/json`"
        );
        assert!(
            check(None)
                .unwrap_err()
                .starts_with("missing `Content-Type`")
        );
    }
}
