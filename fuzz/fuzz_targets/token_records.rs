//! Named-token records (`tokens:` in `.security.yml`) over arbitrary JSON: loading never
//! panics, whatever loads can back a store, and verifying arbitrary text against that
//! store never panics and never accepts a string that is not a well-formed token.
#![no_main]

use libfuzzer_sys::fuzz_target;
use picoclaw_auth::NamedTokens;
use picoclaw_auth::named::{GraceDigests, NamedTokenStore, TokenSet, format};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The records, then (after a NUL) a presented token.
    let (records, presented) = text.split_once('\0').unwrap_or((text, "pcl_"));
    let Ok(tree) = serde_json::from_str::<serde_json::Value>(records) else { return };
    let _ = GraceDigests::from_tree(&tree).map(|g| g.verify(presented));
    let set = match TokenSet::from_tree(&tree) {
        Ok(set) => set,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let store = NamedTokenStore::new(&set);
    if let Some(Ok(_)) = store.verify(presented) {
        assert!(format::parse(presented).is_ok(), "a malformed token was accepted");
    }
    // Writing, loading and writing again gives the same records.
    let now = picoclaw_auth::named::Timestamp::from_unix(0);
    let mut first = serde_json::json!({});
    set.write_into(&mut first, now);
    let again = TokenSet::from_tree(&first).expect("records written by picoclaw load again");
    let mut second = serde_json::json!({});
    again.write_into(&mut second, now);
    assert_eq!(first, second, "records changed in a write/load round trip");
});
