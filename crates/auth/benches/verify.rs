//! "10,000 named tokens verify as fast as 1": the time to verify a presented named token
//! (parse, id lookup, SHA-256, constant-time compare) with 1, 100 and 10,000 tokens in the
//! store, plus the unknown-id and typo paths. Run with `cargo bench -p picoclaw-auth --bench verify`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use picoclaw_auth::named::{ManualClock, Timestamp, TokenName, TokenSet};
use picoclaw_auth::{NamedTokenStore, NamedTokens, Scope};

fn store_of(n: usize) -> (NamedTokenStore, Vec<picoclaw_credentials::Secret>) {
    let now = Timestamp::from_unix(1_800_000_000);
    let mut set = TokenSet::default();
    let mut tokens = Vec::with_capacity(n);
    for i in 0..n {
        let name = TokenName::parse(&format!("token-{i}")).expect("valid name");
        let (_, token) = set.create(name, Scope::Chat, None, now).expect("create");
        tokens.push(token);
    }
    (NamedTokenStore::with_clock(&set, Arc::new(ManualClock::new(now))), tokens)
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("named_verify");
    for n in [1usize, 100, 10_000] {
        let (store, tokens) = store_of(n);
        // The last token created (worst case for anything linear), and a forged one.
        let presented = tokens.last().expect("one token").expose().to_owned();
        group.bench_with_input(BenchmarkId::new("valid", n), &presented, |b, t| {
            b.iter(|| black_box(store.verify(black_box(t))))
        });
        // A well-formed token (valid checksum) whose id is not in the store: full parse,
        // lookup miss, digest.
        let (_, unknown) = picoclaw_auth::named::format::generate().expect("random");
        let wrong = unknown.expose().to_owned();
        // A typo: rejected by the checksum before any lookup.
        let mut typo = presented.clone();
        typo.replace_range(20..21, if &typo[20..21] == "A" { "B" } else { "A" });
        group.bench_with_input(BenchmarkId::new("typo", n), &typo, |b, t| {
            b.iter(|| black_box(store.verify(black_box(t))))
        });
        group.bench_with_input(BenchmarkId::new("unknown_id", n), &wrong, |b, t| {
            b.iter(|| black_box(store.verify(black_box(t))))
        });
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
