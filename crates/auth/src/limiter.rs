//! Failed-attempt limiting with bounded memory.
//!
//! Only wrong credentials count (a missing credential or a success does not). Per client:
//! after `per_key_max` failures within `window`, the client is locked out for `lockout`.
//! Globally: after `global_max` failures within `window`, every client is refused until
//! the window passes. A client is an IPv4 address, an IPv6 /64, or — for every loopback
//! address (127.0.0.0/8, ::1) — "this machine": any local user can bind any of 127/8, so
//! counting them apart would give a local attacker 16 million fresh addresses.
//!
//! "Refused" is the gate's business: it never refuses a credential that cannot be
//! guessed (see `gate.rs`), so neither lockout can shut the local tools out.
//!
//! Memory is bounded whatever the number of addresses: at most `capacity` clients are
//! tracked. When the table is full (after dropping entries whose window and lockout have
//! passed, at most once a second), a client it does not hold is counted in one shared
//! overflow bucket with the same per-client limit: the table fails closed, so a spray
//! from more addresses than it holds gets no fresh per-address tries, and no tracked
//! client (a locked one least of all) is ever evicted to make room.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Limits.
#[derive(Debug, Clone, Copy)]
pub struct LimiterConfig {
    /// Failures allowed per address within `window`.
    pub per_key_max: u32,
    /// Failures allowed across all addresses within `window`.
    pub global_max: u32,
    /// Counting window.
    pub window: Duration,
    /// Lockout of an address after its limit.
    pub lockout: Duration,
    /// Addresses tracked at most.
    pub capacity: usize,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            per_key_max: 10,
            global_max: 100,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
            capacity: 4096,
        }
    }
}

/// Seconds until the caller may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    failures: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
}

impl Bucket {
    fn new(now: Instant) -> Bucket {
        Bucket { failures: 0, window_start: now, locked_until: None }
    }

    fn locked(&self, now: Instant) -> Option<Instant> {
        self.locked_until.filter(|until| *until > now)
    }

    fn expired(&self, now: Instant, window: Duration) -> bool {
        now.duration_since(self.window_start) >= window && self.locked(now).is_none()
    }

    fn fail(&mut self, now: Instant, config: &LimiterConfig) {
        if now.duration_since(self.window_start) >= config.window && self.locked(now).is_none() {
            *self = Bucket::new(now);
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures >= config.per_key_max {
            self.locked_until = Some(now + config.lockout);
        }
    }
}

/// How often a full table is swept for expired entries (a sweep is a pass over it).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
struct State {
    keys: HashMap<IpAddr, Bucket>,
    /// Every client the full table could not hold.
    overflow: Bucket,
    last_sweep: Instant,
    global_failures: u32,
    global_window_start: Instant,
}

/// The limiter. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct FailureLimiter {
    config: LimiterConfig,
    state: Mutex<State>,
}

/// The key a client is counted under: its IPv4 address, its IPv6 /64 (one host usually
/// owns a whole /64 and could otherwise rotate through it), or one key for every loopback
/// address.
fn bucket_key(ip: IpAddr) -> IpAddr {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
    }
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
    }
}

fn secs_until(now: Instant, until: Instant) -> u64 {
    until.saturating_duration_since(now).as_secs().max(1)
}

impl FailureLimiter {
    /// A limiter with `config`.
    pub fn new(config: LimiterConfig) -> Self {
        FailureLimiter {
            config,
            state: Mutex::new(State {
                keys: HashMap::new(),
                overflow: Bucket::new(Instant::now()),
                last_sweep: Instant::now(),
                global_failures: 0,
                global_window_start: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the counters inconsistent in a way
        // that matters; keep limiting rather than propagate the poison.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Is `key` locked out now — by its own failures, or because the global budget is
    /// spent? The caller decides what a lockout refuses (guessable credentials only).
    pub fn check(&self, key: IpAddr) -> Result<(), RetryAfter> {
        let key = bucket_key(key);
        let now = Instant::now();
        let mut st = self.lock();
        self.roll_global(&mut st, now);
        let bucket = match st.keys.get(&key) {
            Some(bucket) => Some(bucket),
            None if st.keys.len() >= self.config.capacity => Some(&st.overflow),
            None => None,
        };
        if let Some(until) = bucket.and_then(|b| b.locked(now)) {
            return Err(RetryAfter(secs_until(now, until)));
        }
        if st.global_failures >= self.config.global_max {
            return Err(RetryAfter(secs_until(now, st.global_window_start + self.config.window)));
        }
        Ok(())
    }

    /// After a wrong credential from `key`.
    pub fn record_failure(&self, key: IpAddr) {
        let key = bucket_key(key);
        let now = Instant::now();
        let mut st = self.lock();
        self.roll_global(&mut st, now);
        st.global_failures = st.global_failures.saturating_add(1);
        if !st.keys.contains_key(&key) && st.keys.len() >= self.config.capacity {
            self.sweep(&mut st, now);
        }
        let config = self.config;
        let st = &mut *st;
        let full = st.keys.len() >= config.capacity;
        let bucket = match st.keys.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(_) if full => &mut st.overflow,
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Bucket::new(now)),
        };
        bucket.fail(now, &config);
    }

    /// After a success from `key`: its own failure count is cleared.
    pub fn record_success(&self, key: IpAddr) {
        self.lock().keys.remove(&bucket_key(key));
    }

    /// Addresses currently tracked (bounded by `capacity`).
    pub fn tracked(&self) -> usize {
        self.lock().keys.len()
    }

    fn roll_global(&self, st: &mut State, now: Instant) {
        if now.duration_since(st.global_window_start) >= self.config.window {
            st.global_failures = 0;
            st.global_window_start = now;
        }
    }

    /// Drops the entries whose window and lockout have both passed, at most once per
    /// [`SWEEP_EVERY`] (a spray against a full table costs one pass a second, not one per
    /// request). Never drops a live entry: past capacity, new clients share the overflow
    /// bucket instead.
    fn sweep(&self, st: &mut State, now: Instant) {
        if now.duration_since(st.last_sweep) < SWEEP_EVERY {
            return;
        }
        st.last_sweep = now;
        let window = self.config.window;
        st.keys.retain(|_, b| !b.expired(now, window));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_lockout_leaves_others_alone() {
        let l = FailureLimiter::new(LimiterConfig { per_key_max: 3, ..Default::default() });
        for _ in 0..3 {
            assert!(l.check(remote(1)).is_ok());
            l.record_failure(remote(1));
        }
        assert!(l.check(remote(1)).is_err());
        assert!(l.check(remote(2)).is_ok());
    }

    fn remote(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n))
    }

    #[test]
    fn the_global_budget_locks_every_client() {
        let l = FailureLimiter::new(LimiterConfig { per_key_max: 100, global_max: 5, ..Default::default() });
        for n in 0..5 {
            l.record_failure(remote(n));
        }
        assert!(l.check(remote(0)).is_err(), "a failing address is locked once the global budget is spent");
        assert!(l.check(remote(99)).is_err(), "so is a fresh one: a spray cannot buy tries with addresses");
    }

    #[test]
    fn every_loopback_address_is_one_client() {
        let l = FailureLimiter::new(LimiterConfig { per_key_max: 3, ..Default::default() });
        l.record_failure("127.0.0.1".parse().unwrap());
        l.record_failure("127.45.6.7".parse().unwrap());
        l.record_failure("::1".parse().unwrap());
        assert!(l.check("127.200.0.1".parse().unwrap()).is_err());
        assert!(l.check("::ffff:127.0.0.9".parse().unwrap()).is_err());
        assert!(l.check(remote(1)).is_ok());
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_bucket() {
        let l = FailureLimiter::new(LimiterConfig { per_key_max: 2, ..Default::default() });
        l.record_failure("2001:db8::1".parse().unwrap());
        l.record_failure("2001:db8::ffff:2".parse().unwrap());
        assert!(l.check("2001:db8::3".parse().unwrap()).is_err());
        assert!(l.check("2001:db8:0:1::1".parse().unwrap()).is_ok(), "another /64");
    }

    #[test]
    fn a_full_table_fails_closed_and_never_evicts_a_lockout() {
        let l = FailureLimiter::new(LimiterConfig {
            per_key_max: 3,
            global_max: u32::MAX,
            capacity: 100,
            ..Default::default()
        });
        let attacker = remote(1_000_000);
        for _ in 0..3 {
            l.record_failure(attacker);
        }
        assert!(l.check(attacker).is_err());
        // More addresses than the table holds, one guess each.
        for n in 0..10_000 {
            l.record_failure(remote(n));
        }
        assert!(l.tracked() <= 100);
        assert!(l.check(attacker).is_err(), "a locked address was evicted by a spray of new ones");
        assert!(
            l.check(remote(20_000)).is_err(),
            "past capacity new addresses share the (spent) overflow bucket"
        );
        assert!(l.check(remote(0)).is_ok(), "a tracked client keeps its own count");
    }

    #[test]
    fn the_global_budget_holds_for_any_number_of_addresses() {
        let l = FailureLimiter::new(LimiterConfig { global_max: 1000, capacity: 8192, ..Default::default() });
        // The gate's order: check, then count the wrong guess. 16,384 addresses (and as
        // many IPv6 /64s) each try once.
        let mut tried = 0;
        for n in 0..16_384u32 {
            for ip in [
                remote(n),
                IpAddr::V6(std::net::Ipv6Addr::from((0x2001_0db8u128 << 96) | (u128::from(n) << 64))),
            ] {
                if l.check(ip).is_ok() {
                    tried += 1;
                }
                l.record_failure(ip);
            }
        }
        assert!(tried <= 1000, "{tried} guesses were let through against a budget of 1000");
        assert!(l.tracked() <= 8192);
    }

    #[test]
    fn memory_is_bounded() {
        let l = FailureLimiter::new(LimiterConfig { capacity: 100, ..Default::default() });
        for n in 0..10_000 {
            l.record_failure(remote(n));
        }
        assert!(l.tracked() <= 100);
    }
}
