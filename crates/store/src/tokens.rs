//! Named tokens shared by several gateway replicas (issue 20, item 3): with `storage.url`,
//! the `tokens:` list of `.security.yml` lives in one row of `picoclaw_tokens`, so a token
//! created, rotated or revoked through any replica (or `picoclaw token` on any home of the
//! deployment) is the same record for all of them.
//!
//! - [`PgTokens`] implements [`SharedTokens`]: every change is one transaction holding
//!   the row's lock (`SELECT … FOR UPDATE`), and announces itself with
//!   `NOTIFY picoclaw_tokens` in the same transaction (delivered at commit). The
//!   notification carries only the row's new version, never a record.
//! - The first access on an empty database by a home that has named tokens stores that
//!   home's validated `tokens:` list (`seed`), once: moving a single gateway onto
//!   PostgreSQL keeps its tokens. A home without named tokens stores nothing, so it cannot
//!   claim the row first. Once the row exists, the homes' `tokens:` lists are not read.
//! - [`watch_tokens`]: one listening connection per replica; its [`TokenFeed`] moves on
//!   every change and after every (re)connection (a notification may have been missed
//!   while it was down), and says whether the listener is up. The gateway reads the
//!   tokens again when it moves (sockets of a revoked token close with 4001, its tickets
//!   are dropped) and suspends every named token while the listener is down.
//! - The records are hash-only (`sha256` of each secret): the table never holds a secret.
//!
//! Token operations are rare and synchronous (they run on blocking threads, or in the CLI
//! without a runtime), so each opens its own connection on a thread of its own
//! ([`crate::postgres::with_connection`]), bounded like every other wait.

use std::sync::Arc;

use picoclaw_auth::named::{SharedTokens, TokenFile, TokenStoreError};
use picoclaw_config::{Paths, Settings};
use picoclaw_credentials::Credentials;
use serde_json::Value;
use tokio::sync::watch;

use crate::postgres::{PgTarget, listen, now_ms, with_connection};
use crate::{StoreError, storage_target};

/// The notification channel of token changes.
pub const TOKENS_CHANNEL: &str = "picoclaw_tokens";

/// The token records of this home: `.security.yml`, with the named tokens in PostgreSQL
/// when `storage.url` is set. The one way `picoclaw token`, the TUI, the admin API, the
/// dashboard's counts and the gateway's verifier find them, so they cannot disagree.
pub fn token_records(paths: &Paths, settings: &Settings, credentials: &Credentials) -> TokenFile {
    match storage_target(settings, credentials) {
        Some(target) => TokenFile::with_shared(paths.security_file(), Arc::new(PgTokens { target })),
        None => TokenFile::new(paths.security_file()),
    }
}

/// The named tokens in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgTokens {
    target: PgTarget,
}

impl PgTokens {
    /// The tokens in the database of `target`.
    pub fn new(target: PgTarget) -> PgTokens {
        PgTokens { target }
    }
}

fn shared(e: StoreError) -> TokenStoreError {
    let message = match e {
        StoreError::Storage(m) => m,
        other => other.to_string(),
    };
    TokenStoreError::Shared { message }
}

fn decode(text: &str) -> Result<Value, TokenStoreError> {
    serde_json::from_str(text).map_err(|e| TokenStoreError::Shared {
        message: format!("the row of picoclaw_tokens is not JSON ({e}); restore it from a backup"),
    })
}

fn encode(tokens: &Value) -> String {
    // A `Value` always serializes.
    serde_json::to_string(tokens).unwrap_or_else(|_| "null".to_owned())
}

/// Stores `seed` when the table has no row yet (the first replica or CLI to arrive with
/// named tokens brings its home's list); a concurrent first arrival loses quietly. A
/// `null` seed (a home without named tokens) stores nothing.
async fn seed_once(client: &tokio_postgres::Client, seed: &Value) -> Result<(), StoreError> {
    if seed.is_null() {
        return Ok(());
    }
    let inserted = client
        .execute(
            "INSERT INTO picoclaw_tokens (id, version, tokens, updated_ms) VALUES (1, 1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
            &[&encode(seed), &now_ms()],
        )
        .await
        .map_err(crate::postgres::db)?;
    if inserted == 1 {
        let count = seed.as_array().map_or(0, Vec::len);
        tracing::info!(count, "shared tokens: stored this home's named tokens in PostgreSQL (first use)");
    }
    Ok(())
}

impl SharedTokens for PgTokens {
    fn read(&self, seed: &Value) -> Result<Value, TokenStoreError> {
        let seed = seed.clone();
        let text = with_connection(&self.target, "reading the shared tokens", |client| async move {
            seed_once(&client, &seed).await?;
            let row = client
                .query_opt("SELECT tokens FROM picoclaw_tokens WHERE id = 1", &[])
                .await
                .map_err(crate::postgres::db)?;
            Ok(row.map(|r| r.get::<_, String>(0)))
        })
        .map_err(shared)?;
        // No row: no home with named tokens has used the database yet.
        text.map_or(Ok(Value::Null), |t| decode(&t))
    }

    fn update(
        &self,
        seed: &Value,
        announce: bool,
        change: &mut (dyn FnMut(&mut Value) -> Result<(), TokenStoreError> + Send),
    ) -> Result<(), TokenStoreError> {
        let seed = seed.clone();
        with_connection(&self.target, "changing the shared tokens", |mut client| async move {
            seed_once(&client, &seed).await?;
            // The row to lock, empty when no home brought tokens.
            client
                .execute(
                    "INSERT INTO picoclaw_tokens (id, version, tokens, updated_ms) VALUES (1, 1, 'null', $1) \
                     ON CONFLICT (id) DO NOTHING",
                    &[&now_ms()],
                )
                .await
                .map_err(crate::postgres::db)?;
            let tx = client.transaction().await.map_err(crate::postgres::db)?;
            let row = tx
                .query_one("SELECT tokens FROM picoclaw_tokens WHERE id = 1 FOR UPDATE", &[])
                .await
                .map_err(crate::postgres::db)?;
            let mut tokens = match decode(&row.get::<_, String>(0)) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            if let Err(e) = change(&mut tokens) {
                // Nothing written: the transaction rolls back when dropped.
                return Ok(Err(e));
            }
            let version: i64 = tx
                .query_one(
                    "UPDATE picoclaw_tokens SET tokens = $1, version = version + 1, updated_ms = $2 \
                     WHERE id = 1 RETURNING version",
                    &[&encode(&tokens), &now_ms()],
                )
                .await
                .map_err(crate::postgres::db)?
                .get(0);
            if announce {
                tx.execute("SELECT pg_notify($1, $2)", &[&TOKENS_CHANNEL, &version.to_string()])
                    .await
                    .map_err(crate::postgres::db)?;
            }
            tx.commit().await.map_err(crate::postgres::db)?;
            Ok(Ok(()))
        })
        .map_err(shared)?
    }
}

/// How often the listening connection also reads the row's version: the backstop for a
/// notification lost on a connection that died unnoticed, and the check that the
/// connection still answers.
pub const POLL_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The version of the shared tokens' row (0: no row yet).
async fn version(client: &tokio_postgres::Client) -> Result<i64, StoreError> {
    let row = client
        .query_opt("SELECT version FROM picoclaw_tokens WHERE id = 1", &[])
        .await
        .map_err(crate::postgres::db)?;
    Ok(row.map_or(0, |r| r.get(0)))
}

/// What a replica knows of the shared tokens' row, as [`watch_tokens`] last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenFeed {
    /// Whether the listening connection is up: while it is not, a change made through
    /// another replica may go unseen here.
    pub listening: bool,
    /// Counts the changes announced (and every (re)connection, since a change may have
    /// been missed while down): the tokens are to be read again when it moves.
    pub changes: u64,
}

/// Follows the shared tokens: [`TokenFeed::changes`] moves on every change and every
/// (re)connection of the listener, [`TokenFeed::listening`] says whether it is up (and a
/// failed attempt to connect is announced too). Besides the notifications, the row's
/// version is read every [`POLL_EVERY`]: a change whose notification was lost is
/// announced then, and a connection that stops answering is replaced. A `watch` channel,
/// so the receiver always sees the latest state and no signal can be lost. Runs until
/// the receiver is dropped.
pub fn watch_tokens(target: &PgTarget) -> watch::Receiver<TokenFeed> {
    let (tx, rx) = watch::channel(TokenFeed::default());
    let target = target.clone();
    let changed = |tx: &watch::Sender<TokenFeed>| tx.send_modify(|f| f.changes += 1);
    let lost = |tx: &watch::Sender<TokenFeed>| tx.send_modify(|f| f.listening = false);
    tokio::spawn(async move {
        let mut seen: Option<i64> = None;
        loop {
            if tx.is_closed() {
                return;
            }
            let Some(mut listening) = listen(&target, TOKENS_CHANNEL, "shared tokens").await else {
                lost(&tx);
                tokio::time::sleep(crate::postgres::RETRY).await;
                continue;
            };
            tracing::info!("shared tokens: listening for changes made through other replicas");
            // Catch up on what happened while not listening.
            tx.send_modify(|f| {
                f.listening = true;
                f.changes += 1;
            });
            let mut poll = tokio::time::interval(POLL_EVERY);
            loop {
                tokio::select! {
                    note = listening.notes.recv() => {
                        if note.is_none() {
                            tracing::warn!("shared tokens: the listening connection closed");
                            break;
                        }
                        changed(&tx);
                    }
                    _ = poll.tick() => {
                        let read = tokio::time::timeout(POLL_EVERY * 2, version(&listening.client)).await;
                        match read {
                            Ok(Ok(v)) => {
                                if seen.is_some_and(|s| s != v) {
                                    changed(&tx);
                                }
                                seen = Some(v);
                            }
                            Ok(Err(e)) => {
                                tracing::warn!("shared tokens: the listening connection failed: {e}");
                                break;
                            }
                            Err(_) => {
                                tracing::warn!("shared tokens: the listening connection stopped answering");
                                break;
                            }
                        }
                    }
                    () = tx.closed() => return,
                }
            }
            lost(&tx);
            tokio::time::sleep(crate::postgres::RETRY).await;
        }
    });
    rx
}
