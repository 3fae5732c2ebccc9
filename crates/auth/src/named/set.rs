//! The set of named-token records of one `.security.yml` and its operations: create,
//! revoke, rotate, last-use times. Ids are unique, names unique among tokens that are not
//! revoked, and the set is bounded.

use std::path::Path;
use std::time::Duration;

use picoclaw_credentials::Secret;
use picoclaw_credentials::store::read_security_tree;
use serde_json::{Map, Value};

use super::error::TokenStoreError;
use super::format::{self, TokenId};
use super::record::{Digest, PreviousSecret, TokenName, TokenRecord};
use super::time::Timestamp;
use super::tree::{invalid, record_from_value, record_to_value};
use crate::verify::Scope;

/// The most named tokens one `.security.yml` may hold (verification stays O(1); this
/// bounds the file and the memory of the store).
pub const MAX_TOKENS: usize = 10_000;
/// The most old secrets kept per token during rotation grace.
pub const MAX_PREVIOUS: usize = 4;

/// All named-token records of one `.security.yml`, validated: ids unique, names unique
/// among non-revoked tokens, at most [`MAX_TOKENS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSet {
    records: Vec<TokenRecord>,
}

impl TokenSet {
    /// From the whole `.security.yml` tree (its `tokens` key).
    pub fn from_tree(tree: &Value) -> Result<TokenSet, TokenStoreError> {
        TokenSet::from_tokens(tree.get("tokens"))
    }

    /// From the `tokens` value alone (e.g. `Layers::security_tokens()`); `None` or null
    /// is an empty set.
    pub fn from_tokens(tokens: Option<&Value>) -> Result<TokenSet, TokenStoreError> {
        let list = match tokens {
            None | Some(Value::Null) => return Ok(TokenSet::default()),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(invalid("tokens", "expected a list of token records")),
        };
        if list.len() > MAX_TOKENS {
            return Err(invalid("tokens", format!("at most {MAX_TOKENS} records are supported")));
        }
        let mut set = TokenSet { records: Vec::with_capacity(list.len()) };
        let mut ids = std::collections::HashSet::with_capacity(list.len());
        let mut names = std::collections::HashSet::new();
        for (i, entry) in list.iter().enumerate() {
            let at = format!("tokens[{i}]");
            let record = record_from_value(entry, &at)?;
            if record.previous.len() > MAX_PREVIOUS {
                return Err(invalid(&format!("{at}.previous"), format!("at most {MAX_PREVIOUS} entries")));
            }
            if !ids.insert(record.id.clone()) {
                return Err(invalid(&format!("{at}.id"), format!("id {} appears twice", record.id)));
            }
            if record.revoked.is_none() && !names.insert(record.name.clone()) {
                return Err(invalid(
                    &format!("{at}.name"),
                    format!("name `{}` is used by two active tokens", record.name),
                ));
            }
            set.records.push(record);
        }
        Ok(set)
    }

    /// Reads `.security.yml` at `path` (empty when missing).
    pub fn load(path: &Path) -> Result<TokenSet, TokenStoreError> {
        TokenSet::from_tree(&read_security_tree(path)?)
    }

    /// Every record, in file order.
    pub fn records(&self) -> &[TokenRecord] {
        &self.records
    }

    /// By id, else by name (an active token's name wins over revoked ones).
    pub fn find(&self, id_or_name: &str) -> Option<&TokenRecord> {
        self.index(id_or_name).map(|i| &self.records[i])
    }

    fn index(&self, id_or_name: &str) -> Option<usize> {
        if let Some(i) = self.records.iter().position(|r| r.id.as_str() == id_or_name) {
            return Some(i);
        }
        let by_name = |revoked: bool| {
            self.records.iter().rposition(|r| r.name.as_str() == id_or_name && r.revoked.is_some() == revoked)
        };
        by_name(false).or_else(|| by_name(true))
    }

    /// Creates a token; returns its record and the token (shown once, never stored).
    /// Prefer [`super::TokenFile::create`], which also locks, reads and writes the file.
    pub fn create(
        &mut self,
        name: TokenName,
        scope: Scope,
        expires: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<(TokenRecord, Secret), TokenStoreError> {
        if self.records.len() >= MAX_TOKENS {
            return Err(TokenStoreError::TooMany);
        }
        if self.records.iter().any(|r| r.revoked.is_none() && r.name == name) {
            return Err(TokenStoreError::NameTaken(name.to_string()));
        }
        let (id, secret) = loop {
            let (id, secret) = format::generate()?;
            if !self.records.iter().any(|r| r.id == id) {
                break (id, secret);
            }
        };
        let record = TokenRecord {
            id,
            name,
            scope,
            sha256: Digest::of(&secret),
            created: now,
            expires,
            last_used: None,
            revoked: None,
            rotated: None,
            previous: Vec::new(),
        };
        self.records.push(record.clone());
        Ok((record, secret))
    }

    /// Revokes a token at once (its current and any grace secrets stop working).
    pub fn revoke(&mut self, id_or_name: &str, now: Timestamp) -> Result<TokenRecord, TokenStoreError> {
        let i = self.index(id_or_name).ok_or_else(|| TokenStoreError::NotFound(id_or_name.to_owned()))?;
        let r = &mut self.records[i];
        if r.revoked.is_some() {
            return Err(TokenStoreError::Revoked { id: r.id.to_string(), name: r.name.to_string() });
        }
        r.revoked = Some(now);
        r.previous.clear();
        Ok(r.clone())
    }

    /// Gives a token a new secret with the same id, name, scope and expiry. The old secret
    /// keeps working until `now + grace` (not at all when `grace` is zero).
    pub fn rotate(
        &mut self,
        id_or_name: &str,
        grace: Duration,
        now: Timestamp,
    ) -> Result<(TokenRecord, Secret), TokenStoreError> {
        let i = self.index(id_or_name).ok_or_else(|| TokenStoreError::NotFound(id_or_name.to_owned()))?;
        let r = &mut self.records[i];
        if r.revoked.is_some() {
            return Err(TokenStoreError::Revoked { id: r.id.to_string(), name: r.name.to_string() });
        }
        let secret = format::generate_for(&r.id)?;
        r.previous.retain(|p| p.valid_until > now);
        if !grace.is_zero() {
            r.previous.push(PreviousSecret { sha256: r.sha256, valid_until: now.after(grace) });
        }
        // Keep the newest grace secrets only: the bound on what one record may accept.
        let excess = r.previous.len().saturating_sub(MAX_PREVIOUS);
        r.previous.drain(..excess);
        r.sha256 = Digest::of(&secret);
        r.rotated = Some(now);
        Ok((r.clone(), secret))
    }

    /// Records use times (from [`super::NamedTokenStore::take_last_used`]); unknown ids are
    /// ignored, older times never replace newer ones.
    pub fn apply_last_used(&mut self, updates: &[(TokenId, Timestamp)]) {
        for (id, at) in updates {
            if let Some(r) = self.records.iter_mut().find(|r| &r.id == id)
                && r.last_used.is_none_or(|t| t < *at)
            {
                r.last_used = Some(*at);
            }
        }
    }

    /// Writes the records into `tree["tokens"]`, dropping grace secrets that ended.
    pub fn write_into(&self, tree: &mut Value, now: Timestamp) {
        let list: Vec<Value> = self
            .records
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.previous.retain(|p| p.valid_until > now);
                record_to_value(&r)
            })
            .collect();
        if let Value::Object(map) = tree {
            map.insert("tokens".to_owned(), Value::Array(list));
        } else {
            let mut map = Map::new();
            map.insert("tokens".to_owned(), Value::Array(list));
            *tree = Value::Object(map);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> Timestamp {
        Timestamp::from_unix(1_800_000_000)
    }

    #[test]
    fn create_find_write_read_round_trip() {
        let mut set = TokenSet::default();
        let (rec, secret) = set
            .create(
                TokenName::parse("ci").unwrap(),
                Scope::Chat,
                Some(now().after(Duration::from_secs(60))),
                now(),
            )
            .unwrap();
        assert_eq!(set.find("ci").unwrap().id, rec.id);
        assert_eq!(set.find(rec.id.as_str()).unwrap().name.as_str(), "ci");
        let mut tree = json!({"channels": {"pico": {"token": "x"}}});
        set.write_into(&mut tree, now());
        let text = tree.to_string();
        assert!(!text.contains(secret.expose()), "the token itself is never stored");
        assert!(text.contains(&hex::encode(secret.digest())));
        assert_eq!(TokenSet::from_tree(&tree).unwrap(), set);
        assert_eq!(tree["channels"]["pico"]["token"], "x", "other keys are kept");
    }

    #[test]
    fn names_are_unique_among_active_tokens_and_validated() {
        let mut set = TokenSet::default();
        let name = TokenName::parse("phone").unwrap();
        set.create(name.clone(), Scope::Chat, None, now()).unwrap();
        assert!(matches!(
            set.create(name.clone(), Scope::Chat, None, now()),
            Err(TokenStoreError::NameTaken(_))
        ));
        set.revoke("phone", now()).unwrap();
        let (again, _) = set.create(name, Scope::Admin, None, now()).unwrap();
        assert_eq!(set.find("phone").unwrap().id, again.id, "the active one wins by name");
        for bad in ["", "pico", "gateway", "has space", "abcdefghijkl", &"x".repeat(65)] {
            assert!(TokenName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn revoke_twice_and_rotate_revoked_are_errors() {
        let mut set = TokenSet::default();
        set.create(TokenName::parse("a").unwrap(), Scope::Chat, None, now()).unwrap();
        set.revoke("a", now()).unwrap();
        assert!(matches!(set.revoke("a", now()), Err(TokenStoreError::Revoked { .. })));
        assert!(matches!(set.rotate("a", Duration::ZERO, now()), Err(TokenStoreError::Revoked { .. })));
        assert!(matches!(set.revoke("zzz", now()), Err(TokenStoreError::NotFound(_))));
    }

    #[test]
    fn rotate_keeps_id_name_scope_and_bounds_previous() {
        let mut set = TokenSet::default();
        let (first, old) = set.create(TokenName::parse("a").unwrap(), Scope::Admin, None, now()).unwrap();
        let (rec, new) = set.rotate("a", Duration::from_secs(60), now()).unwrap();
        assert_eq!((&rec.id, &rec.name, rec.scope), (&first.id, &first.name, first.scope));
        assert_ne!(old, new);
        assert_eq!(
            rec.previous,
            vec![PreviousSecret { sha256: first.sha256, valid_until: now().after(Duration::from_secs(60)) }]
        );
        for _ in 0..10 {
            set.rotate("a", Duration::from_secs(60), now()).unwrap();
        }
        assert_eq!(set.find("a").unwrap().previous.len(), MAX_PREVIOUS);
    }

    #[test]
    fn last_used_only_moves_forward() {
        let mut set = TokenSet::default();
        let (rec, _) = set.create(TokenName::parse("a").unwrap(), Scope::Chat, None, now()).unwrap();
        set.apply_last_used(&[(rec.id.clone(), now().after(Duration::from_secs(5)))]);
        set.apply_last_used(&[(rec.id.clone(), now())]);
        assert_eq!(set.find("a").unwrap().last_used, Some(now().after(Duration::from_secs(5))));
    }
}
