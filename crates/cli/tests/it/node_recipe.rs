//! Issue 17: a client that follows upstream PicoClaw's web UI connection recipe
//! (`node/recipe.mjs`, run under Node with the `ws` package that scripts/test installs
//! from npm into `target/node-recipe`) completes a chat round trip against the real
//! gateway directly (`token.<t>` subprotocol offer) and through the real launcher (its
//! session cookie and Origin only, no credential).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::launcher_support::{self, PICO};
use crate::support::TestHome;

/// `node_modules` holding `ws`: `PICOCLAW_TEST_NODE_MODULES` (set by scripts/test), else
/// `target/node-recipe/node_modules`. None (skip) when absent and tools are not required.
fn node_modules() -> Option<PathBuf> {
    let dir = std::env::var_os("PICOCLAW_TEST_NODE_MODULES").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/node-recipe/node_modules")
    });
    let node = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if node && dir.join("ws/package.json").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("PICOCLAW_REQUIRE_TOOLS").is_none(),
        "node and the npm package ws are required (scripts/test installs them into target/node-recipe)"
    );
    eprintln!("skipping: node or {}/ws is missing (run scripts/test)", dir.display());
    None
}

/// Runs the recipe; returns its exit code and its JSON line.
fn recipe(
    modules: &Path,
    page: &str,
    session: &str,
    message: &str,
    credential: (&str, &str),
) -> (i32, Value) {
    // The script is copied next to node_modules (once: tests run in parallel) so Node's
    // resolver finds `ws` from it.
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    let copy = COPY.get_or_init(|| {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/node/recipe.mjs");
        let copy = modules.parent().expect("node_modules has a parent").join("recipe.mjs");
        std::fs::copy(&script, &copy).expect("copy recipe.mjs");
        copy
    });
    let out = Command::new("node")
        .arg(copy)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PAGE_URL", page)
        .env("SESSION", session)
        .env("MESSAGE", message)
        .env(credential.0, credential.1)
        .stdin(Stdio::null())
        .output()
        .expect("run node");
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_owned();
    let value = serde_json::from_str(&line).unwrap_or_else(|_| {
        panic!("recipe printed {line:?}; stderr: {}", String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().unwrap_or(-1), value)
}

#[test]
fn upstreams_web_ui_recipe_chats_directly_with_the_gateway() {
    let Some(modules) = node_modules() else { return };
    let home = TestHome::with_pico(PICO, serde_json::json!({}));
    let gw = home.spawn_gateway(&[]);
    let page = format!("{}/", gw.http());
    let (code, out) = recipe(&modules, &page, "web-ui-1", "hello from the web UI", ("PICO_TOKEN", PICO));
    assert_eq!(code, 0, "{out}");
    assert_eq!(out["answer"], "hello from the web UI", "{out}");
    assert_eq!(out["protocol"], format!("token.{PICO}"), "the offer was echoed");
    assert_eq!(out["frames"][0], "typing.start", "{out}");

    // A wrong token: the handshake fails with 401, as the browser's would.
    let (code, out) = recipe(&modules, &page, "web-ui-1", "x", ("PICO_TOKEN", "not-the-token"));
    assert_eq!((code, out["error"].as_str()), (1, Some("HTTP 401")), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_web_ui_recipe_chats_through_the_launcher_with_its_cookie_only() {
    let Some(modules) = node_modules() else { return };
    let home = launcher_support::home();
    let mut l = launcher_support::start(&home, &[]);
    let cookie = launcher_support::session(&l, &l.token()).await;
    let page = l.url.clone();
    let (code, out) = tokio::task::spawn_blocking({
        let (modules, page, cookie) = (modules.clone(), page.clone(), cookie.clone());
        move || recipe(&modules, &page, "web-ui-2", "through the launcher", ("PAGE_COOKIE", &cookie))
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}\n{}", l.stderr());
    assert_eq!(out["answer"], "through the launcher", "{out}");

    // Without the cookie the launcher refuses the socket.
    let (code, out) =
        tokio::task::spawn_blocking(move || recipe(&modules, &page, "web-ui-2", "x", ("PAGE_COOKIE", "")))
            .await
            .unwrap();
    assert_eq!((code, out["error"].as_str()), (1, Some("HTTP 401")), "{out}");
    l.stop();
}
