//! One socket's send queue, bounded in frames and in bytes, per socket and across all
//! sockets, checked before a frame is buffered.
//!
//! Every `message.update` carries the full text so far, so a reader that falls behind
//! needs only the latest one: a new update of a message replaces the one still queued
//! (it moves to the back, keeping `seq` order). Nothing else is ever dropped or merged —
//! `message.create`, `typing.*`, `message.done` and `error` frames are queued as they come
//! or the socket is closed. A frame that would take the queue past `channels.pico.send_queue`
//! frames or `send_queue_bytes`, or all queues past `send_queue_total_bytes`, is refused
//! and the queue emptied at once (its memory freed); the owner then closes the socket with
//! 1008. A frame into an empty queue is always taken (a reader that keeps up is never
//! closed for one large answer), so a socket holds at most its budget plus one frame.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::Notify;

/// Bytes queued on every socket together (`send_queue_total_bytes` is checked against it).
#[derive(Debug, Default)]
pub(crate) struct QueuedBytes(AtomicUsize);

impl QueuedBytes {
    /// Bytes queued now.
    #[cfg(test)]
    fn now(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }

    fn release(&self, n: usize) {
        if n > 0 {
            self.0.fetch_sub(n, Ordering::AcqRel);
        }
    }
}

/// The bounds of one queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    /// Frames queued at most.
    pub frames: usize,
    /// Bytes queued at most on this socket.
    pub bytes: usize,
    /// Bytes queued at most on all sockets.
    pub total_bytes: usize,
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Over a bound: the client is not reading. The queue was emptied.
    Overflow,
    /// The queue was already closed (the socket is going away).
    Closed,
}

struct Queued {
    text: Utf8Bytes,
    /// `message_id` of a `message.update` (a later update of it replaces this one).
    update_of: Option<Box<str>>,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Queued>,
    bytes: usize,
    /// No more frames are taken (overflowed, or the socket is closing).
    refusing: bool,
    /// The socket is done: the writer stops once the queue is drained.
    finished: bool,
}

/// A socket's send queue: many producers (hub, turns, the socket's reader), one writer.
pub(crate) struct Outbox {
    queue: Mutex<Queue>,
    ready: Notify,
    bounds: Bounds,
    total: Arc<QueuedBytes>,
}

impl Outbox {
    /// An empty queue with `bounds`, counted in `total`.
    pub fn new(bounds: Bounds, total: Arc<QueuedBytes>) -> Outbox {
        Outbox { queue: Mutex::new(Queue::default()), ready: Notify::new(), bounds, total }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // Plain data; a panic elsewhere cannot leave it half-updated in a way that matters.
        self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `text`; `update_of` is the `message_id` when it is a `message.update`.
    pub fn push(&self, text: Utf8Bytes, update_of: Option<&str>) -> Result<(), Refused> {
        let mut q = self.lock();
        if q.refusing {
            return Err(Refused::Closed);
        }
        if let Some(id) = update_of
            && let Some(at) = q.frames.iter().rposition(|f| f.update_of.as_deref() == Some(id))
            && let Some(old) = q.frames.remove(at)
        {
            q.bytes -= old.text.len();
            self.total.release(old.text.len());
        }
        let len = text.len();
        let first = q.frames.is_empty();
        let total = self.total.0.fetch_add(len, Ordering::AcqRel) + len;
        let over = q.frames.len() >= self.bounds.frames
            || q.bytes + len > self.bounds.bytes
            || total > self.bounds.total_bytes;
        if over && !first {
            self.total.release(len);
            let freed = std::mem::take(&mut q.frames);
            self.total.release(q.bytes);
            q.bytes = 0;
            q.refusing = true;
            drop(q);
            drop(freed);
            return Err(Refused::Overflow);
        }
        q.bytes += len;
        q.frames.push_back(Queued { text, update_of: update_of.map(Box::from) });
        drop(q);
        self.ready.notify_one();
        Ok(())
    }

    /// The next frame, or `None` once the socket is finished and the queue drained.
    /// Cancel-safe: a frame is only taken when it is returned.
    pub async fn recv(&self) -> Option<Utf8Bytes> {
        loop {
            {
                let mut q = self.lock();
                if let Some(text) = self.take(&mut q) {
                    return Some(text);
                }
                if q.finished {
                    return None;
                }
            }
            self.ready.notified().await;
        }
    }

    /// The next frame if one is queued now.
    pub fn try_recv(&self) -> Option<Utf8Bytes> {
        let mut q = self.lock();
        self.take(&mut q)
    }

    fn take(&self, q: &mut Queue) -> Option<Utf8Bytes> {
        let f = q.frames.pop_front()?;
        q.bytes -= f.text.len();
        self.total.release(f.text.len());
        Some(f.text)
    }

    /// No more frames: the writer sends what is queued, then ends.
    pub fn finish(&self) {
        let mut q = self.lock();
        q.refusing = true;
        q.finished = true;
        drop(q);
        self.ready.notify_one();
    }

    /// Bytes queued on this socket now.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let q = self.queue.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.total.release(q.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(frames: usize, bytes: usize, total: &Arc<QueuedBytes>) -> Outbox {
        Outbox::new(Bounds { frames, bytes, total_bytes: 1000 }, total.clone())
    }

    fn text(n: usize, c: char) -> Utf8Bytes {
        Utf8Bytes::from(c.to_string().repeat(n))
    }

    #[test]
    fn updates_of_one_message_coalesce_to_the_latest_and_nothing_else_does() {
        let total = Arc::new(QueuedBytes::default());
        let o = outbox(100, 100, &total);
        o.push(text(1, 'c'), None).unwrap();
        for n in 2..=40 {
            o.push(text(n, 'u'), Some("m1")).unwrap();
        }
        o.push(text(3, 'v'), Some("m2")).unwrap();
        o.push(text(41, 'u'), Some("m1")).unwrap();
        o.push(text(1, 's'), None).unwrap();
        o.push(text(1, 's'), None).unwrap();
        let got: Vec<String> = std::iter::from_fn(|| o.try_recv()).map(|t| t.as_str().to_owned()).collect();
        assert_eq!(got, ["c", "vvv", &"u".repeat(41), "s", "s"]);
        assert_eq!(total.now(), 0);
    }

    #[test]
    fn over_the_socket_budget_the_queue_is_emptied_and_refuses() {
        let total = Arc::new(QueuedBytes::default());
        let o = outbox(100, 10, &total);
        o.push(text(50, 'a'), None).unwrap(); // into an empty queue: taken
        assert_eq!(o.push(text(1, 'b'), None), Err(Refused::Overflow));
        assert_eq!((o.bytes(), total.now()), (0, 0), "the queued memory is freed at once");
        assert_eq!(o.push(text(1, 'b'), None), Err(Refused::Closed));
        let frames = outbox(2, 1000, &total);
        frames.push(text(1, 'a'), None).unwrap();
        frames.push(text(1, 'a'), None).unwrap();
        assert_eq!(frames.push(text(1, 'a'), None), Err(Refused::Overflow), "the frame bound holds too");
    }

    #[test]
    fn the_total_budget_is_shared_and_released_on_drop() {
        let total = Arc::new(QueuedBytes::default());
        let a = outbox(100, 800, &total);
        let b = outbox(100, 800, &total);
        a.push(text(600, 'a'), None).unwrap();
        a.push(text(100, 'a'), None).unwrap();
        b.push(text(250, 'b'), None).unwrap();
        assert_eq!(b.push(text(250, 'b'), None), Err(Refused::Overflow), "past the total of 1000");
        assert_eq!(total.now(), 700);
        drop(a);
        assert_eq!(total.now(), 0);
    }

    #[tokio::test]
    async fn the_writer_drains_then_ends() {
        let total = Arc::new(QueuedBytes::default());
        let o = Arc::new(outbox(10, 100, &total));
        let writer = {
            let o = o.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some(t) = o.recv().await {
                    got.push(t.as_str().to_owned());
                }
                got
            })
        };
        o.push(text(1, 'a'), None).unwrap();
        tokio::task::yield_now().await;
        o.push(text(1, 'b'), None).unwrap();
        o.finish();
        assert_eq!(writer.await.unwrap(), ["a", "b"]);
    }
}
