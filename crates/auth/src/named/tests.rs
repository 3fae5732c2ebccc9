//! Tests of the named-token store, grace digests and their use by the verifier.

use std::time::Duration;

use picoclaw_config::{Flags, Layers, MapEnv, Paths, Settings};
use picoclaw_credentials::Secret;
use serde_json::json;

use super::*;
use crate::verify::{Lapse, Scope, Verifier};

fn t0() -> Timestamp {
    Timestamp::from_unix(1_800_000_000)
}

fn no_creds() -> Credentials {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::at(dir.path());
    let layers = Layers::load(&paths, &MapEnv::new(), &Flags::new()).unwrap();
    Credentials::resolve(&layers, &Settings::resolve(&layers).unwrap()).unwrap()
}

fn store(set: &TokenSet, clock: &ManualClock) -> NamedTokenStore {
    NamedTokenStore::with_clock(set, Arc::new(clock.clone()))
}

#[test]
fn create_verify_revoke_rejected() {
    let clock = ManualClock::new(t0());
    let mut set = TokenSet::default();
    let (rec, token) = set.create(TokenName::parse("phone").unwrap(), Scope::Chat, None, t0()).unwrap();
    let s = store(&set, &clock);
    let p = s.verify(token.expose()).unwrap().unwrap();
    assert_eq!(
        (p.kind, p.id.as_str(), p.name.as_str(), p.scope),
        (CredentialKind::Named, rec.id.as_str(), "phone", Scope::Chat)
    );
    assert_eq!(p.fingerprint, token.fingerprint().to_string());
    assert_eq!(p.source, NAMED_SOURCE);
    assert_eq!(s.take_last_used(), vec![(rec.id.clone(), t0())]);
    assert!(s.take_last_used().is_empty(), "drained");

    set.revoke("phone", t0()).unwrap();
    let s = store(&set, &clock);
    assert_eq!(
        s.verify(token.expose()),
        Some(Err(AuthError::Expired { id: rec.id.to_string(), state: Lapse::Revoked }))
    );
    assert!(s.still_valid(&p).is_err());
}

#[test]
fn wrong_secret_with_a_real_id_is_invalid_and_typos_are_malformed() {
    let clock = ManualClock::new(t0());
    let mut set = TokenSet::default();
    let (_, token) = set.create(TokenName::parse("a").unwrap(), Scope::Admin, None, t0()).unwrap();
    let s = store(&set, &clock);
    // Same id, different (well-formed) secret.
    let (_, other) =
        TokenSet::default().create(TokenName::parse("b").unwrap(), Scope::Admin, None, t0()).unwrap();
    let rec_id = format::parse(token.expose()).unwrap();
    let forged = format::generate_for(&rec_id).unwrap();
    assert_eq!(s.verify(forged.expose()), Some(Err(AuthError::Invalid)));
    assert_eq!(s.verify(other.expose()), Some(Err(AuthError::Invalid)), "unknown id");
    let mut typo = token.expose().to_owned();
    typo.pop();
    assert!(matches!(s.verify(&typo), Some(Err(AuthError::Malformed(_)))));
    assert_eq!(s.verify("not-a-named-token"), None, "left to the fixed credentials");
}

#[test]
fn expiry_is_enforced() {
    let clock = ManualClock::new(t0());
    let mut set = TokenSet::default();
    let (rec, token) = set
        .create(TokenName::parse("a").unwrap(), Scope::Chat, Some(t0().after(Duration::from_secs(60))), t0())
        .unwrap();
    let s = store(&set, &clock);
    let p = s.verify(token.expose()).unwrap().unwrap();
    assert_eq!(s.next_deadline(), Some(t0().after(Duration::from_secs(60))));
    clock.advance(Duration::from_secs(60));
    assert_eq!(
        s.verify(token.expose()),
        Some(Err(AuthError::Expired { id: rec.id.to_string(), state: Lapse::Expired }))
    );
    assert!(s.still_valid(&p).is_err());
}

#[test]
fn rotate_with_grace_old_and_new_work_then_old_is_rejected() {
    let clock = ManualClock::new(t0());
    let mut set = TokenSet::default();
    let (rec, old) = set.create(TokenName::parse("ci").unwrap(), Scope::Admin, None, t0()).unwrap();
    let (_, new) = set.rotate("ci", Duration::from_secs(2), t0()).unwrap();
    let s = store(&set, &clock);
    let via_old = s.verify(old.expose()).unwrap().unwrap();
    let via_new = s.verify(new.expose()).unwrap().unwrap();
    assert_eq!(via_old.id, via_new.id);
    assert_ne!(via_old.fingerprint, via_new.fingerprint, "the fingerprint names the secret used");
    assert!(s.still_valid(&via_old).is_ok());
    assert_eq!(s.next_deadline(), Some(t0().after(Duration::from_secs(2))));
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        s.verify(old.expose()),
        Some(Err(AuthError::Expired { id: rec.id.to_string(), state: Lapse::Rotated }))
    );
    assert!(s.verify(new.expose()).unwrap().is_ok());
    assert_eq!(
        s.still_valid(&via_old),
        Err(AuthError::Expired { id: rec.id.to_string(), state: Lapse::Rotated })
    );
    assert!(s.still_valid(&via_new).is_ok());
}

#[test]
fn rotate_without_grace_stops_the_old_secret_at_once() {
    let clock = ManualClock::new(t0());
    let mut set = TokenSet::default();
    let (_, old) = set.create(TokenName::parse("ci").unwrap(), Scope::Admin, None, t0()).unwrap();
    set.rotate("ci", Duration::ZERO, t0()).unwrap();
    let s = store(&set, &clock);
    assert_eq!(s.verify(old.expose()), Some(Err(AuthError::Invalid)), "no digest of it is kept");
}

#[test]
fn records_survive_a_write_read_cycle_through_the_store() {
    let clock = ManualClock::new(t0());
    let mut set = TokenSet::default();
    let (_, token) = set.create(TokenName::parse("a").unwrap(), Scope::Chat, None, t0()).unwrap();
    let mut tree = json!({});
    set.write_into(&mut tree, t0());
    let creds = no_creds();
    let stored = StoredCredentials::from_tree(&tree, &creds, true, Arc::new(clock)).unwrap();
    assert!(stored.verify(token.expose()).unwrap().is_ok());
}

#[test]
fn grace_digests_accept_old_fixed_values_until_their_deadline() {
    let clock = ManualClock::new(t0());
    let old_pico = Secret::new("old-pico-token");
    let old_gw = Secret::new("old-gateway-token");
    let mut grace = GraceDigests::from_tree(&json!({})).unwrap().with_clock(Arc::new(clock.clone()));
    grace.push(FixedCredential::Pico, &old_pico, t0().after(Duration::from_secs(2)));
    grace.push(FixedCredential::Gateway, &old_gw, t0().after(Duration::from_secs(600)));
    let mut tree = json!({"gateway": {"token": "x"}});
    grace.write_into(&mut tree);
    let text = tree.to_string();
    assert!(!text.contains("old-pico-token") && text.contains("channels.pico.token"));

    let stored = StoredCredentials::from_tree(&tree, &no_creds(), true, Arc::new(clock.clone())).unwrap();
    let p = stored.verify("old-pico-token").unwrap().unwrap();
    assert_eq!((p.kind, p.scope, p.source.as_str()), (CredentialKind::Pico, Scope::Chat, ROTATED_SOURCE));
    let g = stored.verify("old-gateway-token").unwrap().unwrap();
    assert_eq!((g.kind, g.scope), (CredentialKind::Gateway, Scope::Admin));
    assert_eq!(stored.verify("something-else"), None);
    assert_eq!(stored.next_deadline(), Some(t0().after(Duration::from_secs(2))));
    assert_eq!(stored.still_valid(&p), Some(Ok(())));

    clock.advance(Duration::from_secs(2));
    assert_eq!(stored.verify("old-pico-token"), None, "past grace: left to the fixed set, which rejects it");
    assert_eq!(
        stored.still_valid(&p),
        Some(Err(AuthError::Expired { id: "pico".into(), state: Lapse::Rotated }))
    );
    assert!(stored.verify("old-gateway-token").unwrap().is_ok());

    // Pruned on the next write.
    let mut tree2 = tree.clone();
    stored.grace.write_into(&mut tree2);
    assert_eq!(tree2["rotated"].as_array().map(Vec::len), Some(1));

    // Disabled pico channel: its old value is not accepted either.
    let off =
        StoredCredentials::from_tree(&tree, &no_creds(), false, Arc::new(ManualClock::new(t0()))).unwrap();
    assert_eq!(off.verify("old-pico-token"), None);
}

#[test]
fn old_value_put_back_by_hand_is_not_treated_as_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let paths = Paths::at(dir.path());
    let env = MapEnv::new().with("PICOCLAW_CHANNELS_PICO_TOKEN", "same-again");
    let layers = Layers::load(&paths, &env, &Flags::new()).unwrap();
    let creds = Credentials::resolve(&layers, &Settings::resolve(&layers).unwrap()).unwrap();
    let mut grace = GraceDigests::from_tree(&json!({})).unwrap();
    grace.push(
        FixedCredential::Pico,
        &Secret::new("same-again"),
        Timestamp::now().after(Duration::from_secs(60)),
    );
    let mut tree = json!({});
    grace.write_into(&mut tree);
    let stored = StoredCredentials::from_tree(&tree, &creds, true, Arc::new(SystemClock)).unwrap();
    assert_eq!(stored.verify("same-again"), None);
}

#[test]
fn verifier_with_stored_credentials_checks_scope() {
    let clock = ManualClock::new(t0());
    let mut set = TokenSet::default();
    let (_, chat) = set.create(TokenName::parse("c").unwrap(), Scope::Chat, None, t0()).unwrap();
    let (_, admin) = set.create(TokenName::parse("a").unwrap(), Scope::Admin, None, t0()).unwrap();
    let mut tree = json!({});
    set.write_into(&mut tree, t0());
    let stored = StoredCredentials::from_tree(&tree, &no_creds(), true, Arc::new(clock)).unwrap();
    let v = Verifier::new(&no_creds(), &Secret::new("rt"), true).with_named(Arc::new(stored));
    assert!(v.verify(chat.expose(), Scope::Chat).is_ok());
    assert!(matches!(v.verify(chat.expose(), Scope::Admin), Err(AuthError::Scope { .. })));
    assert!(v.verify(admin.expose(), Scope::Admin).is_ok());
    assert_eq!(v.verify("rt", Scope::Admin).map(|p| p.kind), Ok(CredentialKind::Runtime));
}

#[test]
fn suspended_named_tokens_are_refused_and_so_is_all_that_derives_from_them() {
    use crate::verify::NamedState;
    let clock = ManualClock::new(t0());
    let mut set = TokenSet::default();
    let (_, chat) = set.create(TokenName::parse("c").unwrap(), Scope::Chat, None, t0()).unwrap();
    let mut tree = json!({});
    set.write_into(&mut tree, t0());
    let stored = StoredCredentials::from_tree(&tree, &no_creds(), true, Arc::new(clock)).unwrap();
    let current = Verifier::new(&no_creds(), &Secret::new("rt"), true).with_named(Arc::new(stored));
    let principal = current.verify(chat.expose(), Scope::Chat).unwrap();
    let suspended = current.clone().with_named_state(NamedState::Suspended);
    let refused = suspended.verify(chat.expose(), Scope::Chat).unwrap_err();
    assert!(matches!(refused, AuthError::Unverifiable { .. }), "{refused:?}");
    assert_eq!((refused.status(), refused.code()), (503, "shared_tokens_unavailable"));
    assert!(!refused.counts_as_failure(), "a real token is not a guess");
    // A socket or ticket of the token dies with the suspension; the replica's own
    // credentials do not.
    assert!(matches!(suspended.still_valid(&principal), Err(AuthError::Unverifiable { .. })));
    assert_eq!(suspended.verify("rt", Scope::Admin).map(|p| p.kind), Ok(CredentialKind::Runtime));
    assert!(suspended.verify("not-a-token", Scope::Chat).is_err());
    let resumed = suspended.with_named_state(NamedState::Current);
    assert!(resumed.verify(chat.expose(), Scope::Chat).is_ok());
    assert!(resumed.still_valid(&principal).is_ok());
}

#[test]
fn ten_thousand_tokens_load_and_each_verifies() {
    let clock = ManualClock::new(t0());
    let mut set = TokenSet::default();
    let mut tokens = Vec::new();
    for i in 0..MAX_TOKENS_FOR_TEST {
        let (_, t) =
            set.create(TokenName::parse(&format!("t{i}")).unwrap(), Scope::Chat, None, t0()).unwrap();
        tokens.push(t);
    }
    let s = store(&set, &clock);
    assert_eq!(s.len(), MAX_TOKENS_FOR_TEST);
    for t in tokens.iter().step_by(997) {
        assert!(s.verify(t.expose()).unwrap().is_ok());
    }
}

const MAX_TOKENS_FOR_TEST: usize = 2_000;
