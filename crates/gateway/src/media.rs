//! Files answers carry (`/pico/media/<id>`): kept in memory, owner-only, bounded.
//!
//! An agent's [`Attachment`](picoclaw_agent::Attachment) is stored here under a random
//! 128-bit id with the principal and session of its turn; the answer links to it as
//! upstream PicoClaw does (`attachments: [{type, url: "/pico/media/<id>", filename,
//! content_type}]`). Only that principal can fetch it; anyone else, like an unknown or
//! expired id, gets the same 404. Bounds: [`MAX_TOTAL_BYTES`] and [`MAX_ITEMS`] in all
//! (the oldest go first) and [`TTL`] each. Files are not part of the history: a restart
//! or the TTL ends them, and deleting a session deletes its files at once.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes of files kept in all.
pub const MAX_TOTAL_BYTES: usize = 32 * 1024 * 1024;
/// Files kept in all.
pub const MAX_ITEMS: usize = 256;
/// How long a file can be fetched.
pub const TTL: Duration = Duration::from_secs(3600);

/// One stored file.
#[derive(Clone)]
pub(crate) struct MediaItem {
    pub owner: String,
    pub session: String,
    pub content_type: String,
    pub filename: String,
    pub bytes: Arc<[u8]>,
    created: Instant,
}

#[derive(Default)]
struct Inner {
    items: HashMap<String, MediaItem>,
    order: VecDeque<String>,
    total: usize,
}

/// The gateway's file store.
#[derive(Default)]
pub(crate) struct MediaStore {
    inner: Mutex<Inner>,
}

impl MediaStore {
    /// Stores `file` for `owner` in `session`; returns its id, or `None` for a file larger
    /// than [`MAX_TOTAL_BYTES`] alone.
    pub fn put(&self, owner: &str, session: &str, file: picoclaw_agent::Attachment) -> Option<String> {
        if file.bytes.len() > MAX_TOTAL_BYTES {
            return None;
        }
        let id = random_id();
        let mut inner = self.lock();
        inner.expire();
        while inner.total + file.bytes.len() > MAX_TOTAL_BYTES || inner.items.len() >= MAX_ITEMS {
            if !inner.drop_oldest() {
                break;
            }
        }
        inner.total += file.bytes.len();
        inner.order.push_back(id.clone());
        inner.items.insert(
            id.clone(),
            MediaItem {
                owner: owner.to_owned(),
                session: session.to_owned(),
                content_type: file.content_type,
                filename: file.filename,
                bytes: file.bytes.into(),
                created: Instant::now(),
            },
        );
        Some(id)
    }

    /// The file `id` when `principal` owns it and it has not expired.
    pub fn get(&self, id: &str, principal: &str) -> Option<MediaItem> {
        let mut inner = self.lock();
        inner.expire();
        inner.items.get(id).filter(|m| m.owner == principal).cloned()
    }

    /// Forgets every file of `session` (the session was deleted).
    pub fn forget_session(&self, session: &str) {
        let mut inner = self.lock();
        let gone: Vec<String> =
            inner.items.iter().filter(|(_, m)| m.session == session).map(|(id, _)| id.clone()).collect();
        for id in gone {
            inner.remove(&id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent maps: keep serving.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Inner {
    fn expire(&mut self) {
        while let Some(id) = self.order.front() {
            match self.items.get(id) {
                Some(m) if m.created.elapsed() < TTL => break,
                _ => {
                    self.drop_oldest();
                }
            }
        }
    }

    /// Drops the oldest entry; false when there is none.
    fn drop_oldest(&mut self) -> bool {
        let Some(id) = self.order.pop_front() else { return false };
        if let Some(m) = self.items.remove(&id) {
            self.total -= m.bytes.len();
        }
        true
    }

    fn remove(&mut self, id: &str) {
        if let Some(m) = self.items.remove(id) {
            self.total -= m.bytes.len();
            self.order.retain(|o| o != id);
        }
    }
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(len: usize) -> picoclaw_agent::Attachment {
        picoclaw_agent::Attachment {
            content_type: "image/png".into(),
            filename: "a.png".into(),
            bytes: vec![7; len],
        }
    }

    #[test]
    fn only_the_owner_gets_a_file_and_the_bounds_drop_the_oldest() {
        let store = MediaStore::default();
        let a = store.put("alice", "s1", file(10)).unwrap();
        assert_eq!(store.get(&a, "alice").unwrap().bytes.len(), 10);
        assert!(store.get(&a, "bob").is_none());
        assert!(store.get("no-such-id", "alice").is_none());

        let big = store.put("alice", "s2", file(MAX_TOTAL_BYTES)).unwrap();
        assert!(store.get(&a, "alice").is_none(), "the oldest went to make room");
        assert!(store.get(&big, "alice").is_some());
        assert!(store.put("alice", "s2", file(MAX_TOTAL_BYTES + 1)).is_none());
        assert_eq!(store.lock().total, MAX_TOTAL_BYTES);

        for _ in 0..MAX_ITEMS + 10 {
            store.put("alice", "s3", file(1));
        }
        assert_eq!(store.lock().items.len(), MAX_ITEMS);
        store.forget_session("s3");
        assert!(store.lock().items.is_empty());
        assert_eq!(store.lock().total, 0);
    }
}
