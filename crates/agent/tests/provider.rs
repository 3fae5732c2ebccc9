//! The OpenAI-compatible provider against a real loopback HTTP server speaking SSE,
//! including misbehaving ones.

mod fake_provider;

use std::time::{Duration, Instant};

use fake_provider::{FakeProvider, Reply};
use futures_util::StreamExt;
use picoclaw_agent::{Agent, AgentError, OpenAiAgent, ProviderConfig, Role, Timeouts, Turn, TurnRequest};
use picoclaw_credentials::Secret;

const KEY: &str = "sk-CANARY-provider-key-5f1e";

fn agent(base: &str, keys: &[&str], t: Duration) -> OpenAiAgent {
    OpenAiAgent::new(ProviderConfig {
        model_name: "test-model".into(),
        model: "gpt-test".into(),
        api_base: base.into(),
        keys: keys.iter().map(|k| Secret::new(*k)).collect(),
        timeouts: Timeouts { connect: t, first_byte: t, idle: t, total: t * 4 },
    })
    .expect("agent")
}

fn request(text: &str, history: Vec<Turn>) -> TurnRequest {
    TurnRequest { session_id: "s".into(), history, text: text.into(), media: vec![] }
}

/// Collects the reply: (deltas, error).
async fn collect(agent: &OpenAiAgent, req: TurnRequest) -> (Vec<String>, Option<AgentError>) {
    let mut deltas = Vec::new();
    let mut stream = agent.reply(req);
    while let Some(item) = stream.next().await {
        match item {
            Ok(picoclaw_agent::Delta::Text(d)) => deltas.push(d),
            Ok(picoclaw_agent::Delta::Thought(d)) => deltas.push(format!("thought:{d}")),
            Ok(picoclaw_agent::Delta::Attachment(a)) => deltas.push(format!("file:{}", a.filename)),
            Err(e) => return (deltas, Some(e)),
        }
    }
    (deltas, None)
}

fn assert_no_key(e: &AgentError) {
    assert!(!e.message.contains(KEY), "key leaked in {:?}", e.message);
    assert!(!e.message.contains("CANARY"), "key leaked in {:?}", e.message);
}

#[tokio::test]
async fn streams_deltas_in_order_with_history_and_bearer_key() {
    let fake = FakeProvider::start(Reply::stream(&["Hel", "lo", ", ", "world"]));
    let a = agent(&fake.base, &[KEY], Duration::from_secs(5));
    let history = vec![
        Turn { role: Role::User, content: "first".into() },
        Turn { role: Role::Assistant, content: "answer".into() },
    ];
    let (deltas, err) = collect(&a, request("hi", history)).await;
    assert_eq!(err, None);
    assert_eq!(deltas, ["Hel", "lo", ", ", "world"]);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/v1/chat/completions");
    assert_eq!(reqs[0].authorization.as_deref(), Some(format!("Bearer {KEY}").as_str()));
    assert_eq!(reqs[0].body["stream"], true);
    assert_eq!(reqs[0].body["model"], "gpt-test");
    let msgs = reqs[0].body["messages"].as_array().unwrap();
    let pairs: Vec<(String, String)> = msgs
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_owned(), m["content"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("user".into(), "first".into()),
            ("assistant".into(), "answer".into()),
            ("user".into(), "hi".into())
        ]
    );
}

#[tokio::test]
async fn plain_json_answer_is_accepted() {
    let fake = FakeProvider::start(Reply::Json { content: "whole answer".into() });
    let (deltas, err) =
        collect(&agent(&fake.base, &[KEY], Duration::from_secs(5)), request("q", vec![])).await;
    assert_eq!((deltas, err), (vec!["whole answer".to_owned()], None));
}

#[tokio::test]
async fn error_statuses_map_to_codes_without_the_key() {
    let cases = [
        (401, "Incorrect API key provided: sk-CANARY-provider-key-5f1e", "provider_auth"),
        (403, "forbidden", "provider_auth"),
        (429, "slow down", "provider_rate_limited"),
        (500, "upstream exploded sk-CANARY-provider-key-5f1e", "provider_error"),
        (404, "model gpt-test not found", "provider_error"),
    ];
    for (code, message, expected) in cases {
        let fake = FakeProvider::start(Reply::Status { code, message: message.into() });
        let (deltas, err) =
            collect(&agent(&fake.base, &[KEY], Duration::from_secs(5)), request("q", vec![])).await;
        assert!(deltas.is_empty());
        let err = err.unwrap_or_else(|| panic!("HTTP {code} gave no error"));
        assert_eq!(err.code, expected, "HTTP {code}: {err:?}");
        assert_no_key(&err);
        if code == 429 {
            assert!(err.message.contains("retry after 7"), "{err:?}");
        }
        if code == 404 {
            assert!(err.message.contains("404") && err.message.contains("not found"), "{err:?}");
        }
    }
}

#[tokio::test]
async fn a_rejected_key_falls_back_to_the_next() {
    let fake = FakeProvider::start(Reply::stream(&["ok"]));
    fake.then(Reply::Status { code: 401, message: "bad key".into() });
    let a = agent(&fake.base, &["sk-first-bad", "sk-second-good"], Duration::from_secs(5));
    let (deltas, err) = collect(&a, request("q", vec![])).await;
    assert_eq!((deltas, err), (vec!["ok".to_owned()], None));
    let auth: Vec<_> = fake.requests().into_iter().map(|r| r.authorization.unwrap_or_default()).collect();
    assert_eq!(auth, ["Bearer sk-first-bad", "Bearer sk-second-good"]);
}

#[tokio::test]
async fn truncated_stream_is_a_bad_stream_after_the_partial_text() {
    let fake = FakeProvider::start(Reply::Stream {
        deltas: vec!["part".into(), "ial".into()],
        gap: Duration::from_millis(5),
        done: false,
    });
    let (deltas, err) =
        collect(&agent(&fake.base, &[KEY], Duration::from_secs(5)), request("q", vec![])).await;
    assert_eq!(deltas, ["part", "ial"]);
    assert_eq!(err.map(|e| e.code), Some("provider_bad_stream"));
}

#[tokio::test]
async fn garbage_event_is_a_bad_stream() {
    let fake = FakeProvider::start(Reply::Garbage);
    let (_, err) = collect(&agent(&fake.base, &[KEY], Duration::from_secs(5)), request("q", vec![])).await;
    assert_eq!(err.map(|e| e.code), Some("provider_bad_stream"));
}

#[tokio::test]
async fn slow_first_byte_and_stalled_stream_time_out() {
    let t = Duration::from_millis(400);
    let fake =
        FakeProvider::start(Reply::Slow { delay: Duration::from_secs(5), deltas: vec!["late".into()] });
    let started = Instant::now();
    let (deltas, err) = collect(&agent(&fake.base, &[KEY], t), request("q", vec![])).await;
    assert!(deltas.is_empty());
    assert_eq!(err.map(|e| e.code), Some("provider_timeout"));
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());

    let fake = FakeProvider::start(Reply::Stall { deltas: vec!["begin".into()] });
    let started = Instant::now();
    let (deltas, err) = collect(&agent(&fake.base, &[KEY], t), request("q", vec![])).await;
    assert_eq!(deltas, ["begin"]);
    let err = err.expect("stall must fail");
    assert_eq!(err.code, "provider_timeout");
    assert!(err.message.contains("stalled"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn refused_connection_is_unreachable() {
    // Bind then drop a listener: the port is free and nothing accepts on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (_, err) = collect(
        &agent(&format!("http://127.0.0.1:{port}/v1"), &[KEY], Duration::from_secs(5)),
        request("q", vec![]),
    )
    .await;
    let err = err.expect("must fail");
    assert_eq!(err.code, "provider_unreachable", "{err:?}");
    assert_no_key(&err);
}

#[test]
fn bad_api_base_is_a_clear_config_error() {
    let err = OpenAiAgent::new(ProviderConfig {
        model_name: "m".into(),
        model: "x".into(),
        api_base: "localhost:8080/v1".into(),
        keys: vec![],
        timeouts: Timeouts::default(),
    })
    .unwrap_err();
    assert_eq!(err.code, "provider_config");
    assert!(err.message.contains("api_base") && err.message.contains("http://"), "{err:?}");
}
