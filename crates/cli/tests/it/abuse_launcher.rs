//! Launcher session-cookie decoding under abuse, black-box: thousands of forged cookies
//! derived from a real one (one character changed, truncated, halves swapped, re-signed
//! with a guessed key, not hex, oversized) are each refused with 401, never a 5xx, and
//! the real session keeps working. Stands in for a fuzz target until the launcher's
//! cookie decoder is reachable from `fuzz/` (RELIABILITY.md).

use crate::launcher_support::{get, home, session, start};
use crate::support::XorShift;

const FORGERIES: usize = 2_000;

fn forge(rng: &mut XorShift, value: &str) -> String {
    const HEX: &[u8] = b"0123456789abcdef";
    let (id, tag) = value.split_once('.').expect("cookie is id.tag");
    let random_hex = |rng: &mut XorShift, n: usize| -> String {
        (0..n).map(|_| char::from(HEX[(rng.next() % 16) as usize])).collect()
    };
    match rng.below(9) {
        0..=2 => {
            // One character changed (the most likely forgery to slip through a bad compare).
            let mut bytes = value.as_bytes().to_vec();
            let at = loop {
                let at = rng.below(bytes.len());
                if bytes[at] != b'.' {
                    break at;
                }
            };
            let old = bytes[at];
            bytes[at] = loop {
                let c = HEX[rng.below(16)];
                if c != old {
                    break c;
                }
            };
            String::from_utf8(bytes).expect("ASCII")
        }
        3 => value[..rng.below(value.len())].to_owned(),
        4 => format!("{tag}.{id}"),
        5 => format!("{id}.{}", random_hex(rng, 64)),
        6 => format!("{}.{tag}", random_hex(rng, 64)),
        7 => {
            let junk = ["", ".", "..", "zz.zz", "%00", "\u{7f}", "a.b.c", " . "];
            format!("{}{}", junk[rng.below(junk.len())], if rng.below(2) == 0 { value } else { "" })
        }
        _ => {
            let extra = 2 * (1 + rng.below(1024));
            format!("{id}{}.{tag}", random_hex(rng, extra))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_session_cookies_are_all_refused() {
    let home = home();
    let l = start(&home, &[]);
    let cookie = session(&l, &l.token()).await;
    let (name, value) = cookie.split_once('=').expect("name=value");
    let status_url = l.at("/api/gateway/status");
    assert_eq!(get(&status_url, Some(&cookie)).await.status, 200);

    let mut rng = XorShift::new(0x00c0_ffee_d00d);
    let forged: Vec<String> = (0..FORGERIES).map(|_| forge(&mut rng, value)).filter(|f| f != value).collect();
    let mut tasks = Vec::new();
    for chunk in forged.chunks(forged.len().div_ceil(16)) {
        let chunk: Vec<String> = chunk.to_vec();
        let (name, url) = (name.to_owned(), status_url.clone());
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for f in chunk {
                // Values a client cannot put in a header are not a test of the launcher.
                if http_header_ok(&f) {
                    statuses.push((get(&url, Some(&format!("{name}={f}"))).await.status, f));
                }
            }
            statuses
        }));
    }
    let mut tried = 0;
    for t in tasks {
        for (status, f) in t.await.expect("worker") {
            tried += 1;
            assert_eq!(status, 401, "forged cookie {f:?} got {status}");
        }
    }
    // The real session still works and the launcher is alive.
    assert_eq!(get(&status_url, Some(&cookie)).await.status, 200);
    eprintln!("launcher cookies: {tried} forgeries refused with 401; the real session still served");
    assert!(tried > FORGERIES * 9 / 10);
}

fn http_header_ok(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}
