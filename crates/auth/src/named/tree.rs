//! Reading and writing the `.security.yml` trees: `tokens:` records and `rotated:`
//! digests, each entry parsed with typed, validated fields. An error names the key (for
//! example `tokens[2].scope`) and never the value found: serde's quoted values are blanked,
//! in case a token was pasted into the wrong field.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::TokenStoreError;
use super::fixed::{FixedCredential, MAX_ROTATED, RotatedDigest};
use super::format::TokenId;
use super::record::{Digest, PreviousSecret, TokenName, TokenRecord};
use super::time::Timestamp;
use crate::verify::Scope;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordWire {
    id: String,
    name: String,
    scope: String,
    sha256: String,
    created: TimeWire,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<TimeWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_used: Option<TimeWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked: Option<TimeWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rotated: Option<TimeWire>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    previous: Vec<PreviousWire>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviousWire {
    sha256: String,
    valid_until: TimeWire,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum TimeWire {
    Unix(u64),
    Text(String),
}

impl TimeWire {
    fn of(t: Timestamp) -> TimeWire {
        TimeWire::Text(t.to_string())
    }

    fn parse(&self, key: &str) -> Result<Timestamp, TokenStoreError> {
        match self {
            TimeWire::Unix(n) => Ok(Timestamp::from_unix(*n)),
            TimeWire::Text(s) => Timestamp::parse(s).ok_or_else(|| {
                invalid(key, "expected an RFC 3339 time such as 2026-01-31T12:00:00Z, or Unix seconds")
            }),
        }
    }
}

pub(crate) fn invalid(key: &str, message: impl Into<String>) -> TokenStoreError {
    TokenStoreError::Invalid { key: key.to_owned(), message: message.into() }
}

/// serde's messages quote unexpected string values, and a user may have pasted a token
/// into the wrong field: blank out anything between double quotes.
pub(crate) fn redact_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside = false;
    let mut escaped = false;
    for c in message.chars() {
        if inside {
            // serde quotes with `{:?}`: a `\"` inside is part of the value, not its end.
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => inside = false,
                _ => {}
            }
        } else if c == '"' {
            out.push_str("[value]");
            inside = true;
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn from_value<T: serde::de::DeserializeOwned>(
    value: &Value,
    key: &str,
) -> Result<T, TokenStoreError> {
    T::deserialize(value).map_err(|e| invalid(key, redact_quoted(&e.to_string())))
}

fn digest_field(s: &str, key: &str) -> Result<Digest, TokenStoreError> {
    Digest::parse(s).ok_or_else(|| {
        invalid(key, "expected the 64 hex characters of a SHA-256 digest (never the token itself)")
    })
}

fn scope_field(s: &str, key: &str) -> Result<Scope, TokenStoreError> {
    match s {
        "read" => Ok(Scope::Read),
        "chat" => Ok(Scope::Chat),
        "admin" => Ok(Scope::Admin),
        _ => Err(invalid(key, "expected `read`, `chat` or `admin`")),
    }
}

fn record_from_wire(w: RecordWire, at: &str) -> Result<TokenRecord, TokenStoreError> {
    let key = |field: &str| format!("{at}.{field}");
    let time = |t: &Option<TimeWire>, field: &str| t.as_ref().map(|t| t.parse(&key(field))).transpose();
    let mut previous = Vec::with_capacity(w.previous.len());
    for (i, p) in w.previous.iter().enumerate() {
        let pk = format!("{at}.previous[{i}]");
        previous.push(PreviousSecret {
            sha256: digest_field(&p.sha256, &format!("{pk}.sha256"))?,
            valid_until: p.valid_until.parse(&format!("{pk}.valid_until"))?,
        });
    }
    Ok(TokenRecord {
        id: TokenId::parse(&w.id)
            .map_err(|_| invalid(&key("id"), "expected 12 characters of a-z and 2-7"))?,
        name: TokenName::parse(&w.name).map_err(|e| invalid(&key("name"), e.to_string()))?,
        scope: scope_field(&w.scope, &key("scope"))?,
        sha256: digest_field(&w.sha256, &key("sha256"))?,
        created: w.created.parse(&key("created"))?,
        expires: time(&w.expires, "expires")?,
        last_used: time(&w.last_used, "last_used")?,
        revoked: time(&w.revoked, "revoked")?,
        rotated: time(&w.rotated, "rotated")?,
        previous,
    })
}

fn record_to_wire(r: &TokenRecord) -> RecordWire {
    RecordWire {
        id: r.id.to_string(),
        name: r.name.to_string(),
        scope: r.scope.to_string(),
        sha256: hex::encode(r.sha256.0),
        created: TimeWire::of(r.created),
        expires: r.expires.map(TimeWire::of),
        last_used: r.last_used.map(TimeWire::of),
        revoked: r.revoked.map(TimeWire::of),
        rotated: r.rotated.map(TimeWire::of),
        previous: r
            .previous
            .iter()
            .map(|p| PreviousWire {
                sha256: hex::encode(p.sha256.0),
                valid_until: TimeWire::of(p.valid_until),
            })
            .collect(),
    }
}

/// One entry of `tokens:` (at `at`, e.g. `tokens[2]`) as a typed record.
pub(crate) fn record_from_value(entry: &Value, at: &str) -> Result<TokenRecord, TokenStoreError> {
    let wire: RecordWire = from_value(entry, at)?;
    record_from_wire(wire, at)
}

/// A record as its `tokens:` entry.
pub(crate) fn record_to_value(record: &TokenRecord) -> Value {
    serde_json::to_value(record_to_wire(record)).unwrap_or(Value::Null)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotatedWire {
    credential: String,
    sha256: String,
    valid_until: TimeWire,
}

/// `.security.yml` `rotated:` — old digests of rotated fixed credentials.
pub(crate) fn rotated_from_tree(tree: &Value) -> Result<Vec<RotatedDigest>, TokenStoreError> {
    let list = match tree.get("rotated") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid("rotated", "expected a list of {credential, sha256, valid_until}")),
    };
    if list.len() > MAX_ROTATED {
        return Err(invalid("rotated", format!("at most {MAX_ROTATED} entries are supported")));
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let at = format!("rotated[{i}]");
        let w: RotatedWire = from_value(entry, &at)?;
        out.push(RotatedDigest {
            credential: FixedCredential::from_key(&w.credential).ok_or_else(|| {
                invalid(&format!("{at}.credential"), "expected `gateway.token` or `channels.pico.token`")
            })?,
            sha256: digest_field(&w.sha256, &format!("{at}.sha256"))?,
            valid_until: w.valid_until.parse(&format!("{at}.valid_until"))?,
        });
    }
    Ok(out)
}

/// Writes `rotated` into the tree, dropping entries whose grace ended (and the key when
/// none is left).
pub(crate) fn rotated_into(tree: &mut Value, entries: &[RotatedDigest], now: Timestamp) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| e.valid_until > now)
        .map(|e| {
            serde_json::to_value(RotatedWire {
                credential: e.credential.key().to_owned(),
                sha256: hex::encode(e.sha256.0),
                valid_until: TimeWire::of(e.valid_until),
            })
            .unwrap_or(Value::Null)
        })
        .collect();
    if let Value::Object(map) = tree {
        if list.is_empty() {
            map.remove("rotated");
        } else {
            map.insert("rotated".to_owned(), Value::Array(list));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::named::TokenSet;
    use serde_json::json;

    #[test]
    fn quoted_values_are_blanked_even_with_escaped_quotes_inside() {
        // Noticed while extending the named_token fuzz target: a `"` inside a value used to
        // end the blanked region early, and the rest of the value was printed.
        let err = serde_json::from_value::<u8>(json!("a\"canary\\\"canary")).unwrap_err().to_string();
        assert!(err.contains("canary"), "the test needs serde to quote the value: {err}");
        let redacted = redact_quoted(&err);
        assert!(!redacted.contains("canary"), "{redacted}");
        assert!(redacted.contains("[value]") && redacted.contains("expected u8"), "{redacted}");
    }

    #[test]
    fn malformed_records_name_the_key_and_never_echo_values() {
        let canary = "pcl_canarycanary_secretsecretsecretsecretsecretsecretsecret_aaaaaa";
        let cases = [
            (json!({"tokens": "x"}), "`tokens`"),
            (json!({"tokens": [{"id": "abc"}]}), "tokens[0]"),
            (
                json!({"tokens": [{"id": "aaaaaaaaaaaa", "name": "n", "scope": "chat", "sha256": canary, "created": 1}]}),
                "tokens[0].sha256",
            ),
            (
                json!({"tokens": [{"id": "aaaaaaaaaaaa", "name": "n", "scope": "root", "sha256": "00", "created": 1}]}),
                "tokens[0].scope",
            ),
            (
                json!({"tokens": [{"id": "aaaaaaaaaaaa", "name": "n", "scope": "chat", "sha256": hex::encode([0u8; 32]), "created": 1, "previous": canary}]}),
                "tokens[0]",
            ),
            (
                json!({"rotated": [{"credential": "gateway.token", "sha256": canary, "valid_until": 5}]}),
                "rotated[0].sha256",
            ),
        ];
        for (tree, key) in cases {
            let err = TokenSet::from_tree(&tree)
                .map(|_| ())
                .and_then(|()| rotated_from_tree(&tree).map(|_| ()))
                .unwrap_err()
                .to_string();
            assert!(err.contains(key), "{err} should name {key}");
            assert!(!err.contains("canary"), "{err} echoes a value");
        }
    }
}
