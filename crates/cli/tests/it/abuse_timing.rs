//! Timing side channel: how long `Verifier::verify` takes must not depend on how many
//! leading characters of a wrong token are right.
//!
//! In-process (network jitter would drown any signal), with the gateway's own verifier.
//! Thousands of samples, each a batch of calls, the two kinds of wrong token interleaved
//! in a seeded random order so drift on a busy machine hits both alike; compare medians.
//! A control runs the same statistic over a deliberately leaky early-exit comparison and
//! must see the leak, so the test is known to be able to fail.

use std::hint::black_box;
use std::time::Instant;

use picoclaw_auth::{Scope, Verifier};
use picoclaw_config::{Flags, Layers, MapEnv, Paths, Settings};
use picoclaw_credentials::{Credentials, Secret};

use crate::support::XorShift;

/// 64 characters, like a generated token.
const REAL: &str = "k3Jq9vXcT2mNw8bRf5LpZy1HdG7sAe4UoVi6QtKx0CnMjWbYrPaFg2EhSl9DzXu3";
const SAMPLES: usize = 3_000;
const BATCH: usize = 20;
const ROUNDS: usize = 3;

/// The same length as `REAL`, sharing its first `prefix` characters, wrong after that.
fn wrong_token(prefix: usize) -> String {
    let tail: String = REAL[prefix..].chars().map(|c| if c == '#' { '%' } else { '#' }).collect();
    format!("{}{tail}", &REAL[..prefix])
}

fn median(mut v: Vec<u128>) -> f64 {
    v.sort_unstable();
    v[v.len() / 2] as f64
}

/// Relative difference of the median time per batch of `probe(a)` and `probe(b)`.
fn relative_difference(rng: &mut XorShift, a: &str, b: &str, probe: &dyn Fn(&str) -> bool) -> f64 {
    let (mut ta, mut tb) = (Vec::with_capacity(SAMPLES), Vec::with_capacity(SAMPLES));
    for _ in 0..SAMPLES {
        let a_first = rng.next() & 1 == 0;
        for turn in 0..2 {
            let (token, out) = if (turn == 0) == a_first { (a, &mut ta) } else { (b, &mut tb) };
            let started = Instant::now();
            for _ in 0..BATCH {
                black_box(probe(black_box(token)));
            }
            out.push(started.elapsed().as_nanos());
        }
    }
    let (ma, mb) = (median(ta), median(tb));
    (ma - mb).abs() / ma.min(mb).max(1.0)
}

/// The median of the rounds' results: one round disturbed by a burst of load elsewhere on
/// the machine does not decide the outcome.
fn measured(probe: &dyn Fn(&str) -> bool) -> (f64, Vec<f64>) {
    let far = wrong_token(0);
    let near = wrong_token(60);
    assert_eq!((far.len(), near.len()), (REAL.len(), REAL.len()));
    assert!(near.starts_with(&REAL[..60]) && !far.starts_with(&REAL[..1]));
    let mut rng = XorShift::new(0x9E37_79B9_7F4A_7C15);
    // Warm caches and the branch predictor for both inputs.
    for _ in 0..2_000 {
        black_box(probe(&far));
        black_box(probe(&near));
    }
    let mut rounds: Vec<f64> =
        (0..ROUNDS).map(|_| relative_difference(&mut rng, &far, &near, probe)).collect();
    let all = rounds.clone();
    rounds.sort_by(f64::total_cmp);
    (rounds[ROUNDS / 2], all)
}

fn verifier() -> Verifier {
    let dir = tempfile::tempdir().expect("tempdir");
    let env = MapEnv::new()
        .with("PICOCLAW_GATEWAY_TOKEN", REAL)
        .with("PICOCLAW_CHANNELS_PICO_TOKEN", "a-different-pico-token-0123456789abcdef");
    let layers = Layers::load(&Paths::at(dir.path()), &env, &Flags::new()).expect("layers");
    let settings = Settings::resolve(&layers).expect("settings");
    let creds = Credentials::resolve(&layers, &settings).expect("credentials");
    Verifier::new(&creds, &Secret::new("runtime-token-for-the-timing-test-000000"), true)
}

/// An early-exit comparison: the classic leak.
fn leaky_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    for i in 0..a.len() {
        if black_box(a[i]) != black_box(b[i]) {
            return false;
        }
    }
    true
}

#[test]
fn verification_time_does_not_depend_on_a_correct_prefix() {
    let v = verifier();
    assert!(v.verify(REAL, Scope::Admin).is_ok(), "the real token verifies");
    let (rel, rounds) = measured(&|t| v.verify(t, Scope::Chat).is_ok());
    eprintln!(
        "verify: median relative difference 0 vs 60 correct leading chars: {rel:.3} (rounds {rounds:.3?})"
    );
    assert!(rel < 0.25, "verification time depends on the correct prefix: {rel:.3} (rounds {rounds:.3?})");
}

#[test]
fn the_statistic_detects_a_leaky_comparison() {
    let (rel, rounds) = measured(&|t| leaky_eq(t, REAL));
    eprintln!("control: leaky early-exit compare shows {rel:.3} (rounds {rounds:.3?})");
    assert!(rel > 1.0, "the statistic cannot see an early-exit comparison: {rel:.3} (rounds {rounds:.3?})");
}
