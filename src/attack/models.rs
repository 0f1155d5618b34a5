//! `--model auto`: the one request an attack makes before its schedule starts. It asks the
//! OpenAI-style server which models it serves (`GET /v1/models`) and puts the first one's `id`
//! in every request's `model` field. It needs the network, so it cannot be part of the
//! synchronous checks in `setup`; `rpload attack` and a sweep's runner both call [`resolve`]
//! before their first request.

use std::time::Duration;

use super::api::ApiKind;
use super::{AttackConfig, Requests};

/// The `--model` value that asks the server.
pub const AUTO: &str = "auto";

/// Why `--model auto` found no model; the message names the URL, the cause and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--model auto: GET {url}: {cause}; pass --model NAME (a model the server serves)")]
pub struct ModelError {
    /// Redacted, as every URL rpload prints.
    pub url: String,
    pub cause: String,
}

/// The models route beside an API URL: everything up to its last `/v1` plus `/models`
/// (`https://host/openai/v1/chat/completions` -> `https://host/openai/v1/models`), else the
/// origin's `/v1/models`. The query is kept, since some gateways carry the key there.
pub fn models_url(api_url: &str) -> String {
    let Ok(mut url) = reqwest::Url::parse(api_url) else {
        return api_url.to_owned();
    };
    let path = url.path().to_owned();
    let base = match path.rfind("/v1/") {
        Some(i) => &path[..i],
        None if path.ends_with("/v1") => &path[..path.len() - 3],
        None => "",
    };
    url.set_path(&format!("{base}/v1/models"));
    url.to_string()
}

/// The first model's `id` in a `/v1/models` answer (`{"data": [{"id": ...}, ...]}`).
pub fn first_model(body: &[u8]) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the answer is not JSON ({e})"))?;
    let data = v
        .get("data")
        .and_then(|d| d.as_array())
        .ok_or("the answer has no `data` list of models")?;
    let first = data
        .first()
        .ok_or("the server lists no model (`data` is empty)")?;
    match first.get("id").and_then(|id| id.as_str()) {
        Some(id) if !id.trim().is_empty() => Ok(id.to_owned()),
        _ => Err("the first model has no `id` string".into()),
    }
}

/// Replaces `--model auto` with the first model the target lists, asking once with the
/// attack's headers, client and timeout. Anything else is left as it is.
pub async fn resolve(cfg: &mut AttackConfig, client: &reqwest::Client) -> Result<(), ModelError> {
    let Requests::Api { api, .. } = &mut cfg.requests else {
        return Ok(());
    };
    let openai = matches!(api.kind, ApiKind::OpenaiChat | ApiKind::OpenaiCompletions);
    if !openai || api.params.model.as_deref() != Some(AUTO) {
        return Ok(());
    }
    // Replicas serve one model: the first target answers for all.
    let url = models_url(&api.targets[0].url);
    let fail = |cause: String| ModelError {
        url: crate::redact::url(&url),
        cause: crate::redact::text(&cause),
    };
    let body = fetch(
        client,
        &url,
        api.headers.clone(),
        cfg.timeout,
        cfg.limits.max_body,
    )
    .await
    .map_err(fail)?;
    api.params.model = Some(first_model(&body).map_err(fail)?);
    Ok(())
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    headers: reqwest::header::HeaderMap,
    timeout: Duration,
    max_body: usize,
) -> Result<Vec<u8>, String> {
    let cause = |e: reqwest::Error| {
        let e = e.without_url();
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        message
    };
    let mut resp = client
        .get(url)
        .headers(headers)
        .timeout(timeout)
        .send()
        .await
        .map_err(cause)?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("the server answered {status}"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(cause)? {
        if body.len() + chunk.len() > max_body {
            return Err(format!(
                "the answer is longer than --max-body-size ({max_body} bytes)"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_models_route_sits_beside_the_api_route() {
        let cases = [
            ("http://h:1/v1/chat/completions", "http://h:1/v1/models"),
            ("http://h:1/v1/completions", "http://h:1/v1/models"),
            (
                "https://h/openai/v1/chat/completions?key=x",
                "https://h/openai/v1/models?key=x",
            ),
            ("http://h:1/custom/chat", "http://h:1/v1/models"),
            ("http://h:1/proxy/v1", "http://h:1/proxy/v1/models"),
        ];
        for (api, want) in cases {
            assert_eq!(models_url(api), want, "{api}");
        }
    }

    #[test]
    fn the_first_listed_model_is_taken() {
        let body = br#"{"object":"list","data":[{"id":"m-1","object":"model"},{"id":"m-2"}]}"#;
        assert_eq!(first_model(body).unwrap(), "m-1");
        let bad: &[(&[u8], &str)] = &[
            (b"<html>", "not JSON"),
            (br#"{"models": []}"#, "no `data` list"),
            (br#"{"data": []}"#, "lists no model"),
            (br#"{"data": [{"name": "x"}]}"#, "no `id`"),
        ];
        for (body, want) in bad {
            let e = first_model(body).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }
}
