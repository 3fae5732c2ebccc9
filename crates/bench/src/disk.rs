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
}

impl Durable {
    /// Quantile `q` (0..1) of the single-writer latency, in milliseconds.
    pub fn single_ms(&self, q: f64) -> f64 {
        if self.single.is_empty() {
            return f64::NAN;
        }
        let i = ((self.single.len() as f64 * q) as usize).min(self.single.len() - 1);
        self.single[i].as_secs_f64() * 1e3
    }
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

/// Measures `writers` parallel append + `fdatasync` loops for `window`, then one writer
/// alone for `window`, in a fresh directory under `home_dir` (removed afterwards).
pub fn measure(home_dir: &Path, writers: usize, window: Duration) -> Result<Durable> {
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
    Ok(Durable { parallel_per_sec, writers, single })
}
