//! Black-box tests of `picoclaw token`: the real binary on a temporary home; what it
//! writes is checked with the same library the gateway verifies with.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use picoclaw_auth::named::{ManualClock, StoredCredentials, Timestamp};
use picoclaw_auth::{AuthError, CredentialKind, Lapse, NamedTokens, Scope};
use picoclaw_config::{Flags, Layers, MapEnv, Paths, Settings};
use picoclaw_credentials::Credentials;
use picoclaw_credentials::store::read_security_tree;
use serde_json::Value;

use crate::support::TestHome;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(home: &TestHome, args: &[&str]) -> (String, String) {
    let out = home.run(args);
    assert!(out.status.success(), "{args:?} failed: {}", stderr(&out));
    (stdout(&out), stderr(&out))
}

fn creds(home: &Path) -> Credentials {
    let paths = Paths::at(home);
    let layers = Layers::load(&paths, &MapEnv::new(), &Flags::new()).unwrap();
    Credentials::resolve(&layers, &Settings::resolve(&layers).unwrap()).unwrap()
}

/// What the gateway would accept now (or at `clock`), loaded from the file on disk.
fn stored_at(home: &TestHome, clock: Arc<ManualClock>) -> StoredCredentials {
    let tree = read_security_tree(&home.file(".security.yml")).unwrap();
    StoredCredentials::from_tree(&tree, &creds(home.path()), true, clock).unwrap()
}

fn stored(home: &TestHome) -> StoredCredentials {
    stored_at(home, Arc::new(ManualClock::new(Timestamp::now())))
}

fn security_text(home: &TestHome) -> String {
    std::fs::read_to_string(home.file(".security.yml")).unwrap()
}

fn audit_lines(home: &TestHome) -> Vec<Value> {
    std::fs::read_to_string(home.file("logs/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn create_use_revoke_rejected() {
    let home = TestHome::onboarded();
    let (out, err) = ok(&home, &["token", "create", "--name", "phone", "--scope", "chat"]);
    let token = out.trim().to_owned();
    assert_eq!(out.lines().count(), 1, "stdout is the token alone, for scripts: {out}");
    assert!(token.starts_with("pcl_") && token.len() == 67, "{token}");
    assert!(err.contains("shown once"), "{err}");
    assert!(!err.contains(&token), "the token goes to stdout only");

    // Only the hash is stored, in a private file.
    let text = security_text(&home);
    assert!(!text.contains(&token[17..60]), "secret stored in .security.yml");
    assert!(text.contains("sha256"));
    #[cfg(unix)]
    assert_eq!(mode(&home.file(".security.yml")), 0o600);

    let p = stored(&home).verify(&token).unwrap().unwrap();
    assert_eq!((p.kind, p.scope, p.name.as_str()), (CredentialKind::Named, Scope::Chat, "phone"));

    let (list, _) = ok(&home, &["token", "list"]);
    assert!(list.contains("phone") && list.contains(&p.id) && list.contains("active"), "{list}");
    assert!(!list.contains(&token[17..60]));
    let (json, _) = ok(&home, &["token", "list", "--json"]);
    let json: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["tokens"][0]["name"], "phone");
    assert_eq!(json["tokens"][0]["fingerprint"], p.fingerprint);
    assert_eq!(json["credentials"][0]["id"], "pico");

    let (out, _) = ok(&home, &["token", "revoke", "phone"]);
    assert!(out.contains("revoked"), "{out}");
    assert_eq!(
        stored(&home).verify(&token),
        Some(Err(AuthError::Expired { id: p.id.clone(), state: Lapse::Revoked }))
    );
    let (list, _) = ok(&home, &["token", "list", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&list).unwrap()["tokens"][0]["state"], "revoked");

    // Revoking again is a clear error; the audit log has both events and no secret.
    let again = home.run(&["token", "revoke", p.id.as_str()]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("is revoked"), "{}", stderr(&again));
    let audit = audit_lines(&home);
    let events: Vec<&str> = audit.iter().filter_map(|l| l["event"].as_str()).collect();
    assert_eq!(events, ["create", "revoke"]);
    assert_eq!(audit[0]["credential_id"], p.id.as_str());
    assert!(!std::fs::read_to_string(home.file("logs/audit.jsonl")).unwrap().contains(&token[17..60]));
}

#[test]
fn expiring_token_and_json_output() {
    let home = TestHome::onboarded();
    let (out, _) =
        ok(&home, &["token", "create", "--name", "ci", "--scope", "admin", "--expires", "1h", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let token = v["token"].as_str().unwrap();
    assert_eq!(v["scope"], "admin");
    let expires = Timestamp::parse(v["expires"].as_str().unwrap()).unwrap();
    let now = Timestamp::now().unix();
    assert!((now + 3590..=now + 3610).contains(&expires.unix()), "{v}");
    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let s = stored_at(&home, clock.clone());
    assert!(s.verify(token).unwrap().is_ok());
    clock.advance(Duration::from_secs(3700));
    assert!(matches!(s.verify(token), Some(Err(AuthError::Expired { state: Lapse::Expired, .. }))));
}

#[test]
fn bad_input_is_refused_with_clear_errors_and_nothing_written() {
    let home = TestHome::onboarded();
    let before = security_text(&home);
    let cases: &[(&[&str], &str)] = &[
        (&["token", "create", "--name", "has space", "--scope", "chat"], "invalid token name"),
        (&["token", "create", "--name", "pico", "--scope", "chat"], "built-in"),
        (&["token", "create", "--name", "x", "--scope", "root"], "possible values"),
        (&["token", "create", "--name", "x", "--scope", "chat", "--expires", "30x"], "unknown unit"),
        (&["token", "create", "--name", "x", "--scope", "chat", "--expires", "0s"], "expires at once"),
        (
            &["token", "create", "--name", "x", "--scope", "chat", "--expires", "2001-01-01T00:00:00Z"],
            "in the past",
        ),
        (&["token", "rotate", "nosuch", "--grace", "1m"], "no named token"),
        (&["token", "rotate", "pico", "--grace", "ten minutes"], "--grace"),
        (&["token", "revoke", "nosuch"], "no named token"),
    ];
    for (args, needle) in cases {
        let out = home.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(security_text(&home), before, "nothing written");

    ok(&home, &["token", "create", "--name", "dup", "--scope", "chat"]);
    let out = home.run(&["token", "create", "--name", "dup", "--scope", "admin"]);
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
}

#[test]
fn unparseable_security_file_is_left_untouched() {
    let home = TestHome::onboarded();
    home.write_security("tokens: [ {id: \"x\"\n");
    let out = home.run(&["token", "create", "--name", "a", "--scope", "chat"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains(".security.yml"), "{}", stderr(&out));
    assert_eq!(security_text(&home), "tokens: [ {id: \"x\"\n");

    // A parseable file with a bad record: the key is named, the file kept.
    home.write_security(
        "tokens:\n  - id: aaaaaaaaaaaa\n    name: a\n    scope: root\n    sha256: '00'\n    created: 1\n",
    );
    let out = home.run(&["token", "create", "--name", "b", "--scope", "chat"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("tokens[0]"), "{}", stderr(&out));
}

#[test]
fn rotate_named_token_with_grace() {
    let home = TestHome::onboarded();
    let (old, _) = ok(&home, &["token", "create", "--name", "bot", "--scope", "chat"]);
    let old = old.trim().to_owned();
    let (new, err) = ok(&home, &["token", "rotate", "bot", "--grace", "2s"]);
    let new = new.trim().to_owned();
    assert_ne!(old, new);
    assert_eq!(old[..16], new[..16], "same id");
    assert!(err.contains("keeps working for 2s"), "{err}");

    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let s = stored_at(&home, clock.clone());
    let via_old = s.verify(&old).unwrap().unwrap();
    let via_new = s.verify(&new).unwrap().unwrap();
    assert_eq!((via_old.id.as_str(), via_old.name.as_str()), (via_new.id.as_str(), "bot"));
    assert_eq!(via_new.scope, Scope::Chat);
    clock.advance(Duration::from_secs(3));
    assert!(matches!(s.verify(&old), Some(Err(AuthError::Expired { state: Lapse::Rotated, .. }))));
    assert!(s.verify(&new).unwrap().is_ok());
    assert_eq!(
        s.named.still_valid(&via_old),
        Err(AuthError::Expired { id: via_old.id.clone(), state: Lapse::Rotated })
    );

    // Without --grace the old secret stops at once.
    let (newer, _) = ok(&home, &["token", "rotate", via_new.id.as_str()]);
    let s = stored(&home);
    assert!(s.verify(newer.trim()).unwrap().is_ok());
    assert!(s.verify(&new).unwrap().is_err());
}

#[test]
fn rotate_pico_with_grace_keeps_the_old_value_until_then() {
    let home = TestHome::onboarded();
    let old = creds(home.path()).pico().unwrap().secret.expose().to_owned();
    let (out, err) = ok(&home, &["token", "rotate", "pico", "--grace", "1m"]);
    let new = out.trim().to_owned();
    assert_eq!(new.len(), 64, "{out}");
    assert!(err.contains("keeps working for 1m"), "{err}");
    assert_eq!(creds(home.path()).pico().unwrap().secret.expose(), new, "written to .security.yml");
    let text = security_text(&home);
    assert!(!text.contains(&old), "the old value is kept only as a hash");
    assert!(text.contains("rotated"));
    // `rotated:` is a known key: no "unknown key" warning on the next command.
    let (_, err) = ok(&home, &["token", "list"]);
    assert!(!err.contains("unknown key"), "{err}");

    let clock = Arc::new(ManualClock::new(Timestamp::now()));
    let s = stored_at(&home, clock.clone());
    let p = s.verify(&old).unwrap().unwrap();
    assert_eq!((p.kind, p.scope), (CredentialKind::Pico, Scope::Chat));
    assert_eq!(s.verify(&new), None, "the new value is the verifier's fixed pico token");
    clock.advance(Duration::from_secs(61));
    assert_eq!(s.verify(&old), None, "after the grace the old value is just wrong");
    assert_eq!(s.still_valid(&p), Some(Err(AuthError::Expired { id: "pico".into(), state: Lapse::Rotated })));

    let (list, _) = ok(&home, &["token", "list"]);
    assert!(list.contains("old value accepted until"), "{list}");
    assert!(!list.contains(&new) && !list.contains(&old));
    let audit = audit_lines(&home);
    assert_eq!(audit.last().unwrap()["event"], "rotate");
    assert_eq!(audit.last().unwrap()["credential_id"], "pico");
}

#[test]
fn env_sourced_credentials_are_never_rotated_or_revoked() {
    let canary = "env-canary-token-0123456789abcdef";
    for (var, target) in [("PICOCLAW_CHANNELS_PICO_TOKEN", "pico"), ("PICOCLAW_GATEWAY_TOKEN", "gateway")] {
        let home = TestHome::onboarded().env(var, canary);
        let before = security_text(&home);
        for args in [vec!["token", "rotate", target, "--grace", "1m"], vec!["token", "revoke", target]] {
            let out = home.run(&args);
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            let err = stderr(&out);
            assert!(err.contains(var), "{args:?} must name {var}: {err}");
            assert!(err.contains("restart the gateway") && err.contains("Kubernetes Secret"), "{err}");
            assert!(!err.contains(canary) && !stdout(&out).contains(canary));
            assert_eq!(security_text(&home), before, "nothing written");
        }
        let audit = audit_lines(&home);
        assert_eq!(audit[0]["outcome"], "denied");
        assert_eq!(audit[0]["code"], "env_managed");
    }
}

#[test]
fn file_sourced_pico_cannot_be_revoked_without_replacement() {
    let home = TestHome::onboarded();
    let out = home.run(&["token", "revoke", "pico"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("token rotate pico"), "{}", stderr(&out));
}

#[test]
fn a_running_gateway_is_asked_to_reload() {
    let home = TestHome::onboarded();
    let _gw = home.spawn_gateway(&[]);
    let (_, err) = ok(&home, &["token", "create", "--name", "live", "--scope", "chat"]);
    assert!(err.contains("reloaded"), "{err}\n--- gateway:\n{}", home.gateway_stderr());
}

#[test]
fn no_gateway_running_is_said_plainly() {
    let home = TestHome::onboarded();
    let (_, err) = ok(&home, &["token", "create", "--name", "offline", "--scope", "chat"]);
    assert!(err.contains("no gateway is running"), "{err}");
}
