//! The storage baseline: what the filesystem holding the gateway's home allows when every
//! turn must reach the disk. The gateway appends each finished turn to its session file
//! and `fdatasync`s it before the turn ends (issue 4), so its chat throughput and latency
//! can never beat N writers doing only that, one file each, on the same filesystem in the
//! same run. Measured with plain threads and std files: no gateway code involved.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

/// One line of about the size the gateway writes for an echo turn (user + assistant line).
const LINE: &[u8] = br#"{"role":"user","content":"hello from picoclaw-bench","ts_ms":1764614400000}
{"role":"assistant","content":"hello from picoclaw-bench","ts_ms":1764614400000}
"#;

/// What the filesystem did.
#[derive(Debug, Clone)]
pub struct Durable {
    /// Appends + `fdatasync` per second with `writers` files in parallel.
    pub parallel_per_sec: f64,
    /// Writers (one file each).
    pub writers: usize,
    /// Latency of one append + `fdatasync` with a single writer, sorted.
    pub single: Vec<Duration>,
    /// Latency of each append + `fdatasync` when `writers` files are synced at a fixed
    /// total rate (the latency row's load), sorted; the first sixth is warm-up, dropped.
    pub paced: Vec<Duration>,
    /// The total rate of `paced`, per second.
    pub paced_rate: u32,
}

impl Durable {
    /// Quantile `q` (0..1) of the single-writer latency, in milliseconds.
    pub fn single_ms(&self, q: f64) -> f64 {
        quantile_ms(&self.single, q)
    }

    /// Quantile `q` (0..1) of the paced latency, in milliseconds.
    pub fn paced_ms(&self, q: f64) -> f64 {
        quantile_ms(&self.paced, q)
    }
}

fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    sorted[i].as_secs_f64() * 1e3
}

fn open(dir: &Path, i: usize) -> Result<File> {
    let path = dir.join(format!("durable-{i}.jsonl"));
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("open {}", path.display()))
}

/// Appends and syncs in a loop until `until`; the latency of each append.
fn writer(mut file: File, until: Instant) -> Result<Vec<Duration>> {
    let mut took = Vec::new();
    while Instant::now() < until {
        let t = Instant::now();
        file.write_all(LINE)?;
        file.sync_data()?;
        took.push(t.elapsed());
    }
    Ok(took)
}

/// Appends and syncs every `every`, starting at `first`, until `until`; the latency of
/// each append after the first sixth of the window.
fn paced_writer(mut file: File, first: Instant, every: Duration, until: Instant) -> Result<Vec<Duration>> {
    let warm = first + (until - first) / 6;
    let mut next = first;
    let mut took = Vec::new();
    while next < until {
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = Instant::now();
        file.write_all(LINE)?;
        file.sync_data()?;
        if t >= warm {
            took.push(t.elapsed());
        }
        next += every;
    }
    Ok(took)
}

/// Measures `writers` parallel append + `fdatasync` loops for `window`, then one writer
/// alone for `window`, then `writers` files synced at `rate` per second in all for
/// `window`, in a fresh directory under `home_dir` (removed afterwards).
pub fn measure(home_dir: &Path, writers: usize, window: Duration, rate: u32) -> Result<Durable> {
    let dir = tempfile::Builder::new().prefix("picoclaw-bench-disk-").tempdir_in(home_dir)?;
    let until = Instant::now() + window;
    let mut done = 0usize;
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for i in 0..writers {
            let file = open(dir.path(), i)?;
            handles.push(scope.spawn(move || writer(file, until)));
        }
        for h in handles {
            let took = h.join().map_err(|_| anyhow::anyhow!("a disk writer thread panicked"))??;
            done += took.len();
        }
        Ok(())
    })?;
    let parallel_per_sec = done as f64 / window.as_secs_f64();
    let mut single = writer(open(dir.path(), writers)?, Instant::now() + window)?;
    single.sort_unstable();
    // Each writer syncs every writers/rate seconds, staggered evenly, like the latency
    // row's 100 sockets.
    let every = Duration::from_secs_f64(writers as f64 / f64::from(rate.max(1)));
    let start = Instant::now() + Duration::from_millis(50);
    let until = start + window;
    let mut paced = Vec::new();
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for i in 0..writers {
            let file = open(dir.path(), writers + 1 + i)?;
            let first = start + every.mul_f64(i as f64 / writers as f64);
            handles.push(scope.spawn(move || paced_writer(file, first, every, until)));
        }
        for h in handles {
            paced.extend(h.join().map_err(|_| anyhow::anyhow!("a disk writer thread panicked"))??);
        }
        Ok(())
    })?;
    paced.sort_unstable();
    Ok(Durable { parallel_per_sec, writers, single, paced, paced_rate: rate })
}
