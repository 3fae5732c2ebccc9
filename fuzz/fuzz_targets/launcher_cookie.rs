//! Launcher session cookies: the value decoder and the `Cookie` header parser over
//! arbitrary text; nothing but the issued cookie may ever be accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        picoclaw_launcher::fuzzing::cookie(text);
    }
});
