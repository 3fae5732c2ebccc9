//! Inputs found by the fuzz targets in `fuzz/` (see RELIABILITY.md), kept as regression
//! tests.

use std::time::Duration;

use picoclaw_auth::named::{Timestamp, TokenSet};
use serde_json::json;

/// fuzz target `token_records`: a record whose `valid_until` was a huge number of Unix
/// seconds loaded, but was written back as a year-57 million RFC 3339 time that no longer
/// loaded — picoclaw would have written a `.security.yml` it then refused to read.
#[test]
fn far_future_times_written_by_picoclaw_load_again() {
    let zeros = "0".repeat(64);
    let tree = json!({ "tokens": [{
        "id": "abcdefghijkl",
        "name": "phone",
        "scope": "chat",
        "sha256": zeros,
        "created": "2026-01-01T00:00:00Z",
        "expires": 1_900_000_000_000_000_000_u64,
        "previous": [{ "sha256": "1".repeat(64), "valid_until": 1_800_000_000_000_000_000_u64 }],
    }]});
    let set = TokenSet::from_tree(&tree).expect("loads");
    let mut written = json!({});
    set.write_into(&mut written, Timestamp::from_unix(0));
    let again = TokenSet::from_tree(&written).expect("what picoclaw wrote loads again");
    let mut rewritten = json!({});
    again.write_into(&mut rewritten, Timestamp::from_unix(0));
    assert_eq!(written, rewritten);
    assert_eq!(written["tokens"][0]["previous"][0]["valid_until"], "9999-12-31T23:59:59Z");
}

#[test]
fn every_timestamp_displays_as_text_that_parses_back() {
    for t in [
        Timestamp::from_unix(0),
        Timestamp::from_unix(1_763_782_824),
        Timestamp::from_unix(253_402_300_799),
        Timestamp::from_unix(253_402_300_800),
        Timestamp::from_unix(u64::MAX),
        Timestamp::from_unix(1).after(Duration::MAX),
        Timestamp::parse("99999999999999999999").unwrap_or(Timestamp::from_unix(0)),
    ] {
        let text = t.to_string();
        assert_eq!(Timestamp::parse(&text), Some(t), "{text}");
    }
}
