//! `config.json` validation over arbitrary text: never a panic, and whatever is accepted is
//! a JSON object (or blank, which means "no settings").
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("/fuzz/config.json");
    match picoclaw_config::validate_config_text(path, text) {
        // A blank file means "no settings" by design.
        Ok(_) if text.trim().is_empty() => {}
        Ok(_) => {
            // Syntax only: a number too large for f64 under an unknown (ignored) key is
            // accepted like the rest of that key, so `Value` is too strict a check.
            serde_json::from_str::<serde::de::IgnoredAny>(text).expect("accepted text is JSON");
            assert!(text.trim_start().starts_with('{'), "accepted config.json is not an object");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
