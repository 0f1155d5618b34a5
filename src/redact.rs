//! Secrets kept off disk. Everything rpload writes (records, `scenario.toml`, summaries,
//! reports, error strings) shows a credential as [`MARK`]: header values of `Authorization`,
//! `Proxy-Authorization`, `Cookie`, `Set-Cookie`, `X-Api-Key`, `Api-Key`, any header ending in
//! `-Token` or naming a secret; the user-info of a URL; query parameters named like a key,
//! token, secret, password or signature. Run folders get committed and shared, and a token
//! in a results file outlives the run by years.
//!
//! A value that was redacted cannot be sent again: [`is_redacted`] lets setup say which header
//! to pass again instead of sending the mark.

/// What a secret becomes.
pub const MARK: &str = "<redacted>";

/// Whether a header's value is a credential, by its name.
pub fn is_secret_header(name: &str) -> bool {
    let n = name.trim().to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie" | "x-api-key" | "api-key"
    ) || n.ends_with("-token")
        || n.contains("secret")
        || n.contains("password")
}

/// Whether a query parameter's value is a credential, by its name (`api_key`, `token`,
/// `X-Amz-Signature`, `sig`, `client_secret`, ...).
fn is_secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "key",
        "token",
        "secret",
        "signature",
        "password",
        "credential",
        "auth",
    ]
    .iter()
    .any(|w| n.contains(w))
        || n == "sig"
}

/// A `Name: value` header line with a credential's value replaced.
pub fn header_line(line: &str) -> String {
    match line.split_once(':') {
        Some((name, value)) if is_secret_header(name) && !is_redacted(value) => {
            format!("{}: {MARK}", name.trim())
        }
        _ => line.to_owned(),
    }
}

/// Whether a value (or a URL) holds the mark: it was written by rpload, not typed.
pub fn is_redacted(value: &str) -> bool {
    value.contains(MARK) || value.contains("%3Credacted%3E")
}

/// A URL with its user-info and secret query values replaced; text that is not a URL is
/// returned unchanged.
pub fn url(text: &str) -> String {
    let Ok(mut u) = reqwest::Url::parse(text) else {
        return text.to_owned();
    };
    let mut changed = false;
    if !u.username().is_empty() || u.password().is_some() {
        let _ = u.set_username(MARK);
        let _ = u.set_password(None);
        changed = true;
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_param(&k) {
                    changed = true;
                    MARK.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        if changed {
            u.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    if !changed {
        return text.to_owned();
    }
    // Keep the mark readable in files rather than percent-encoded.
    u.to_string()
        .replace("%3Credacted%3E", MARK)
        .replace("%3credacted%3e", MARK)
}

/// Free text (an error message) with every URL in it redacted.
pub fn text(message: &str) -> String {
    if !message.contains("://") {
        return message.to_owned();
    }
    message
        .split_inclusive(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '"')
        .map(|word| {
            let end = word
                .trim_end_matches(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '"');
            if end.contains("://") {
                format!("{}{}", url(end), &word[end.len()..])
            } else {
                word.to_owned()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_headers_are_recognised_by_name() {
        for name in [
            "Authorization",
            "proxy-authorization",
            "Cookie",
            "X-Api-Key",
            "api-key",
            "X-Auth-Token",
            "X-Client-Secret",
        ] {
            assert!(is_secret_header(name), "{name}");
        }
        for name in ["Content-Type", "Accept", "X-Request-Id", "User-Agent"] {
            assert!(!is_secret_header(name), "{name}");
        }
        assert_eq!(
            header_line("Authorization: Bearer sk-123"),
            "Authorization: <redacted>"
        );
        assert_eq!(header_line("Accept: */*"), "Accept: */*");
        assert!(is_redacted(&header_line("x-api-key: k")));
    }

    #[test]
    fn urls_lose_user_info_and_secret_parameters_only() {
        assert_eq!(
            url("http://bob:hunter2@127.0.0.1:8080/generate"),
            "http://<redacted>@127.0.0.1:8080/generate"
        );
        assert_eq!(
            url("https://h/v1?api_key=sk-1&model=m&X-Amz-Signature=abc"),
            "https://h/v1?api_key=<redacted>&model=m&X-Amz-Signature=<redacted>"
        );
        let plain = "http://127.0.0.1:8080/generate?model=m";
        assert_eq!(url(plain), plain);
        assert_eq!(url("not a url"), "not a url");
        assert!(is_redacted(&url("http://u:p@h/")));
    }

    #[test]
    fn urls_inside_messages_are_redacted() {
        let m =
            "error sending request for url (http://u:pw@127.0.0.1:9/x?token=t): connection refused";
        let r = text(m);
        assert!(!r.contains("pw") && !r.contains("token=t"), "{r}");
        assert!(r.ends_with("): connection refused"), "{r}");
        assert_eq!(text("no urls here"), "no urls here");
    }
}
