//! `.security.yml` validation over arbitrary text: never a panic, never a hang (libFuzzer's
//! `-timeout` turns a hang into a crash), never runaway memory (`-rss_limit_mb`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("/fuzz/.security.yml");
    if let Err(e) = picoclaw_config::validate_security_text(path, text) {
        let _ = e.to_string();
    }
});
