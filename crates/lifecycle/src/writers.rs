//! Which gateways write a home: each running gateway refreshes a small heartbeat file
//! `PICOCLAW_HOME/.gateways/<host>-<pid>.json` (host, pid, last beat), and removes it when it
//! stops. The `.picoclaw.pid` lock keeps two gateways of one machine out of one home; a
//! home on a volume shared by several machines (several replicas on one `ReadWriteMany`
//! volume) is not protected by it, and its heartbeats show it: `doctor` reports two fresh
//! heartbeats of different gateways as an error (`shared-home`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use picoclaw_config::Paths;

/// How often a gateway beats.
pub const BEAT_EVERY: Duration = Duration::from_secs(5);
/// A heartbeat younger than this is a live gateway.
pub const FRESH: Duration = Duration::from_secs(20);
/// Heartbeat files read at most (a directory filled by something else stays bounded).
const MAX_FILES: usize = 64;

/// One gateway's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Beat {
    /// Host name of its machine.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
    /// Unix milliseconds of its last beat.
    pub seen_ms: u64,
}

fn dir(paths: &Paths) -> PathBuf {
    paths.home().join(".gateways")
}

/// This machine's host name (`/proc/sys/kernel/hostname`, else `/etc/hostname`).
pub fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_owned())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn file_name(host: &str, pid: u32) -> String {
    let host: String =
        host.chars().filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c)).take(64).collect();
    format!("{host}-{pid}.json")
}

/// Writes (atomically) this process's heartbeat.
pub fn beat(paths: &Paths) -> std::io::Result<()> {
    let dir = dir(paths);
    let me = Beat { host: host_name(), pid: std::process::id(), seen_ms: now_ms() };
    let path = dir.join(file_name(&me.host, me.pid));
    let body = serde_json::to_vec(&me).map_err(std::io::Error::other)?;
    // A 0700 directory, a 0600 file replaced atomically.
    picoclaw_config::files::write_atomic(&path, &body, 0o600)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Removes this process's heartbeat (a clean stop).
pub fn remove(paths: &Paths) {
    let _ = std::fs::remove_file(dir(paths).join(file_name(&host_name(), std::process::id())));
}

/// The heartbeats of `home` younger than [`FRESH`], one per gateway.
pub fn fresh(paths: &Paths) -> Vec<Beat> {
    read(&dir(paths), now_ms())
}

fn read(dir: &Path, now: u64) -> Vec<Beat> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let fresh_ms = u64::try_from(FRESH.as_millis()).unwrap_or(u64::MAX);
    let mut out: Vec<Beat> = entries
        .flatten()
        .take(MAX_FILES)
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| {
            let text = std::fs::read(e.path()).ok()?;
            serde_json::from_slice::<Beat>(&text).ok()
        })
        .filter(|b| now.saturating_sub(b.seen_ms) <= fresh_ms)
        .collect();
    out.sort_by(|a, b| (&a.host, a.pid).cmp(&(&b.host, b.pid)));
    out.dedup_by(|a, b| a.host == b.host && a.pid == b.pid);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fresh_parsable_beats_count() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = Paths::at(tmp.path());
        beat(&paths).unwrap();
        let d = dir(&paths);
        let old = Beat { host: "old".into(), pid: 1, seen_ms: now_ms() - 60_000 };
        std::fs::write(d.join("old-1.json"), serde_json::to_vec(&old).unwrap()).unwrap();
        std::fs::write(d.join("junk.json"), b"not json").unwrap();
        let got = fresh(&paths);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].pid, std::process::id());
        remove(&paths);
        assert!(fresh(&paths).is_empty());
    }
}
