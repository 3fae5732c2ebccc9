//! Tests of the token operations: request parsing, the one JSON shape per result, the
//! errors and the audit line.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use picoclaw_config::{Flags, Layers, MapEnv, Paths, Settings};
use serde_json::Value;

use super::*;
use crate::audit::AuditEvent;
use crate::named::ManualClock;
use crate::verify::Scope;

const CANARY: &str = "canary-secret-value-0123456789";

#[derive(Default)]
struct Lines(Mutex<Vec<AuditEvent>>);

impl AuditSink for Lines {
    fn record(&self, event: &AuditEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Lines {
    fn json(&self) -> Vec<Value> {
        self.0.lock().unwrap().iter().map(|e| serde_json::to_value(e).unwrap()).collect()
    }
}

fn creds(dir: &Path, env: MapEnv) -> Credentials {
    let layers = Layers::load(&Paths::at(dir), &env, &Flags::new()).unwrap();
    Credentials::resolve(&layers, &Settings::resolve(&layers).unwrap()).unwrap()
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// A home with a pico token in `.security.yml`, and the service on it.
fn home(env: MapEnv) -> (tempfile::TempDir, TokenOps) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(".security.yml");
    write_private(&file, "channels:\n  pico:\n    token: old-pico-value-0123456789abcdef\n");
    let ops = TokenOps::new(TokenFile::new(file), creds(dir.path(), env))
        .with_clock(Arc::new(ManualClock::new(Timestamp::from_unix(1_800_000_000))));
    (dir, ops)
}

/// Each leaf replaced by its JSON type: what "the same shape" means.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::Null => Value::from("null"),
        Value::Bool(_) => Value::from("bool"),
        Value::Number(_) => Value::from("number"),
        Value::String(_) => Value::from("string"),
    }
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default()
}

#[test]
fn keys_parse_once_into_what_they_name() {
    assert_eq!(TokenKey::parse("pico").unwrap(), TokenKey::Fixed(FixedCredential::Pico));
    assert_eq!(TokenKey::parse("gateway").unwrap(), TokenKey::Fixed(FixedCredential::Gateway));
    assert!(matches!(TokenKey::parse("abcdefghijk2").unwrap(), TokenKey::Id(_)));
    assert!(matches!(TokenKey::parse("tablet.v2").unwrap(), TokenKey::Name(_)));
    let token = format!("pcl_abcdefghijkl_{}_aaaaaa", "s".repeat(43));
    for bad in ["", "runtime", "has space", "../reload", token.as_str(), CANARY.repeat(3).as_str()] {
        let e = TokenKey::parse(bad).unwrap_err();
        assert_eq!((e.field(), e.code(), e.status()), (Some(Field::Key), "invalid_key", 404), "{bad}");
        assert!(!e.to_string().contains("sssss") && !e.to_string().contains(CANARY), "{e} echoes the key");
    }
}

#[test]
fn expiry_and_grace_parse_the_same_text_for_cli_and_api() {
    let now = Timestamp::from_unix(1_800_000_000);
    assert_eq!(Expiry::parse("30d", now).unwrap(), Expiry::After(Duration::from_secs(30 * 86_400)));
    assert_eq!(
        Expiry::parse("2030-01-01T00:00:00Z", now).unwrap(),
        Expiry::At(Timestamp::from_unix(1_893_456_000))
    );
    for (text, needle) in [
        ("0s", "expires at once"),
        ("2001-01-01T00:00:00Z", "in the past"),
        ("30x", "unknown unit"),
        (CANARY, "RFC 3339"),
    ] {
        let e = Expiry::parse(text, now).unwrap_err();
        let message = e.to_string();
        assert_eq!((e.field(), e.code(), e.status()), (Some(Field::Expires), "invalid_expires", 400));
        assert!(message.starts_with("expires: ") && message.contains(needle), "{text}: {message}");
        assert!(!message.contains(CANARY));
    }
    assert_eq!(Expiry::At(now).at(now).unwrap_err().code(), "invalid_expires", "a time that passed since");

    assert_eq!(Grace::parse_optional(None).unwrap(), Grace::NONE);
    assert_eq!(Grace::parse("10m").unwrap().duration(), Duration::from_secs(600));
    assert_eq!(Grace::parse("10m").unwrap().until(now), Some(now.after(Duration::from_secs(600))));
    assert_eq!(Grace::NONE.until(now), None);
    let e = Grace::parse("ten minutes").unwrap_err();
    assert_eq!((e.field(), e.code()), (Some(Field::Grace), "invalid_grace"));
    assert!(e.to_string().starts_with("grace: invalid duration"), "{e}");
}

#[test]
fn api_bodies_parse_into_the_same_requests_as_cli_flags() {
    let now = Timestamp::from_unix(1_800_000_000);
    let from_api =
        CreateRequest::from_json(br#"{"name": "phone", "scope": "chat", "expires": "30d"}"#, now).unwrap();
    assert_eq!(from_api, CreateRequest::new("phone", Scope::Chat, Some("30d"), now).unwrap());
    assert_eq!(
        RotateRequest::from_json("phone", br#"{"grace": "1m"}"#).unwrap(),
        RotateRequest::new("phone", Some("1m")).unwrap()
    );
    let empty = RotateRequest::from_json("pico", b"  ").unwrap();
    assert_eq!((empty.key, empty.grace), (TokenKey::Fixed(FixedCredential::Pico), Grace::NONE));

    let cases: [(&[u8], &str); 5] = [
        (br#"{"name": "x", "scope": "root"}"#, "invalid_scope"),
        (br#"{"name": "pico", "scope": "chat"}"#, "invalid_name"),
        (br#"{"scope": "chat"}"#, "invalid_body"),
        (b"", "invalid_body"),
        (br#"{"name": "x", "scope": "chat", "token": "canary-secret-value-0123456789"}"#, "invalid_body"),
    ];
    for (body, code) in cases {
        let e = CreateRequest::from_json(body, now).unwrap_err();
        assert_eq!(e.code(), code, "{e}");
        assert!(!e.to_string().contains(CANARY), "{e} echoes a value");
    }
    let e = CreateRequest::from_json(br#"{"name": 5, "scope": "canary-secret-value-0123456789"}"#, now)
        .unwrap_err();
    assert!(!e.to_string().contains(CANARY), "{e}");
}

#[test]
fn field_errors_start_with_the_field_name_and_codes_are_unique() {
    let errors = [
        TokenOpError::InvalidName { reason: "r" },
        TokenOpError::InvalidScope,
        TokenOpError::InvalidExpires { problem: "p".into() },
        TokenOpError::InvalidGrace { problem: "p".into() },
        TokenOpError::InvalidKey { reason: "r" },
        TokenOpError::InvalidBody { expected: "{}", detail: "d".into() },
        TokenOpError::NotFound { key: "k".into() },
        TokenOpError::NameTaken { name: "n".into() },
        TokenOpError::Revoked { id: "i".into(), name: "n".into() },
        TokenOpError::NotRevocable { credential: FixedCredential::Pico },
        TokenOpError::EnvManaged { key: "gateway.token", var: "PICOCLAW_GATEWAY_TOKEN" },
        TokenOpError::NotSet { key: "gateway.token" },
        TokenOpError::TooMany,
        TokenOpError::Busy { path: "p".into(), message: "m".into() },
        TokenOpError::InvalidRecord { key: "tokens[0]".into(), message: "m".into() },
    ];
    let mut codes: Vec<&str> = errors.iter().map(TokenOpError::code).collect();
    for e in &errors {
        if let Some(field) = e.field() {
            assert!(e.to_string().starts_with(&format!("{}: ", field.as_str())), "{e}");
        }
        assert!((400..600).contains(&e.status()));
    }
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), errors.len(), "one code per variant");
}

#[test]
fn create_rotate_revoke_list_and_their_audit_lines() {
    let (_dir, ops) = home(MapEnv::new());
    let audit = Lines::default();
    let by = Requester::Cli;
    let request = CreateRequest::new("phone", Scope::Chat, Some("1h"), ops.now()).unwrap();
    let created = ops.create(&request, &by, &audit).unwrap();
    let token = created.secret().expose().to_owned();
    let json = serde_json::to_value(&created).unwrap();
    assert_eq!(json["token"], token.as_str(), "shown once, in the answer");
    assert_eq!(json["id"], created.summary.id.as_str());
    assert_eq!(json["expires"], "2027-01-15T09:00:00Z");
    assert!(!format!("{created:?}").contains(&token), "Debug never shows it");

    let rotated = ops.rotate(&RotateRequest::new("phone", Some("1m")).unwrap(), &by, &audit).unwrap();
    let named = serde_json::to_value(&rotated).unwrap();
    assert_eq!(named["kind"], "named");
    assert_eq!(named["id"], created.summary.id.as_str());
    assert_eq!(named["grace_until"], "2027-01-15T08:01:00Z");
    assert_eq!(named["record"]["name"], "phone");
    assert!(named["credential"].is_null() && named["old_source"].is_null());
    assert!(!format!("{rotated:?}").contains(rotated.secret().expose()));

    let pico = ops.rotate(&RotateRequest::new("pico", None).unwrap(), &by, &audit).unwrap();
    let fixed = serde_json::to_value(&pico).unwrap();
    assert_eq!((fixed["kind"].as_str(), fixed["id"].as_str()), (Some("pico"), Some("pico")));
    assert_eq!(fixed["credential"]["key"], "channels.pico.token");
    assert_eq!(fixed["old_source"], ".security.yml:channels.pico.token");
    assert!(fixed["grace_until"].is_null() && fixed["record"].is_null());
    assert!(!pico.old_value_in_config_file());
    assert_eq!(keys(&named), keys(&fixed), "one shape for every kind of rotation");
    let mut expected = [
        "kind",
        "id",
        "name",
        "scope",
        "fingerprint",
        "grace_until",
        "record",
        "credential",
        "old_source",
        "token",
    ];
    expected.sort_unstable();
    assert_eq!(keys(&named), expected);

    let revoked = ops.revoke(&TokenKey::parse(&created.summary.id).unwrap(), &by, &audit).unwrap();
    assert_eq!(revoked.summary.state, crate::named::TokenState::Revoked);
    let listed = serde_json::to_value(ops.list().unwrap()).unwrap();
    assert_eq!(listed["tokens"][0]["state"], "revoked");
    assert_eq!(listed["credentials"][0]["id"], "pico");
    assert_eq!(shape(&listed["tokens"][0]), shape(&serde_json::to_value(&revoked).unwrap()));

    let lines = audit.json();
    let events: Vec<(&str, &str, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["event"].as_str().unwrap(),
                l["credential_id"].as_str().unwrap(),
                l["endpoint"].as_str().unwrap(),
            )
        })
        .collect();
    let id = created.summary.id.as_str();
    assert_eq!(
        events,
        [
            ("create", id, "cli:token create"),
            ("rotate", id, "cli:token rotate"),
            ("rotate", "pico", "cli:token rotate"),
            ("revoke", id, "cli:token revoke")
        ]
    );
    for line in &lines {
        assert_eq!((line["actor"].as_str(), line["outcome"].as_str()), (Some("cli"), Some("ok")));
        assert!(line.get("code").is_none(), "no code on success, and never an id: {line}");
        let text = line.to_string();
        assert!(!text.contains(&token) && !text.contains(pico.secret().expose()));
    }
}

#[test]
fn api_requests_name_the_caller_and_the_route() {
    let (_dir, ops) = home(MapEnv::new());
    let audit = Lines::default();
    let principal = Principal {
        kind: CredentialKind::Runtime,
        id: "runtime".into(),
        name: "runtime".into(),
        scope: Scope::Admin,
        source: ".picoclaw.pid".into(),
        fingerprint: "01234567".into(),
        guessable: false,
    };
    let by = Requester::api(&principal, Some("127.0.0.1".into()));
    let request = CreateRequest::from_json(br#"{"name": "ci", "scope": "admin"}"#, ops.now()).unwrap();
    let created = ops.create(&request, &by, &audit).unwrap();
    let e = ops.revoke(&TokenKey::parse("pico").unwrap(), &by, &audit).unwrap_err();
    assert_eq!((e.code(), e.status()), ("not_revocable", 409));
    let lines = audit.json();
    assert_eq!(lines[0]["endpoint"], "/api/tokens");
    assert_eq!(lines[0]["actor"], "runtime");
    assert_eq!(lines[0]["client"], "127.0.0.1");
    assert_eq!(lines[0]["credential_kind"], "named");
    assert_eq!(lines[0]["credential_id"], created.summary.id.as_str());
    assert_eq!(lines[1]["endpoint"], "/api/tokens/{key}");
    assert_eq!(
        (lines[1]["outcome"].as_str(), lines[1]["code"].as_str()),
        (Some("denied"), Some("not_revocable"))
    );
    assert_eq!(lines[1]["credential_id"], "pico");
}

#[test]
fn env_managed_credentials_are_refused_recorded_and_never_written() {
    let env = MapEnv::new().with("PICOCLAW_CHANNELS_PICO_TOKEN", CANARY);
    let (dir, ops) = home(env);
    let before = std::fs::read_to_string(dir.path().join(".security.yml")).unwrap();
    let audit = Lines::default();
    let rotate = ops.rotate(&RotateRequest::new("pico", Some("1m")).unwrap(), &Requester::Cli, &audit);
    let revoke = ops.revoke(&TokenKey::parse("pico").unwrap(), &Requester::Cli, &audit);
    for e in [rotate.unwrap_err(), revoke.unwrap_err()] {
        assert_eq!((e.code(), e.status()), ("env_managed", 409));
        let message = e.to_string();
        assert!(message.contains("PICOCLAW_CHANNELS_PICO_TOKEN") && !message.contains(CANARY), "{message}");
    }
    assert_eq!(std::fs::read_to_string(dir.path().join(".security.yml")).unwrap(), before);
    let lines = audit.json();
    assert_eq!(lines.len(), 2);
    for (line, event) in lines.iter().zip(["rotate", "revoke"]) {
        assert_eq!(line["event"], event);
        assert_eq!((line["outcome"].as_str(), line["code"].as_str()), (Some("denied"), Some("env_managed")));
        assert_eq!(
            (line["credential_kind"].as_str(), line["credential_id"].as_str()),
            (Some("pico"), Some("pico"))
        );
    }
}

#[test]
fn refusals_of_bad_input_are_not_recorded_but_file_failures_are() {
    let (dir, ops) = home(MapEnv::new());
    let audit = Lines::default();
    let e = ops.rotate(&RotateRequest::new("nosuch", None).unwrap(), &Requester::Cli, &audit).unwrap_err();
    assert_eq!((e.code(), e.status()), ("token_not_found", 404));
    let request = CreateRequest::new("a", Scope::Chat, None, ops.now()).unwrap();
    ops.create(&request, &Requester::Cli, &audit).unwrap();
    let e = ops.create(&request, &Requester::Cli, &audit).unwrap_err();
    assert_eq!(e.code(), "name_taken");
    assert_eq!(audit.json().len(), 1, "only the creation");

    write_private(
        &dir.path().join(".security.yml"),
        "tokens:\n  - id: aaaaaaaaaaaa\n    name: a\n    scope: root\n",
    );
    let e = ops.create(&request, &Requester::Cli, &audit).unwrap_err();
    assert_eq!((e.code(), e.status()), ("invalid_security_file", 500));
    assert!(e.to_string().contains("tokens[0]"), "{e}");
    let last = audit.json().pop().unwrap();
    assert_eq!(
        (last["outcome"].as_str(), last["code"].as_str()),
        (Some("error"), Some("invalid_security_file"))
    );
    assert!(matches!(ops.list(), Err(TokenOpError::InvalidRecord { .. })));
}
