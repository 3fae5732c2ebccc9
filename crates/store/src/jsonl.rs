//! The one-time import of the `sessions/<id>.jsonl` files older picoclaw versions wrote
//! (an owner record `{"v":1,"owner":…}`, then `{"role","content","ts_ms"}` lines).
//!
//! Every file is read into the database in one transaction that also records
//! `meta.jsonl_imported`; only after that commit are the files moved to
//! `sessions/jsonl-backup/`. A crash before the commit leaves the database as it was (the
//! next start imports again); a crash after it leaves files the next start only moves.
//! Torn or unreadable lines are skipped, as the old reader did.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;

use crate::StoreError;

const DONE: &str = "jsonl_imported";
/// Where the imported files are kept.
pub(crate) const BACKUP: &str = "jsonl-backup";
/// Longest line read from an old file.
const MAX_LINE: u64 = 8 * 1024 * 1024;

#[derive(Deserialize)]
struct Header {
    owner: String,
    #[serde(default)]
    created_ms: u64,
}

#[derive(Deserialize)]
struct Line {
    role: String,
    content: String,
    #[serde(default)]
    ts_ms: u64,
}

fn storage(e: impl std::fmt::Display) -> StoreError {
    StoreError::Storage(e.to_string())
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn session_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<_> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "jsonl"))
        .filter_map(|p| Some((p.file_stem()?.to_str()?.to_owned(), p)))
        .collect();
    out.sort();
    out
}

/// Imports the old files of `dir` once (see the module docs).
pub(crate) fn import(conn: &mut Connection, dir: &Path) -> Result<(), StoreError> {
    let files = session_files(dir);
    let done: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = ?1", params![DONE], |r| r.get(0))
        .optional()
        .map_err(storage)?;
    if done.is_none() && !files.is_empty() {
        let tx = conn.transaction().map_err(storage)?;
        let mut sessions = 0usize;
        for (id, path) in &files {
            if read_file(&tx, id, path)? {
                sessions += 1;
            }
        }
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
            params![DONE, sessions.to_string()],
        )
        .map_err(storage)?;
        tx.commit().map_err(storage)?;
        tracing::info!(
            sessions,
            "imported the session history of sessions/*.jsonl into sessions/sessions.db"
        );
    } else if done.is_none() {
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, '0')", params![DONE])
            .map_err(storage)?;
    }
    if !files.is_empty() {
        let backup = dir.join(BACKUP);
        std::fs::create_dir_all(&backup).map_err(storage)?;
        for (_, path) in &files {
            if let Some(name) = path.file_name() {
                std::fs::rename(path, backup.join(name)).map_err(storage)?;
            }
        }
        tracing::info!("the imported sessions/*.jsonl files were kept in sessions/{BACKUP}/");
    }
    Ok(())
}

/// Reads one old file into the database; `false` when it held nothing.
fn read_file(conn: &Connection, id: &str, path: &Path) -> Result<bool, StoreError> {
    let file = std::fs::File::open(path).map_err(|e| storage(format!("{}: {e}", path.display())))?;
    let mut reader = BufReader::new(file);
    let mut owner = String::new();
    let mut created = 0u64;
    let mut messages: Vec<(String, String, u64)> = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n =
            std::io::Read::take(&mut reader, MAX_LINE + 1).read_until(b'\n', &mut buf).map_err(storage)?;
        if n == 0 || buf.last() != Some(&b'\n') {
            break; // end, or a torn last line
        }
        if let Ok(h) = serde_json::from_slice::<Header>(&buf) {
            if owner.is_empty() {
                owner = h.owner;
                created = h.created_ms;
            }
            continue;
        }
        if let Ok(line) = serde_json::from_slice::<Line>(&buf)
            && matches!(line.role.as_str(), "user" | "assistant")
        {
            messages.push((line.role, line.content, line.ts_ms));
        }
    }
    if owner.is_empty() && messages.is_empty() {
        return Ok(false);
    }
    let first_ts = messages.first().map_or(created, |m| m.2);
    let last_ts = messages.last().map_or(created, |m| m.2);
    let bytes: usize = messages.iter().map(|m| m.1.len()).sum();
    conn.execute(
        "INSERT OR IGNORE INTO sessions (id, owner, created_ms, last_ms, last_seq, messages, bytes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            id,
            owner,
            int(if created == 0 { first_ts } else { created }),
            int(last_ts),
            int(messages.len() as u64),
            int(messages.len() as u64),
            int(bytes as u64)
        ],
    )
    .map_err(storage)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO messages (session, seq, role, content, ts_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(storage)?;
    for (i, (role, content, ts)) in messages.iter().enumerate() {
        insert.execute(params![id, int(i as u64 + 1), role, content, int(*ts)]).map_err(storage)?;
    }
    Ok(true)
}
