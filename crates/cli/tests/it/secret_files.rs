//! Secrets from files (issue 18 part 5 and 6): `PICOCLAW_<NAME>_FILE`, the systemd
//! credentials directory and a Kubernetes Secret volume (the kubelet's `..data` symlink
//! swap). The real gateway is started with the file reference; replacing the file rotates
//! the token without a restart: the new value is accepted, the old one during
//! `gateway.rotation_grace`, then refused, and a socket of the old value is closed with
//! 4001 — same pid throughout.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::ws::{self, Next};
use crate::support::{Gateway, TestHome};

const OLD: &str = "file-token-old-3f9a1c7e5b2d4068ac1e";
const NEW: &str = "file-token-new-8b2d4f6a0c1e3579bd2f";
/// Short enough to wait out, long enough to observe on a loaded machine.
const GRACE_SECS: &str = "12";

/// A home with the Pico channel on and no pico token in any file.
fn pico_home() -> TestHome {
    let home = TestHome::new().env("PICOCLAW_GATEWAY_ROTATION_GRACE", GRACE_SECS);
    home.write_config(&json!({ "channels": { "pico": { "enabled": true } } }));
    home
}

/// Writes `text` to `path` atomically (temp file + rename), as an operator's tool does.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// 101 → true, 401 → false; anything else fails the test.
async fn accepted(gw: &Gateway, token: &str) -> bool {
    match ws::connect(&gw.ws(), &[("authorization", &format!("Bearer {token}"))]).await {
        Ok(_) => true,
        Err((status, _)) if status.as_u16() == 401 => false,
        Err((status, body)) => panic!("unexpected {status}: {body}"),
    }
}

/// Polls until `token`'s acceptance is `want` (generous deadline, no timed assertion).
async fn until_accepted(gw: &Gateway, token: &str, want: bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while accepted(gw, token).await != want {
        assert!(Instant::now() < deadline, "{what}: still {}", if want { "refused" } else { "accepted" });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One chat turn with the echo agent.
async fn chat_works(gw: &Gateway, token: &str) {
    let mut socket = ws::bearer(&gw.ws(), token).await;
    ws::send(
        &mut socket,
        json!({ "type": "message.send", "id": "m1", "payload": { "content": "ping from a file" } }),
    )
    .await;
    let frames = ws::until(&mut socket, "message.create").await;
    assert_eq!(frames.last().unwrap()["payload"]["content"], "ping from a file");
}

async fn closed_code(socket: &mut ws::Socket) -> Option<u16> {
    loop {
        match ws::next(socket, Duration::from_secs(90)).await {
            Next::Closed(frame) => return frame.map(|(code, _)| code),
            Next::Frame(_) => continue,
            other => panic!("expected the server to close the socket, got {other:?}"),
        }
    }
}

fn pid_of(home: &TestHome) -> u64 {
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.file(".picoclaw.pid")).unwrap()).unwrap();
    record["pid"].as_u64().unwrap()
}

/// No token value in any log the gateway wrote.
fn assert_no_token_in_logs(home: &TestHome) {
    let mut logs = home.gateway_stderr();
    if let Ok(entries) = std::fs::read_dir(home.file("logs")) {
        for entry in entries.flatten() {
            logs.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    assert!(!logs.is_empty(), "the gateway logged something");
    for token in [OLD, NEW] {
        assert!(!logs.contains(token), "a token value reached a log");
    }
}

/// The whole rotation, driven by `rotate` (which replaces the secret with NEW).
async fn rotation_without_restart(home: &TestHome, source: &str, rotate: impl FnOnce()) {
    let gw = home.spawn_gateway(&[]);
    let pid = pid_of(home);
    chat_works(&gw, OLD).await;
    let explain = home.run(&["auth", "explain"]);
    let explain = String::from_utf8_lossy(&explain.stdout).into_owned();
    assert!(explain.contains(source), "auth explain names {source}: {explain}");
    let mut old_socket = ws::bearer(&gw.ws(), OLD).await;

    rotate();
    until_accepted(&gw, NEW, true, "the new token after the file changed").await;
    // The old value is in its grace (12 s from the reload that just happened).
    assert!(accepted(&gw, OLD).await, "the old token is accepted during the grace");
    chat_works(&gw, NEW).await;
    until_accepted(&gw, OLD, false, "the old token after the grace").await;
    assert_eq!(closed_code(&mut old_socket).await, Some(4001), "the old token's socket is closed with 4001");
    assert!(accepted(&gw, NEW).await);
    assert_eq!(pid_of(home), pid, "no restart");
    assert_no_token_in_logs(home);
}

#[tokio::test]
async fn a_file_variable_rotates_without_restart() {
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("pico-token");
    std::fs::write(&file, format!("{OLD}\n")).unwrap();
    let home = pico_home().env("PICOCLAW_CHANNELS_PICO_TOKEN_FILE", file.to_str().unwrap());
    rotation_without_restart(&home, "file:$PICOCLAW_CHANNELS_PICO_TOKEN_FILE", || replace(&file, NEW)).await;
}

#[tokio::test]
async fn a_systemd_credential_rotates_without_restart() {
    let creds = tempfile::tempdir().unwrap();
    let file = creds.path().join("picoclaw-pico-token");
    std::fs::write(&file, OLD).unwrap();
    let home = pico_home().env("CREDENTIALS_DIRECTORY", creds.path().to_str().unwrap());
    rotation_without_restart(&home, "credential:picoclaw-pico-token", || replace(&file, &format!("{NEW}\n")))
        .await;
}

/// A Secret volume as the kubelet writes it: `..<timestamp>/pico-token`, `..data` → that
/// directory, `pico-token` → `..data/pico-token`; an update writes a new timestamped
/// directory, points `..data_tmp` at it and renames `..data_tmp` over `..data`.
struct KubeletVolume {
    dir: PathBuf,
    generation: u32,
}

impl KubeletVolume {
    fn new(dir: &Path, key: &str, value: &str) -> KubeletVolume {
        let mut volume = KubeletVolume { dir: dir.to_owned(), generation: 0 };
        volume.publish(key, value);
        std::os::unix::fs::symlink(format!("..data/{key}"), dir.join(key)).unwrap();
        volume
    }

    fn publish(&mut self, key: &str, value: &str) {
        self.generation += 1;
        let stamp = format!("..2026_12_03_17_00_{:02}.{}", self.generation, 100 + self.generation);
        let data = self.dir.join(&stamp);
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join(key), value).unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&stamp, &tmp).unwrap();
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
    }
}

#[tokio::test]
async fn a_kubernetes_secret_volume_swap_rotates_without_restart() {
    let mount = tempfile::tempdir().unwrap();
    let mut volume = KubeletVolume::new(mount.path(), "pico-token", &format!("{OLD}\n"));
    let file = mount.path().join("pico-token");
    let home = pico_home().env("PICOCLAW_CHANNELS_PICO_TOKEN_FILE", file.to_str().unwrap());
    rotation_without_restart(&home, "file:$PICOCLAW_CHANNELS_PICO_TOKEN_FILE", move || {
        volume.publish("pico-token", &format!("{NEW}\n"));
    })
    .await;
}

#[tokio::test]
async fn a_vanished_or_emptied_file_keeps_the_last_value() {
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("pico-token");
    std::fs::write(&file, OLD).unwrap();
    let home = pico_home().env("PICOCLAW_CHANNELS_PICO_TOKEN_FILE", file.to_str().unwrap());
    home.write_security(&format!("channels:\n  pico:\n    token: \"{NEW}\"\n"));
    let gw = home.spawn_gateway(&[]);
    let pid = pid_of(&home);
    assert!(accepted(&gw, OLD).await && !accepted(&gw, NEW).await, "the file wins over .security.yml");
    for break_it in [|p: &Path| std::fs::write(p, "\n").unwrap(), |p: &Path| std::fs::remove_file(p).unwrap()]
    {
        break_it(&file);
        // The gateway logs the rejected reload; it never falls back to .security.yml.
        let deadline = Instant::now() + Duration::from_secs(60);
        let before = home.gateway_stderr().matches("reload rejected").count();
        replace_noop(&home);
        while home.gateway_stderr().matches("reload rejected").count() <= before {
            assert!(Instant::now() < deadline, "no rejected reload logged: {}", home.gateway_stderr());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(accepted(&gw, OLD).await, "the last good value stays");
        assert!(!accepted(&gw, NEW).await, "no silent fall back to a lower source");
        std::fs::write(&file, OLD).unwrap();
    }
    let log = home.gateway_stderr();
    assert!(log.contains("file:$PICOCLAW_CHANNELS_PICO_TOKEN_FILE"), "{log}");
    assert_eq!(pid_of(&home), pid);
    assert_no_token_in_logs(&home);
}

/// Touches .security.yml so a reload runs even where the secret file's own event is merged.
fn replace_noop(home: &TestHome) {
    let text = std::fs::read_to_string(home.file(".security.yml")).unwrap();
    crate::support::write_private(&home.file(".security.yml"), &text);
}

#[test]
fn both_a_value_and_a_file_is_an_error_naming_both() {
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("gw");
    std::fs::write(&file, OLD).unwrap();
    let home = pico_home()
        .env("PICOCLAW_GATEWAY_TOKEN", NEW)
        .env("PICOCLAW_GATEWAY_TOKEN_FILE", file.to_str().unwrap());
    let out = home.run(&["gateway", "--port", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("PICOCLAW_GATEWAY_TOKEN and PICOCLAW_GATEWAY_TOKEN_FILE"), "{err}");
    assert!(!err.contains(OLD) && !err.contains(NEW), "{err}");
}

#[test]
fn missing_empty_and_oversized_files_are_clear_errors() {
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("pico-token");
    let cases: [(Option<Vec<u8>>, &str); 4] = [
        (None, "cannot open it"),
        (Some(b"\n".to_vec()), "it is empty"),
        (Some(vec![b'x'; 17_000]), "larger than 16384 bytes"),
        (Some(format!("{OLD}\n{NEW}\n").into_bytes()), "more than one line"),
    ];
    for (content, expected) in cases {
        match &content {
            Some(bytes) => std::fs::write(&file, bytes).unwrap(),
            None => drop(std::fs::remove_file(&file)),
        }
        let home = pico_home().env("PICOCLAW_CHANNELS_PICO_TOKEN_FILE", file.to_str().unwrap());
        let out = home.run(&["gateway", "--port", "0"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{expected}: {err}");
        assert!(err.contains("file:$PICOCLAW_CHANNELS_PICO_TOKEN_FILE") && err.contains(expected), "{err}");
        assert!(err.contains(file.to_str().unwrap()), "the error names the path: {err}");
        assert!(!err.contains(OLD) && !err.contains("xxxxxxxx"), "{err}");
    }
    let home = pico_home().env("PICOCLAW_CHANNELS_PICO_TOKEN_FILE", "relative/pico-token");
    let out = home.run(&["config", "show"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("PICOCLAW_CHANNELS_PICO_TOKEN_FILE: expected an absolute path"), "{err}");
}

#[test]
fn token_rotate_refuses_a_file_managed_secret() {
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("pico-token");
    std::fs::write(&file, OLD).unwrap();
    let home = pico_home().env("PICOCLAW_CHANNELS_PICO_TOKEN_FILE", file.to_str().unwrap());
    let out = home.run(&["token", "rotate", "pico"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("file:$PICOCLAW_CHANNELS_PICO_TOKEN_FILE") && err.contains("cannot rotate it"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), OLD, "the file is untouched");
    let security = std::fs::read_to_string(home.file(".security.yml")).unwrap_or_default();
    assert!(!security.contains("pico"), "nothing was written to .security.yml: {security}");
}

/// A credential directory with no picoclaw file at start (the pico token comes from
/// `.security.yml`): a credential placed there later is seen and takes over, without a
/// restart, and the shadowed value's socket is closed after the grace.
#[tokio::test]
async fn a_credential_added_after_start_takes_over_without_restart() {
    let creds = tempfile::tempdir().unwrap();
    let home = pico_home().env("CREDENTIALS_DIRECTORY", creds.path().to_str().unwrap());
    home.write_security(&format!("channels:\n  pico:\n    token: \"{OLD}\"\n"));
    let file = creds.path().join("picoclaw-pico-token");
    rotation_without_restart(&home, ".security.yml", || replace(&file, NEW)).await;
}

#[tokio::test]
async fn a_removed_systemd_credential_never_falls_back_to_security_yml() {
    let creds = tempfile::tempdir().unwrap();
    let file = creds.path().join("picoclaw-pico-token");
    std::fs::write(&file, OLD).unwrap();
    let home = pico_home().env("CREDENTIALS_DIRECTORY", creds.path().to_str().unwrap());
    home.write_security(&format!("channels:\n  pico:\n    token: \"{NEW}\"\n"));
    let gw = home.spawn_gateway(&[]);
    assert!(accepted(&gw, OLD).await && !accepted(&gw, NEW).await, "the credential wins over .security.yml");
    std::fs::remove_file(&file).unwrap();
    replace_noop(&home);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !home.gateway_stderr().contains("credential:picoclaw-pico-token is gone") {
        assert!(Instant::now() < deadline, "no rejected reload logged: {}", home.gateway_stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted(&gw, OLD).await, "the last good value stays");
    assert!(!accepted(&gw, NEW).await, "no silent fall back to .security.yml");
    assert_no_token_in_logs(&home);
}

#[tokio::test]
async fn the_launcher_token_can_come_from_a_file_and_is_never_shown() {
    use crate::launcher_support;
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("launcher-token");
    std::fs::write(&file, format!("{NEW}\n")).unwrap();
    let home = launcher_support::home().env("PICOCLAW_LAUNCHER_TOKEN_FILE", file.to_str().unwrap());
    let mut l = launcher_support::start(&home, &[]);
    let console = l.stdout();
    assert!(console.contains("token from file:$PICOCLAW_LAUNCHER_TOKEN_FILE (not shown)"), "{console}");
    assert!(!console.contains(NEW), "{console}");
    assert_eq!(launcher_support::login(&l, "not-the-token-0000000000000000").await.status, 401);
    assert_eq!(launcher_support::login(&l, NEW).await.status, 200, "the file's token logs in");
    // "Set your own" is refused, naming the file's variable (not "environment variable").
    let cookie = launcher_support::session(&l, NEW).await;
    let custom = "a-custom-launcher-token-0123456789";
    let refused = launcher_support::post_json(
        &l,
        "/setup",
        Some(&cookie),
        serde_json::json!({ "token": custom, "confirm": custom }),
    )
    .await;
    assert_eq!(refused.status, 409, "{}", refused.body);
    assert!(refused.body.contains("file:$PICOCLAW_LAUNCHER_TOKEN_FILE"), "{}", refused.body);
    l.stop();
    assert!(!l.stderr().contains(NEW), "the token never reaches the launcher's log");
    let config = std::fs::read_to_string(home.file("launcher-config.json")).unwrap_or_default();
    assert!(!config.contains(NEW), "the file's token is never persisted: {config}");
}

/// The launcher token rotated at its source while the launcher runs (a Secret update of
/// `PICOCLAW_LAUNCHER_TOKEN_FILE`): the new value logs in, the old one is refused, and every
/// session made with the old one ends — the dashboard never disagrees with its source.
#[tokio::test]
async fn a_launcher_token_replaced_in_its_file_takes_over_and_ends_old_sessions() {
    use crate::launcher_support;
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("launcher-token");
    std::fs::write(&file, format!("{OLD}\n")).unwrap();
    let home = launcher_support::home().env("PICOCLAW_LAUNCHER_TOKEN_FILE", file.to_str().unwrap());
    let mut l = launcher_support::start(&home, &[]);
    let cookie = launcher_support::session(&l, OLD).await;
    let authenticated = |cookie: String| {
        let url = l.at("/api/session");
        async move { launcher_support::get(&url, Some(&cookie)).await.json()["authenticated"] == true }
    };
    assert!(authenticated(cookie.clone()).await, "logged in with the old value");

    replace(&file, &format!("{NEW}\n"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while launcher_support::login(&l, NEW).await.status != 200 {
        assert!(Instant::now() < deadline, "the new value never logged in: {}", l.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(launcher_support::login(&l, OLD).await.status, 401, "the old value is refused");
    assert!(!authenticated(cookie).await, "the session made with the old value ended");
    let fresh = launcher_support::session(&l, NEW).await;
    assert!(authenticated(fresh).await);
    l.stop();
    let log = l.stderr();
    assert!(log.contains("launcher token changed at its source"), "{log}");
    assert!(!log.contains(OLD) && !log.contains(NEW), "no token value in the log: {log}");
}
