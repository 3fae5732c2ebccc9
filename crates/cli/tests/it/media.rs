//! Files of answers (issue 17: `/pico/media/<id>`): the echo agent answers an image with
//! the image, delivered as upstream delivers files — a `message.create` whose
//! `attachments` link to `/pico/media/<id>` — and only the principal whose turn made it
//! can fetch it, directly from the gateway or through the launcher; deleting the session
//! deletes it.

use base64::Engine as _;
use serde_json::{Value, json};

use crate::launcher_support;
use crate::support::{TestHome, ws};

const PICO: &str = "pico-token-for-media-tests-0123456789abcdef";
/// A 1×1 PNG.
const PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

fn ok(home: &TestHome, args: &[&str]) -> String {
    let out = home.run(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Sends an image and returns the attachment of the answer.
async fn send_image(socket: &mut ws::Socket) -> Value {
    let media = format!("data:image/png;base64,{PNG}");
    ws::send(
        socket,
        json!({"type": "message.send", "id": "i1", "payload": {"content": "look", "media": [media]}}),
    )
    .await;
    let frames = ws::until(socket, "typing.stop").await;
    let files: Vec<&Value> = frames
        .iter()
        .filter(|f| f["type"] == "message.create" && f["payload"]["attachments"].is_array())
        .collect();
    assert_eq!(files.len(), 1, "one message carries the files: {frames:?}");
    assert!(
        frames.iter().any(|f| f["type"] == "message.create" && f["payload"]["content"] == "look"),
        "the text is answered too: {frames:?}"
    );
    let attachments = files[0]["payload"]["attachments"].as_array().unwrap();
    assert_eq!(attachments.len(), 1);
    attachments[0].clone()
}

async fn fetch(url: &str, bearer: Option<&str>, cookie: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.send().await.expect("http")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answers_file_is_served_to_its_owner_only_and_dies_with_its_session() {
    let home = TestHome::with_pico(PICO, json!({}));
    let gw = home.spawn_gateway(&[]);
    let mut socket = ws::bearer(&format!("{}?session_id=pics", gw.ws()), PICO).await;
    let file = send_image(&mut socket).await;
    assert_eq!(file["type"], "image");
    assert_eq!(file["filename"], "image-1.png");
    assert_eq!(file["content_type"], "image/png");
    let path = file["url"].as_str().unwrap();
    assert!(path.starts_with("/pico/media/") && path.len() == "/pico/media/".len() + 32, "{path}");
    let url = format!("{}{path}", gw.http());

    let resp = fetch(&url, Some(PICO), None).await;
    assert_eq!(resp.status(), 200);
    let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert_eq!(header("content-type"), "image/png");
    assert_eq!(header("content-disposition"), "inline; filename=\"image-1.png\"");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "private, no-store");
    assert!(header("content-security-policy").contains("sandbox"));
    let bytes = resp.bytes().await.unwrap();
    assert_eq!(bytes.as_ref(), base64::engine::general_purpose::STANDARD.decode(PNG).unwrap().as_slice());

    // Another principal, no credential, an unknown id.
    let bob = ok(&home, &["token", "create", "--name", "bob", "--scope", "chat"]);
    assert_eq!(fetch(&url, Some(&bob), None).await.status(), 404, "not the owner: the same 404 as unknown");
    assert_eq!(fetch(&url, None, None).await.status(), 401);
    let unknown = format!("{}/pico/media/{}", gw.http(), "0".repeat(32));
    assert_eq!(fetch(&unknown, Some(PICO), None).await.status(), 404);

    // Deleting the session deletes its files.
    let resp = reqwest::Client::new()
        .delete(format!("{}/api/sessions/pics", gw.http()))
        .bearer_auth(PICO)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(fetch(&url, Some(PICO), None).await.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_fetches_its_chats_files_through_the_launcher() {
    let home = launcher_support::home();
    let mut l = launcher_support::start(&home, &[]);
    let cookie = launcher_support::session(&l, &l.token()).await;
    let socket_url = format!("{}?session_id=dash-pics", l.at("/pico/ws").replacen("http://", "ws://", 1));
    let origin = l.url.trim_end_matches('/').to_owned();
    let (mut socket, _) =
        ws::connect(&socket_url, &[("cookie", &cookie), ("origin", &origin)]).await.expect("socket");
    let file = send_image(&mut socket).await;
    let path = file["url"].as_str().unwrap();

    let resp = fetch(&l.at(path), None, Some(&cookie)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(
        resp.bytes().await.unwrap().len(),
        base64::engine::general_purpose::STANDARD.decode(PNG).unwrap().len()
    );
    assert_eq!(fetch(&l.at(path), None, None).await.status(), 401, "a session is required");
    assert_eq!(fetch(&l.at("/pico/media/..%2Fapi%2Ftokens"), None, Some(&cookie)).await.status(), 404);
    l.stop();
}
