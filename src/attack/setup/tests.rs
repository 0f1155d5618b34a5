//! Tests of attack setup: the API paths a bare --target gets.

use super::*;

#[test]
fn api_paths_are_filled_in() {
    assert_eq!(
        api_url("http://127.0.0.1:8080", ApiKind::TgiStream).unwrap(),
        "http://127.0.0.1:8080/generate_stream"
    );
    assert_eq!(
        api_url("http://h:1/custom/predict", ApiKind::Fastapi).unwrap(),
        "http://h:1/custom/predict"
    );
    assert!(api_url("127.0.0.1:8080", ApiKind::Tgi).is_err());
    // OpenAI base URLs, as OpenAI's clients take them.
    let cases = [
        (
            "http://h:1/v1",
            ApiKind::OpenaiChat,
            "http://h:1/v1/chat/completions",
        ),
        (
            "http://h:1/v1/",
            ApiKind::OpenaiCompletions,
            "http://h:1/v1/completions",
        ),
        (
            "https://h/openai/v1?k=1",
            ApiKind::OpenaiChat,
            "https://h/openai/v1/chat/completions?k=1",
        ),
        (
            "http://h:1/",
            ApiKind::OpenaiChat,
            "http://h:1/v1/chat/completions",
        ),
        (
            "http://h:1/v2/chat",
            ApiKind::OpenaiChat,
            "http://h:1/v2/chat",
        ),
        ("http://h:1/v1", ApiKind::Tgi, "http://h:1/v1"),
    ];
    for (target, kind, want) in cases {
        assert_eq!(api_url(target, kind).unwrap(), want, "{target} as {kind}");
    }
}
