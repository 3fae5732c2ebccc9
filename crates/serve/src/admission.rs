//! The budget of HTTP connections that have not become a Pico socket: counted per client
//! address and in total, separately from the authenticated sockets (`max_connections`).
//!
//! An idle connection — accepted, or between two requests, with no request being
//! answered — is cheap to make and costs a slot, so under pressure the oldest idle one
//! goes: a new connection over the per-address bound ([`PER_ADDRESS`]) takes the slot of
//! that address's oldest idle connection, and one over the total ([`TOTAL`]) the oldest
//! idle connection of all. Only when every counted connection is busy answering a request
//! is the new one refused (closed at accept). Idle connections are also cut by the header
//! deadline: [`HEADER_READ_TIMEOUT`] for a connection's first request, [`KEEP_ALIVE_IDLE`]
//! between the requests of one that has been answered. A connection whose request was already waiting
//! when it was accepted is not idle: it cannot be evicted for its first [`GRACE`], the
//! time it needs to be read (a flood of fresh silent connections would otherwise push it
//! out before its task ran). So a flood of connections that never send a
//! request cannot keep `/health`, `/ready` or an authenticated client from being served:
//! a real request is read the moment it arrives, and then its connection is busy. A
//! connection leaves the budget when it closes or is upgraded to a WebSocket.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Connections (not yet WebSockets) one client address may hold: an IPv4 address or an
/// IPv6 /64. Large enough for a reverse proxy or a local client opening a burst of
/// sockets at once from one address (a burst over it loses its oldest connections that
/// have not sent their request yet), small enough that one address cannot hold the
/// whole [`TOTAL`].
pub const PER_ADDRESS: usize = 128;
/// Connections (not yet WebSockets) all clients together may hold.
pub const TOTAL: usize = 256;
/// How long a new connection may take to send its first complete request head.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a kept-alive connection that has been answered may wait for (and send) its
/// next request head. Longer than [`HEADER_READ_TIMEOUT`], so the pools of HTTP clients
/// (reqwest 90 s, aiohttp 15 s, Go 90 s) rarely reuse a connection the server is closing
/// at that moment; such a connection is idle, so under pressure it is the first evicted.
pub const KEEP_ALIVE_IDLE: Duration = Duration::from_secs(60);

/// How long a connection that arrived with its request waiting is safe from eviction.
pub const GRACE: Duration = Duration::from_secs(1);

/// One counted connection, shared between the table and the connection's task.
#[derive(Debug, Default)]
pub struct ConnState {
    busy: AtomicBool,
    /// A request head has been read on it at least once.
    served: AtomicBool,
    /// Milliseconds since the table's epoch when it last became idle.
    idle_since: AtomicU64,
    /// Not evicted before this (milliseconds since the epoch).
    protected_until: AtomicU64,
    evicted: Notify,
}

impl ConnState {
    /// Resolves when the connection was evicted to make room (then drop it).
    pub async fn evicted(&self) {
        self.evicted.notified().await;
    }

    /// Resolves [`HEADER_READ_TIMEOUT`] after `since` if no request head had been read by
    /// then (close it: a silent or dripping first request); never once one has.
    pub async fn first_request_late(&self, since: tokio::time::Instant) {
        tokio::time::sleep_until(since + HEADER_READ_TIMEOUT).await;
        if self.served.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
    }
}

struct Entry {
    key: IpAddr,
    state: Arc<ConnState>,
}

#[derive(Default)]
struct Table {
    conns: HashMap<u64, Entry>,
    per_key: HashMap<IpAddr, usize>,
    next_id: u64,
}

/// The table of counted connections.
pub struct Admission {
    table: Mutex<Table>,
    per_address: usize,
    total: usize,
    epoch: Instant,
}

/// A connection's place in the budget; released on drop.
pub struct Admitted {
    id: u64,
    state: Arc<ConnState>,
    admission: Arc<Admission>,
}

/// The key a client address is counted under: IPv4 (IPv4-mapped IPv6 included) as is, IPv6
/// by its /64.
fn key(ip: IpAddr) -> IpAddr {
    match picoclaw_config::canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        v4 => v4,
    }
}

impl Admission {
    /// A table with the given bounds.
    pub fn new(per_address: usize, total: usize) -> Arc<Admission> {
        Arc::new(Admission { table: Mutex::new(Table::default()), per_address, total, epoch: Instant::now() })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Admits a new connection from `ip` (`waiting`: its request has already arrived),
    /// evicting the oldest idle one when a bound is reached; `None` when every connection
    /// in the way is busy.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, waiting: bool) -> Option<Admitted> {
        let key = key(ip);
        let now = self.now_ms();
        let mut t = self.lock();
        if t.per_key.get(&key).copied().unwrap_or(0) >= self.per_address {
            let victim = oldest_idle(&t, Some(key), now)?;
            evict(&mut t, victim);
        }
        if t.conns.len() >= self.total {
            let victim = oldest_idle(&t, None, now)?;
            evict(&mut t, victim);
        }
        t.next_id += 1;
        let id = t.next_id;
        let state = Arc::new(ConnState::default());
        state.idle_since.store(now, Ordering::Release);
        if waiting {
            let grace = u64::try_from(GRACE.as_millis()).unwrap_or(u64::MAX);
            state.protected_until.store(now.saturating_add(grace), Ordering::Release);
        }
        t.conns.insert(id, Entry { key, state: state.clone() });
        *t.per_key.entry(key).or_insert(0) += 1;
        Some(Admitted { id, state, admission: self.clone() })
    }

    #[cfg(test)]
    fn admit_idle(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        self.admit(ip, false)
    }

    /// Connections counted now.
    pub fn counted(&self) -> usize {
        self.lock().conns.len()
    }
}

fn oldest_idle(t: &Table, key: Option<IpAddr>, now: u64) -> Option<u64> {
    t.conns
        .iter()
        .filter(|(_, e)| {
            key.is_none_or(|k| e.key == k)
                && !e.state.busy.load(Ordering::Acquire)
                && e.state.protected_until.load(Ordering::Acquire) <= now
        })
        .min_by_key(|(id, e)| (e.state.idle_since.load(Ordering::Acquire), **id))
        .map(|(id, _)| *id)
}

fn evict(t: &mut Table, id: u64) {
    if let Some(entry) = remove(t, id) {
        entry.state.evicted.notify_one();
    }
}

fn remove(t: &mut Table, id: u64) -> Option<Entry> {
    let entry = t.conns.remove(&id)?;
    if let Some(n) = t.per_key.get_mut(&entry.key) {
        *n -= 1;
        if *n == 0 {
            t.per_key.remove(&entry.key);
        }
    }
    Some(entry)
}

impl Admitted {
    /// The state the connection's task watches.
    pub fn state(&self) -> Arc<ConnState> {
        self.state.clone()
    }

    /// A request head arrived: the connection is busy until [`Admitted::idle`].
    pub fn busy(state: &ConnState) {
        state.served.store(true, Ordering::Release);
        state.busy.store(true, Ordering::Release);
    }

    /// Its answer was sent: idle (evictable) again.
    pub fn idle(state: &ConnState, admission: &Admission) {
        state.idle_since.store(admission.now_ms(), Ordering::Release);
        state.busy.store(false, Ordering::Release);
    }

    /// The table (for [`Admitted::idle`]).
    pub fn admission(&self) -> Arc<Admission> {
        self.admission.clone()
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        remove(&mut self.admission.lock(), self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn over_a_bound_the_oldest_idle_connection_goes() {
        let a = Admission::new(2, 3);
        let first = a.admit_idle(ip("10.0.0.1")).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let second = a.admit_idle(ip("10.0.0.1")).unwrap();
        let third = a.admit_idle(ip("10.0.0.1")).unwrap();
        assert_eq!(a.counted(), 2, "per address: the oldest made room");
        assert!(first.state.evicted.notified().now_or_never_is_ready());
        // The total: the oldest idle of all goes, busy ones stay.
        Admitted::busy(&second.state);
        Admitted::busy(&third.state);
        let other = a.admit_idle(ip("10.0.0.2")).unwrap();
        assert_eq!(a.counted(), 3);
        let v6 = a.admit_idle(ip("2001:db8::1")).expect("the idle one makes room");
        assert!(other.state.evicted.notified().now_or_never_is_ready());
        assert_eq!(a.counted(), 3);
        Admitted::busy(&v6.state);
        assert!(a.admit_idle(ip("2001:db8::2")).is_none(), "every connection busy: refused");
        drop(v6);
        drop((first, second, third, other));
    }

    #[test]
    fn when_every_connection_is_busy_a_new_one_is_refused() {
        let a = Admission::new(1, 10);
        let busy = a.admit_idle(ip("2001:db8::1")).unwrap();
        Admitted::busy(&busy.state);
        assert!(a.admit_idle(ip("2001:db8::2")).is_none(), "same /64, which is at its bound and busy");
        let other = a.admit_idle(ip("2001:db8:0:1::1")).expect("another /64");
        Admitted::idle(&busy.state, &a);
        let fresh = a.admit_idle(ip("2001:db8::3")).expect("idle again: evictable");
        assert_eq!(a.counted(), 2);
        drop(busy);
        assert_eq!(a.counted(), 2, "an evicted connection's drop releases nothing more");
        drop((other, fresh));
        assert_eq!(a.counted(), 0);
    }

    #[test]
    fn a_connection_that_arrived_with_its_request_is_not_pushed_out_at_once() {
        let a = Admission::new(2, 10);
        let real = a.admit(ip("10.0.0.1"), true).unwrap();
        let _silent = a.admit_idle(ip("10.0.0.1")).unwrap();
        let _newer = a.admit_idle(ip("10.0.0.1")).expect("evicts the silent one, not the real request");
        assert!(!real.state.evicted.notified().now_or_never_is_ready());
        assert!(a.admit_idle(ip("10.0.0.1")).is_some(), "the newer silent one goes");
        assert!(!real.state.evicted.notified().now_or_never_is_ready());
    }

    trait NowOrNever {
        fn now_or_never_is_ready(self) -> bool;
    }

    impl<F: std::future::Future> NowOrNever for F {
        fn now_or_never_is_ready(self) -> bool {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            let mut f = std::pin::pin!(self);
            f.as_mut().poll(&mut cx).is_ready()
        }
    }
}
