//! Black-box tests of the launcher findings of the security review: the real binary on a
//! temp home, real HTTP (reqwest, and raw TCP where the request target must reach the
//! launcher byte for byte) and WebSocket (tokio-tungstenite) clients.
//!
//! - cross-site state-changing requests (`Origin`, `Sec-Fetch-Site`) are refused with 403
//!   `bad_origin` on every endpoint, `/login` and `/logout` included, and never spend the
//!   login failure limit (finding 4);
//! - `?token=` login redirects never carry a credential and never leave the origin, and
//!   following one does not log in again (finding 5);
//! - the token-API forwarder forwards only its allow-list: no path reaches another gateway
//!   endpoint with the runtime token (finding 6);
//! - the chat proxy echoes the browser's first subprotocol offer (finding 12a);
//! - a pasted token is trimmed of surrounding whitespace (finding 12b).

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::launcher_support::{Body, Launcher, get, home, login, post_json, send, session, start};

/// Every wait in this file is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

/// An HTTP answer read off a raw socket.
#[derive(Debug)]
struct Raw {
    status: u16,
    /// `(lower-case name, value)` pairs.
    headers: Vec<(String, String)>,
    body: String,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The `name=value` of the session cookie this answer sets, if any.
    fn session_cookie(&self) -> Option<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.as_str())
            .find(|v| {
                v.starts_with("picoclaw_launcher_session=") && !v.starts_with("picoclaw_launcher_session=;")
            })
            .and_then(|v| v.split(';').next())
            .map(str::to_owned)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends `method target HTTP/1.1` exactly as given (reqwest's URL parser would turn
/// `%2e%2e`, `..` and `\` into something else before the launcher sees it) and reads the
/// whole answer (`Connection: close`).
async fn raw(l: &Launcher, method: &str, target: &str, headers: &[(&str, &str)], body: Option<&str>) -> Raw {
    let authority = l.authority();
    let mut stream = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(&authority))
        .await
        .expect("connect within the time limit")
        .expect("connect to the launcher");
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    if !body.is_empty() || method != "GET" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.expect("write the request");
    let mut bytes = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut bytes))
        .await
        .unwrap_or_else(|_| panic!("{method} {target}: no complete answer within {WAIT:?}"))
        .expect("read the answer");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{method} {target}: not an HTTP answer: {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Raw { status, headers, body: body.to_owned() }
}

fn origin_of(l: &Launcher) -> String {
    format!("http://{}", l.authority())
}

/// The lines of the gateway's `logs/audit.jsonl` (after giving its batching writer time to
/// flush).
async fn audit_lines(l: &Launcher) -> Vec<String> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::read_to_string(l.home.join("logs/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Finding 4: every state-changing endpoint refuses cross-site requests.

#[tokio::test(flavor = "multi_thread")]
async fn cross_site_posts_are_refused_and_do_not_spend_the_login_limit() {
    let home = home();
    let l = start(&home, &[]);
    let token = l.token();
    let own = origin_of(&l);
    // What a page on another site (or another port of localhost: same-site, not
    // same-origin) makes a browser send.
    let cross: Vec<Vec<(&str, &str)>> = vec![
        vec![("origin", "http://evil.example")],
        vec![("origin", "null")],
        vec![("origin", "http://127.0.0.1:1")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", own.as_str()), ("sec-fetch-site", "same-site")],
        vec![("origin", "http://evil.example"), ("sec-fetch-site", "same-origin")],
    ];

    // 50 cross-site login posts with a wrong token: each refused before the token is
    // looked at (JSON and form bodies alike).
    for i in 0..50 {
        let headers = &cross[i % cross.len()];
        let wrong = format!("wrong-token-{i}");
        let form = format!("token={wrong}");
        let body = if i % 2 == 0 { Body::Json(json!({ "token": wrong })) } else { Body::Form(&form) };
        let a = send("POST", &l.at("/login"), None, headers, Some(body)).await;
        assert_eq!(a.status, 403, "cross-site login post #{i} with {headers:?} got {}: {}", a.status, a.body);
        assert_eq!(a.json()["error"]["code"], "bad_origin", "{}", a.body);
        assert!(a.cookie().is_none());
    }
    // The same through `GET /?token=`: an `<img>`, `<iframe>` or `fetch` from another
    // page is refused untried; only a top-level navigation (a user following a login
    // link from a chat app or mail) is a login attempt.
    let subresources: [&[(&str, &str)]; 4] = [
        &[("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "no-cors"), ("sec-fetch-dest", "image")],
        &[("sec-fetch-site", "same-site"), ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "iframe")],
        &[("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "cors"), ("origin", "http://evil.example")],
        &[("origin", "http://evil.example")],
    ];
    for i in 0..20 {
        let headers = subresources[i % subresources.len()];
        let a = send("GET", &l.at(&format!("/?token=wrong-{i}")), None, headers, None).await;
        assert_eq!(a.status, 403, "cross-site GET ?token= #{i} with {headers:?}: {}", a.body);
        assert_eq!(a.json()["error"]["code"], "bad_origin", "{}", a.body);
    }
    // None of them counted: the right token from the same address still logs in.
    let a = login(&l, &token).await;
    assert_eq!(a.status, 200, "after 50 refused cross-site posts the right token must work: {}", a.body);
    let cookie = a.cookie().expect("session cookie");
    let link =
        [("sec-fetch-site", "cross-site"), ("sec-fetch-mode", "navigate"), ("sec-fetch-dest", "document")];
    let a = send("GET", &l.at(&format!("/?token={token}")), None, &link, None).await;
    assert_eq!(
        (a.status, a.header("location").as_str()),
        (303, "/"),
        "a login link followed from another site"
    );
    assert!(a.cookie().is_some());

    // Cross-site logout, setup, gateway control and token management: refused, and the
    // session, the token and the gateway are untouched.
    let new = "cross-site-chosen-token-0123";
    for headers in &cross {
        for (method, path, body) in [
            ("POST", "/logout", Some(json!({}))),
            ("POST", "/setup", Some(json!({ "token": new, "confirm": new }))),
            ("POST", "/api/gateway/stop", Some(json!({}))),
            ("POST", "/api/tokens", Some(json!({ "name": "evil", "scope": "admin" }))),
            ("DELETE", "/api/tokens/phone", None),
        ] {
            let a = send(method, &l.at(path), Some(&cookie), headers, body.map(Body::Json)).await;
            assert_eq!(a.status, 403, "{method} {path} with {headers:?}: {}", a.body);
            assert_eq!(a.json()["error"]["code"], "bad_origin", "{method} {path}: {}", a.body);
        }
    }
    assert_eq!(get(&l.at("/api/session"), Some(&cookie)).await.status, 200, "still logged in");
    let status = get(&l.at("/api/gateway/status"), Some(&cookie)).await.json();
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(login(&l, new).await.status, 401, "the token was not replaced");

    // What keeps working: the page's own fetches (same Origin, Sec-Fetch-Site:
    // same-origin), a user-initiated request (Sec-Fetch-Site: none), and scripts that send
    // neither header.
    let same = [("origin", own.as_str()), ("sec-fetch-site", "same-origin")];
    let body = || Some(Body::Json(json!({ "token": token })));
    assert_eq!(send("POST", &l.at("/login"), None, &same, body()).await.status, 200);
    assert_eq!(send("POST", &l.at("/login"), None, &[("sec-fetch-site", "none")], body()).await.status, 200);
    assert_eq!(send("POST", &l.at("/login"), None, &[], body()).await.status, 200);
    let a = send("POST", &l.at("/logout"), Some(&cookie), &same, Some(Body::Json(json!({})))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(get(&l.at("/api/session"), Some(&cookie)).await.status, 401, "logged out");
}

// ---------------------------------------------------------------------------------------
// Finding 5: `?token=` redirects.

#[tokio::test(flavor = "multi_thread")]
async fn token_query_redirects_carry_no_credential_and_stay_on_the_origin() {
    let home = home();
    let l = start(&home, &[]);
    let token = l.token();
    let cases = [
        format!("/?%74oken={token}"),
        format!("/?tok%65n={token}&lang=en"),
        format!("/?lang=en&%74oken={token}&tab=chat"),
        format!("/?token={token}&%74oken={token}"),
        format!("/index.html?%74%6f%6b%65%6e={token}"),
        format!("//evil.example/?token={token}"),
        format!("//evil.example/?%74oken={token}"),
        format!("///evil.example/?token={token}"),
        format!("/\\evil.example/?token={token}"),
        format!("/%2f%2fevil.example/?token={token}"),
        format!("/%5cevil.example/?token={token}"),
        // A copy of the token elsewhere in the URL must not survive into the Location.
        format!("/?next={token}&token={token}"),
        format!("/{token}?token={token}"),
    ];
    for target in &cases {
        let first = raw(&l, "GET", target, &[], None).await;
        let shown = target.replace(&token, "<token>");
        eprintln!(
            "GET {shown} → {} {}",
            first.status,
            first.header("location").unwrap_or("-").replace(&token, "<token>")
        );
        if first.status == 400 {
            // The HTTP parser refused the request target outright: no login, no redirect.
            assert!(first.session_cookie().is_none(), "{shown}");
            continue;
        }
        assert_eq!(first.status, 303, "GET {shown}: {first:?}");
        let cookie = first.session_cookie().unwrap_or_else(|| panic!("GET {shown} logs in"));
        let mut sessions = 1;
        let mut location = first.header("location").unwrap_or_default().to_owned();
        let mut hops = 0;
        loop {
            let shown_location = location.replace(&token, "<token>");
            assert!(!location.contains(&token), "GET {shown}: Location {shown_location} carries the token");
            assert!(!location.contains("evil"), "GET {shown}: Location {shown_location} leaves the origin");
            assert!(
                location.starts_with('/') && !location.starts_with("//") && !location.starts_with("/\\"),
                "GET {shown}: Location {shown_location} is not a same-origin path"
            );
            // Follow it as a browser would, with the new cookie.
            let next = raw(&l, "GET", &location, &[("cookie", &cookie)], None).await;
            if next.session_cookie().is_some() {
                sessions += 1;
            }
            if next.status != 303 {
                assert_eq!(next.status, 200, "GET {shown} → {shown_location}: {next:?}");
                break;
            }
            hops += 1;
            assert!(hops < 3, "GET {shown}: redirect loop at {shown_location}");
            location = next.header("location").unwrap_or_default().to_owned();
        }
        assert_eq!(sessions, 1, "GET {shown}: following the redirect logged in again");
        assert_eq!(get(&l.at("/api/session"), Some(&cookie)).await.status, 200, "{shown}");
    }

    // Other parameters survive, decoded once and re-encoded.
    let a = raw(&l, "GET", &format!("/?lang=en&%74oken={token}&q=a%20b%26c"), &[], None).await;
    assert_eq!(a.header("location"), Some("/?lang=en&q=a+b%26c"), "{a:?}");
    let a = raw(&l, "GET", &format!("/index.html?token={token}"), &[], None).await;
    assert_eq!(a.header("location"), Some("/index.html"));
}

// ---------------------------------------------------------------------------------------
// Finding 6: the token-API forwarder.

#[tokio::test(flavor = "multi_thread")]
async fn token_api_forwarder_refuses_traversal_and_forwards_only_its_allow_list() {
    let home = home();
    let l = start(&home, &[]);
    l.gateway_record();
    let cookie = session(&l, &l.token()).await;
    let own = origin_of(&l);
    let headers = [("cookie", cookie.as_str()), ("origin", own.as_str())];
    let before = audit_lines(&l).await.len();

    let refused = [
        ("POST", "/api/tokens/%2e%2e/%2e%2e/auth/ticket"),
        ("POST", "/api/tokens/%2E%2E/%2E%2E/auth/ticket"),
        ("POST", "/api/tokens/..%2f..%2fauth%2fticket"),
        ("POST", "/api/tokens/%2e%2e%2f%2e%2e%2fauth%2fticket"),
        ("POST", "/api/tokens/%252e%252e/%252e%252e/auth/ticket"),
        ("POST", "/api/tokens/x/../../reload"),
        ("POST", "/api/tokens/%2e%2e/%2e%2e/reload"),
        ("POST", "/api/tokens/..%2f..%2freload/rotate"),
        ("POST", "/api/tokens/%2e%2e/rotate"),
        ("POST", "/api/tokens/./rotate"),
        ("POST", "/api/tokens/.hidden/rotate"),
        ("POST", "/api/tokens/%252e%252e/rotate"),
        ("POST", "/api/tokens/a%2fb/rotate"),
        ("POST", "/api/tokens/phone"),
        ("POST", "/api/tokens/phone/rotate/extra"),
        ("DELETE", "/api/tokens/%2e%2e"),
        ("DELETE", "/api/tokens/phone/rotate"),
        ("DELETE", "/api/tokens"),
    ];
    for (method, target) in refused {
        let a = raw(&l, method, target, &headers, Some("{}")).await;
        // The body is not printed: when this fails it may hold a ticket or token.
        assert!(
            !a.body.contains("ticket.") && a.json()["token"].is_null(),
            "{method} {target} returned a credential (status {}, body withheld)",
            a.status
        );
        assert!(
            matches!(a.status, 400 | 404),
            "{method} {target} must be refused by the launcher, got {} (error code {})",
            a.status,
            a.json()["error"]["code"]
        );
        assert!(a.json()["error"]["code"].is_string(), "{method} {target}: a JSON error: {}", a.body);
    }
    let after = audit_lines(&l).await;
    let reached: Vec<&String> = after[before..].iter().collect();
    assert!(reached.is_empty(), "the launcher contacted the gateway for refused paths: {reached:#?}");
    for line in &after {
        assert!(
            !line.contains("\"/auth/ticket\"") && !line.contains("\"/reload\""),
            "the runtime token reached another endpoint: {line}"
        );
    }

    // The allow-list still works: create, rotate (by name), revoke (by id and by name).
    let a = post_json(&l, "/api/tokens", Some(&cookie), json!({ "name": "phone", "scope": "chat" })).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let created = a.json();
    let id = created["id"].as_str().expect("created id").to_owned();
    let first = created["token"].as_str().expect("created token").to_owned();
    let a = raw(&l, "POST", "/api/tokens/phone/rotate?grace=evil", &headers, Some("{}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let rotated = a.json()["token"].as_str().expect("rotated token").to_owned();
    assert!(rotated.starts_with("pcl_") && rotated != first);
    let a = raw(&l, "DELETE", &format!("/api/tokens/{id}"), &headers, None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a =
        post_json(&l, "/api/tokens", Some(&cookie), json!({ "name": "tablet.v2", "scope": "chat" })).await;
    assert_eq!(a.status, 201, "{}", a.body);
    let a = raw(&l, "DELETE", "/api/tokens/tablet.v2", &headers, None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let listed = get(&l.at("/api/tokens"), Some(&cookie)).await.json();
    let states: Vec<&Value> = listed["named"]["tokens"]
        .as_array()
        .map(|t| t.iter().map(|t| &t["state"]).collect())
        .unwrap_or_default();
    assert!(states.iter().all(|s| *s != "active"), "both revoked: {listed}");
    // The audit check above is live: the allowed operations did reach the gateway.
    let audit = audit_lines(&l).await;
    for event in ["\"create\"", "\"rotate\"", "\"revoke\""] {
        assert!(audit[after.len()..].iter().any(|l| l.contains(event)), "no {event} in {audit:#?}");
    }
    // A configured credential is addressed by its fixed name (the gateway answers 409
    // for revoking it: it can only be rotated).
    let a = raw(&l, "DELETE", "/api/tokens/pico", &headers, None).await;
    assert_eq!(a.status, 409, "{}", a.body);
}

// ---------------------------------------------------------------------------------------
// Finding 12: handshake compatibility.

#[tokio::test(flavor = "multi_thread")]
async fn chat_proxy_echoes_the_first_offered_subprotocol() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;

    let home = home();
    let l = start(&home, &[]);
    l.gateway_record();
    let cookie = session(&l, &l.token()).await;
    let origin = origin_of(&l);
    let url = format!("ws://{}/pico/ws?session_id=sub%3Aprotocol-test&protocol=2", l.authority());
    for (offer, echoed) in
        [("token.whatever, pico", Some("token.whatever")), ("pico", Some("pico")), ("", None)]
    {
        let mut request = url.as_str().into_client_request().expect("request");
        let h = request.headers_mut();
        h.insert("cookie", HeaderValue::from_str(&cookie).expect("cookie header"));
        h.insert("origin", HeaderValue::from_str(&origin).expect("origin header"));
        if !offer.is_empty() {
            h.insert("sec-websocket-protocol", HeaderValue::from_static(offer));
        }
        let (mut socket, resp) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("handshake within the time limit")
            .unwrap_or_else(|e| {
                panic!("offering {offer:?} through the launcher: {e}\nlauncher stderr:\n{}", l.stderr())
            });
        let got = resp.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok());
        assert_eq!(got, echoed, "offer {offer:?}");
        let text = format!("round trip offering {offer:?}");
        let frame = json!({ "type": "message.send", "id": "s1", "payload": { "content": text } });
        socket.send(Message::text(frame.to_string())).await.expect("send");
        let deadline = tokio::time::Instant::now() + WAIT;
        let reply = loop {
            let msg = tokio::time::timeout_at(deadline, socket.next())
                .await
                .unwrap_or_else(|_| panic!("no echo within {WAIT:?} (offer {offer:?})"));
            let Some(Ok(Message::Text(t))) = msg else {
                if matches!(msg, Some(Ok(Message::Ping(_) | Message::Pong(_)))) {
                    continue;
                }
                panic!("offer {offer:?}: expected a frame, got {msg:?}");
            };
            let v: Value = serde_json::from_str(t.as_str()).expect("JSON frame");
            if v["type"] == "message.create" {
                break v;
            }
        };
        assert_eq!(reply["payload"]["content"], text.as_str());
        assert_eq!(reply["session_id"], "sub:protocol-test", "session_id decoded and re-encoded");
        let _ = socket.close(None).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pasted_tokens_are_trimmed_and_blank_ones_are_missing() {
    let home = home();
    let l = start(&home, &[]);
    let token = l.token();
    let own = origin_of(&l);

    for padded in [format!("  {token}"), format!("{token}\n"), format!("\t {token} \r\n")] {
        let a = login(&l, &padded).await;
        assert_eq!(a.status, 200, "JSON {:?}: {}", padded.replace(&token, "<token>"), a.body);
        let form = format!("token={}", padded.replace(' ', "%20").replace('\t', "%09").replace('\n', "%0A"))
            .replace('\r', "%0D");
        let a = send("POST", &l.at("/login"), None, &[("origin", &own)], Some(Body::Form(&form))).await;
        assert_eq!(
            (a.status, a.header("location").as_str()),
            (303, "/"),
            "form {}",
            form.replace(&token, "<t>")
        );
        assert!(a.cookie().is_some());
    }
    let a = raw(&l, "GET", &format!("/?token=%20{token}%0A&lang=en"), &[], None).await;
    assert_eq!((a.status, a.header("location")), (303, Some("/?lang=en")), "?token= with spaces: {a:?}");
    assert!(a.session_cookie().is_some(), "?token= with surrounding whitespace logs in");
    let a = raw(&l, "GET", &format!("/?token=+{token}+"), &[], None).await;
    assert!(a.session_cookie().is_some(), "`+` (a form-encoded space) is trimmed too: {a:?}");

    // All whitespace is a missing token: 400, not a failed login (it never counts toward
    // the limit, so 20 of them do not lock the address out).
    for i in 0..20 {
        let blank = [" ", "\t", "\n", " \t\r\n "][i % 4];
        let a = login(&l, blank).await;
        assert_eq!(a.status, 400, "{blank:?}: {}", a.body);
        assert_eq!(a.json()["error"]["code"], "missing_token", "{}", a.body);
        let form = format!("token={}", ["%20", "%09", "%0A", "+%09%0D%0A+"][i % 4]);
        let a = send("POST", &l.at("/login"), None, &[("origin", &own)], Some(Body::Form(&form))).await;
        assert_eq!(a.status, 400, "{form}: {}", a.body);
        let a = raw(&l, "GET", "/?token=%20%09", &[], None).await;
        assert_eq!(a.status, 303);
        assert_eq!(a.header("location"), Some("/login?error=missing"), "{a:?}");
        assert!(a.session_cookie().is_none());
    }
    assert_eq!(login(&l, &token).await.status, 200, "blank tokens were not counted as failures");
}
