//! Frames across replicas: every frame a replica sends to a session's sockets is published
//! on the PostgreSQL channel `picoclaw_frames` (`NOTIFY`), and every other replica
//! delivers it to its own sockets of that session, in the order it was sent.
//!
//! - A notification carries the frame itself when it fits (PostgreSQL's payload limit is
//!   8000 bytes; [`INLINE_MAX`] below it); a larger frame is written to `picoclaw_frames`
//!   and the notification carries only its id, fetched by the listeners (rows older than a
//!   minute are deleted). Frames are protocol frames: they never hold a credential.
//! - One publisher task and one listening connection per replica, each reconnecting with a
//!   pause after a failure. Publishing never blocks a turn: the queue is bounded
//!   ([`QUEUE`]); past it a frame reaches only the local sockets (logged).
//! - Notifications of one sender arrive in its commit order on the one listening
//!   connection, and large frames are fetched before the next notification is handled,
//!   so order is kept.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_postgres::NoTls;

use crate::postgres::{PgTarget, RETRY, listen, now_ms};

/// The notification channel.
pub const CHANNEL: &str = "picoclaw_frames";
/// Frames published inline up to this many bytes of payload.
pub const INLINE_MAX: usize = 7000;
/// Frames waiting to be published, and frames received waiting for the hub.
pub const QUEUE: usize = 4096;
/// How long a large frame's row is kept.
const KEEP_MS: i64 = 60_000;

/// One frame for one session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Envelope {
    /// The session.
    #[serde(rename = "s")]
    pub session: String,
    /// The frame's `seq` (already inside `body`).
    #[serde(rename = "q")]
    pub seq: u64,
    /// For protocol-2 sockets only.
    #[serde(rename = "v")]
    pub v2_only: bool,
    /// The `message_id` of a `message.update` (it replaces a queued older update).
    #[serde(rename = "u", default, skip_serializing_if = "Option::is_none")]
    pub update_of: Option<String>,
    /// The encoded frame.
    #[serde(rename = "b")]
    pub body: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Note {
    /// The sending replica.
    o: String,
    /// The frame inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    f: Option<Envelope>,
    /// Or the id of its row.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<i64>,
    /// Or: this session was deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<String>,
}

/// What one replica tells the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relayed {
    /// A frame for a session's sockets.
    Frame(Envelope),
    /// A session was deleted (`DELETE /api/sessions/{id}`): close its sockets (4004).
    Deleted {
        /// The session.
        session: String,
    },
}

/// The publishing side; frames of other replicas come out of the receiver
/// [`PgBus::start`] returns.
#[derive(Debug, Clone)]
pub struct PgBus {
    tx: mpsc::Sender<Relayed>,
}

impl PgBus {
    /// Starts the publisher and the listener on the current runtime.
    pub fn start(target: &PgTarget) -> (PgBus, mpsc::Receiver<Relayed>) {
        let origin = format!(
            "{}-{}",
            std::process::id(),
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
        );
        let (tx, rx) = mpsc::channel(QUEUE);
        let (deliver, delivered) = mpsc::channel(QUEUE);
        tokio::spawn(publisher(target.clone(), origin.clone(), rx));
        tokio::spawn(listener(target.clone(), origin, deliver));
        (PgBus { tx }, delivered)
    }

    /// Queues a frame for the other replicas (never waits).
    pub fn publish(&self, frame: Envelope) {
        if self.tx.try_send(Relayed::Frame(frame)).is_err() {
            tracing::warn!("replica fan-out: the publish queue is full; a frame reached local sockets only");
        }
    }

    /// Tells the other replicas that `session` was deleted (never waits).
    pub fn publish_deleted(&self, session: &str) {
        if self.tx.try_send(Relayed::Deleted { session: session.to_owned() }).is_err() {
            tracing::warn!(
                "replica fan-out: the publish queue is full; other replicas keep their sockets of a deleted session"
            );
        }
    }
}

async fn connect(target: &PgTarget) -> Option<tokio_postgres::Client> {
    match target.config().connect(NoTls).await {
        Ok((client, conn)) => {
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::warn!("replica fan-out: connection ended: {e}");
                }
            });
            Some(client)
        }
        Err(e) => {
            tracing::warn!("replica fan-out: cannot connect: {e}");
            None
        }
    }
}

async fn publisher(target: PgTarget, origin: String, mut rx: mpsc::Receiver<Relayed>) {
    let mut client: Option<tokio_postgres::Client> = None;
    let mut last_cleanup = now_ms();
    while let Some(relayed) = rx.recv().await {
        if client.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
            client = connect(&target).await;
        }
        let Some(c) = &client else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        let sent = match relayed {
            Relayed::Frame(frame) => {
                let inline = serde_json::to_string(&Note {
                    o: origin.clone(),
                    f: Some(frame.clone()),
                    r: None,
                    d: None,
                });
                match inline {
                    Ok(text) if text.len() <= INLINE_MAX => notify(c, &text).await,
                    _ => publish_large(c, &origin, &frame).await,
                }
            }
            Relayed::Deleted { session } => {
                // A session id is at most 128 characters: always inline.
                let note = Note { o: origin.clone(), f: None, r: None, d: Some(session) };
                notify(c, &serde_json::to_string(&note).unwrap_or_default()).await
            }
        };
        if let Err(e) = sent {
            tracing::warn!("replica fan-out: a frame was not published: {e}");
            client = None;
        }
        if now_ms() - last_cleanup > KEEP_MS / 2
            && let Some(c) = &client
        {
            last_cleanup = now_ms();
            let _ = c
                .execute("DELETE FROM picoclaw_frames WHERE created_ms < $1", &[&(now_ms() - KEEP_MS)])
                .await;
        }
    }
}

async fn publish_large(
    c: &tokio_postgres::Client,
    origin: &str,
    frame: &Envelope,
) -> Result<(), tokio_postgres::Error> {
    let row = c
        .query_one(
            "INSERT INTO picoclaw_frames (session, seq, v2_only, update_of, body, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            &[
                &frame.session,
                &i64::try_from(frame.seq).unwrap_or(i64::MAX),
                &frame.v2_only,
                &frame.update_of,
                &frame.body,
                &now_ms(),
            ],
        )
        .await?;
    let id: i64 = row.get(0);
    let note = serde_json::to_string(&Note { o: origin.to_owned(), f: None, r: Some(id), d: None })
        .unwrap_or_default();
    notify(c, &note).await
}

async fn notify(c: &tokio_postgres::Client, note: &str) -> Result<(), tokio_postgres::Error> {
    c.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &note]).await.map(|_| ())
}

async fn listener(target: PgTarget, origin: String, deliver: mpsc::Sender<Relayed>) {
    loop {
        if deliver.is_closed() {
            return;
        }
        listen_once(&target, &origin, &deliver).await;
        tokio::time::sleep(RETRY).await;
    }
}

/// One listening connection, until it fails.
async fn listen_once(target: &PgTarget, origin: &str, deliver: &mpsc::Sender<Relayed>) {
    let Some(mut listening) = listen(target, CHANNEL, "replica fan-out").await else {
        return;
    };
    tracing::info!("replica fan-out: listening for frames of other replicas");
    while let Some(payload) = listening.notes.recv().await {
        let Ok(note) = serde_json::from_str::<Note>(&payload) else { continue };
        if note.o == origin {
            continue;
        }
        if let Some(session) = note.d {
            if deliver.send(Relayed::Deleted { session }).await.is_err() {
                break;
            }
            continue;
        }
        let frame = match (note.f, note.r) {
            (Some(f), _) => f,
            (None, Some(id)) => {
                match listening
                    .client
                    .query_opt(
                        "SELECT session, seq, v2_only, update_of, body FROM picoclaw_frames WHERE id = $1",
                        &[&id],
                    )
                    .await
                {
                    Ok(Some(r)) => Envelope {
                        session: r.get(0),
                        seq: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                        v2_only: r.get(2),
                        update_of: r.get(3),
                        body: r.get(4),
                    },
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::warn!("replica fan-out: cannot fetch a large frame: {e}");
                        break;
                    }
                }
            }
            (None, None) => continue,
        };
        if deliver.send(Relayed::Frame(frame)).await.is_err() {
            break;
        }
    }
}
