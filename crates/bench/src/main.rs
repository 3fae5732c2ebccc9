//! picoclaw-bench: the load generator and the baseline server behind BENCHMARKS.md.
//!
//! Every run starts the baseline (a bare WebSocket echo on the same stack, as a child
//! process) and the real `picoclaw gateway` (the release binary, temp home, port 0) in the
//! same invocation, drives the same workload against both over loopback, and prints each
//! figure with its absolute value, the baseline's, their ratio and the budget of issue 8.

mod baseline;
mod bounds;
mod disk;
mod http;
mod load;
mod servers;
mod storm;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

use crate::load::Op;
use crate::servers::{Kind, Launch, Server};

/// Load generator and baseline server for picoclaw's performance budget (BENCHMARKS.md).
#[derive(Debug, Parser)]
#[command(name = "picoclaw-bench", version)]
struct Args {
    /// What to measure (default: every row).
    #[command(subcommand)]
    mode: Option<Mode>,
    /// Small counts and short windows: the whole run finishes in under a minute.
    #[arg(long, global = true)]
    quick: bool,
    /// The picoclaw binary to measure [default: `picoclaw` beside this binary, i.e.
    /// target/release/picoclaw].
    #[arg(long, global = true, value_name = "PATH")]
    picoclaw: Option<PathBuf>,
    /// Directory for the temporary PICOCLAW_HOMEs [default: the system temp dir]. The
    /// gateway fsyncs session files there, so its filesystem shows in the figures.
    #[arg(long, global = true, value_name = "DIR")]
    home_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Subcommand)]
enum Mode {
    /// Every row below, in order.
    All,
    /// Stripped release binary size.
    Size,
    /// Idle RSS with Pico enabled.
    Rss,
    /// exec → /ready 200, median over several starts.
    Startup,
    /// N authenticated idle sockets held for T seconds; RSS growth per socket.
    Idle {
        /// Sockets to hold [default: 10000, quick: 1000].
        #[arg(long)]
        connections: Option<usize>,
        /// Seconds to hold them [default: 60, quick: 5].
        #[arg(long)]
        hold: Option<u64>,
    },
    /// Authenticated handshakes per second.
    Handshake,
    /// Round trips per second, 100 sockets, closed loop.
    Echo,
    /// Echo round trips with two gateway replicas on one PostgreSQL (50 sockets each)
    /// against one gateway on SQLite (100 sockets), same run (docs/storage.md). Not part of
    /// `all`: it needs a database.
    Replicas {
        /// `storage.url` of an empty or picoclaw database (postgres://user@host:port/db).
        #[arg(long)]
        storage_url: String,
        /// A file holding that user's password (given to the replicas as
        /// PICOCLAW_STORAGE_PASSWORD_FILE).
        #[arg(long)]
        storage_password_file: PathBuf,
    },
    /// p50/p99/p999 round trip at a fixed offered rate.
    Latency {
        /// Offered messages per second [default: 5000].
        #[arg(long, default_value_t = 5000)]
        rate: u32,
    },
    /// (context) Durable appends/s and fdatasync latency of the homes' filesystem: the
    /// ceiling for any turn that must reach the disk before it ends.
    Disk,
    /// Launcher RSS after 10,000 failed logins from 1,000 loopback addresses.
    Storm {
        /// Failed logins [default: 10000, quick: 2000].
        #[arg(long)]
        logins: Option<usize>,
    },
    /// Issue 15's attack shapes: RSS with sockets that stop reading, wrong tokens verified
    /// from 16,384 addresses, /health under an idle-connection flood.
    Bounds,
    /// Run the baseline server (used by the bench itself).
    #[command(hide = true)]
    BaselineServer {
        /// File to write the bound port to.
        #[arg(long)]
        port_file: PathBuf,
        /// Answer each text frame with the three frames of a gateway echo turn.
        #[arg(long)]
        pico_frames: bool,
    },
}

/// The runtime both the gateway and the baseline use: multi-thread, min(cores, 4) workers,
/// 256 KiB stacks.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_stack_size(256 * 1024)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// One line of the report.
struct Row {
    figure: String,
    gateway: String,
    baseline: String,
    ratio: String,
    target: String,
    verdict: &'static str,
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / 1048576.0)
}

/// Sizes of the run.
struct Plan {
    quick: bool,
    starts: usize,
    idle_conns: usize,
    idle_hold: Duration,
    window: Duration,
    handshake_workers: usize,
    logins: usize,
    /// Alternating baseline/gateway rounds per throughput or latency figure (median kept).
    rounds: usize,
    /// How long after the send window a fixed-rate reply may still arrive.
    grace: Duration,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                starts: 5,
                idle_conns: 1000,
                idle_hold: Duration::from_secs(5),
                window: Duration::from_secs(3),
                handshake_workers: 32,
                logins: 2000,
                rounds: 1,
                grace: Duration::from_secs(2),
            }
        } else {
            Plan {
                quick,
                starts: 20,
                idle_conns: 10_000,
                idle_hold: Duration::from_secs(60),
                window: Duration::from_secs(10),
                handshake_workers: 32,
                logins: 10_000,
                rounds: 3,
                grace: Duration::from_secs(10),
            }
        }
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mode = args.mode.clone().unwrap_or(Mode::All);
    if let Mode::BaselineServer { port_file, pico_frames } = &mode {
        return baseline::serve(port_file, *pico_frames);
    }
    let bench = std::env::current_exe().context("cannot find the bench executable")?;
    let picoclaw = match args.picoclaw {
        Some(p) => p,
        None => bench.parent().map(|d| d.join("picoclaw")).context("bench has no parent directory")?,
    };
    if !picoclaw.is_file() {
        bail!(
            "no picoclaw binary at {}; build it first with `cargo build --release -p picoclaw -p picoclaw-bench` \
             or pass --picoclaw PATH",
            picoclaw.display()
        );
    }
    let nofile = raise_nofile();
    let home_dir = args.home_dir.unwrap_or_else(std::env::temp_dir);
    let launch = Launch { picoclaw, bench, home_dir };
    let plan = Plan::new(args.quick);
    eprintln!(
        "picoclaw-bench ({} mode) measuring {}; homes in {}; open-file limit {nofile}",
        if plan.quick { "quick" } else { "full" },
        launch.picoclaw.display(),
        launch.home_dir.display()
    );
    let rows = runtime()?.block_on(run(&launch, &plan, &mode))?;
    print_table(&rows);
    Ok(())
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit (children inherit it).
fn raise_nofile() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let Some(max) = limit.maximum {
        let _ = setrlimit(Resource::Nofile, Rlimit { current: Some(max), maximum: Some(max) });
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

async fn run(launch: &Launch, plan: &Plan, mode: &Mode) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let all = matches!(mode, Mode::All);
    if all || matches!(mode, Mode::Size) {
        rows.push(size(launch)?);
    }
    if all || matches!(mode, Mode::Rss) {
        rows.push(idle_rss(launch).await?);
    }
    if all || matches!(mode, Mode::Startup) {
        rows.push(startup(launch, plan).await?);
    }
    if all || matches!(mode, Mode::Idle { .. }) {
        let (n, hold) = match mode {
            Mode::Idle { connections, hold } => {
                (connections.unwrap_or(plan.idle_conns), hold.map_or(plan.idle_hold, Duration::from_secs))
            }
            _ => (plan.idle_conns, plan.idle_hold),
        };
        rows.push(idle(launch, n, hold).await?);
    }
    if all || matches!(mode, Mode::Handshake) {
        rows.push(handshake(launch, plan).await?);
    }
    if all || matches!(mode, Mode::Echo) {
        rows.extend(echo(launch, plan).await?);
    }
    if let Mode::Replicas { storage_url, storage_password_file } = mode {
        rows.push(replicas(launch, plan, storage_url, storage_password_file).await?);
    }
    if all || matches!(mode, Mode::Disk) {
        rows.extend(disk_rows(launch, plan).await?);
    }
    if all || matches!(mode, Mode::Latency { .. }) {
        let rate = match mode {
            Mode::Latency { rate } => *rate,
            _ => 5000,
        };
        rows.push(latency(launch, plan, rate).await?);
    }
    if all || matches!(mode, Mode::Storm { .. }) {
        let logins = match mode {
            Mode::Storm { logins } => logins.unwrap_or(plan.logins),
            _ => plan.logins,
        };
        rows.push(storm::run(launch, logins).await?);
    }
    if all || matches!(mode, Mode::Bounds) {
        rows.extend(bounds::rows(launch, plan.quick).await?);
    }
    Ok(rows)
}

fn size(launch: &Launch) -> Result<Row> {
    let bytes = std::fs::metadata(&launch.picoclaw)?.len();
    let stripped = is_stripped(&launch.picoclaw)?;
    let gateway = format!("{} ({})", mib(bytes), if stripped { "stripped" } else { "NOT stripped" });
    eprintln!("size: {gateway}");
    Ok(Row {
        figure: "release binary, stripped".into(),
        gateway,
        baseline: "-".into(),
        ratio: "-".into(),
        target: "≤ 12 MiB".into(),
        verdict: verdict(stripped && bytes <= 12 * 1024 * 1024),
    })
}

async fn idle_rss(launch: &Launch) -> Result<Row> {
    let base = launch.start(Kind::Baseline).await?;
    let gw = launch.start(Kind::Gateway).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (b, g) = (base.rss()?, gw.rss()?);
    eprintln!("idle RSS: gateway {} baseline {}", mib(g), mib(b));
    Ok(Row {
        figure: "gateway RSS, idle, Pico enabled".into(),
        gateway: mib(g),
        baseline: mib(b),
        ratio: format!("{:.2}×", g as f64 / b as f64),
        target: "≤ 6 MiB".into(),
        verdict: verdict(g <= 6 * 1024 * 1024),
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

async fn startup(launch: &Launch, plan: &Plan) -> Result<Row> {
    let (mut g, mut b) = (Vec::new(), Vec::new());
    for _ in 0..plan.starts {
        b.push(launch.start(Kind::Baseline).await?.ready_after);
        g.push(launch.start(Kind::Gateway).await?.ready_after);
    }
    let (gm, bm) = (median(g), median(b));
    eprintln!("exec → /ready: gateway {gm:?} baseline {bm:?} (median of {})", plan.starts);
    Ok(Row {
        figure: format!("exec → /ready 200, median of {}", plan.starts),
        gateway: format!("{:.1} ms", gm.as_secs_f64() * 1e3),
        baseline: format!("{:.1} ms", bm.as_secs_f64() * 1e3),
        ratio: format!("{:.2}×", gm.as_secs_f64() / bm.as_secs_f64().max(1e-9)),
        target: "≤ 20 ms".into(),
        verdict: verdict(gm <= Duration::from_millis(20)),
    })
}

async fn idle(launch: &Launch, n: usize, hold: Duration) -> Result<Row> {
    let per = |h: &load::Held| {
        let peak = h.rss[1].max(h.rss[2]);
        peak.saturating_sub(h.rss[0]) as f64 / h.opened.max(1) as f64 / 1024.0
    };
    let hb = {
        let base = launch.start(Kind::Baseline).await?;
        load::hold(&base, n, hold).await?
    };
    let gw = launch.start(Kind::Gateway).await?;
    let limits = gw.nofile();
    let hg = load::hold(&gw, n, hold).await?;
    drop(gw);
    for (name, h) in [("baseline", &hb), ("gateway", &hg)] {
        eprintln!(
            "idle {name}: {}/{} opened in {:.1} s, {} held {} s; RSS {} → {} → {}{}",
            h.opened,
            h.wanted,
            h.open_time.as_secs_f64(),
            h.held,
            hold.as_secs(),
            mib(h.rss[0]),
            mib(h.rss[1]),
            mib(h.rss[2]),
            h.first_error.as_deref().map(|e| format!("; first error: {e}")).unwrap_or_default()
        );
    }
    if let Some((soft, hard)) = limits {
        eprintln!("gateway open-file limit: soft {soft}, hard {hard}");
    }
    let cell = |h: &load::Held| {
        format!(
            "{}/{} held, {:.1} KiB/conn ({} → {})",
            h.held,
            h.wanted,
            per(h),
            mib(h.rss[0]),
            mib(h.rss[1].max(h.rss[2]))
        )
    };
    Ok(Row {
        figure: format!("{n} authenticated idle Pico connections held {} s", hold.as_secs()),
        gateway: cell(&hg),
        baseline: cell(&hb),
        ratio: format!("{:.2}× per conn", per(&hg) / per(&hb).max(1e-9)),
        target: "all held; ≤ 16 KiB/conn".into(),
        verdict: verdict(hg.held == n && per(&hg) <= 16.0),
    })
}

/// Runs `work` against a fresh baseline, then a fresh gateway, `rounds` times
/// (alternating, so drift in the machine's load hits both alike).
async fn alternate<T>(
    launch: &Launch,
    rounds: usize,
    work: impl AsyncFn(&Server) -> Result<T>,
) -> Result<(Vec<T>, Vec<T>)> {
    let (mut b, mut g) = (Vec::new(), Vec::new());
    for _ in 0..rounds.max(1) {
        for kind in [Kind::Baseline, Kind::Gateway] {
            let server = launch.start(kind).await?;
            let result = work(&server).await?;
            drop(server);
            match kind {
                Kind::Baseline | Kind::PicoShaped => b.push(result),
                Kind::Gateway => g.push(result),
            }
        }
    }
    Ok((b, g))
}

/// The median element by `key`.
fn median_by<T>(mut v: Vec<T>, key: impl Fn(&T) -> f64) -> T {
    v.sort_by(|a, b| key(a).total_cmp(&key(b)));
    let mid = v.len() / 2;
    v.swap_remove(mid)
}

async fn handshake(launch: &Launch, plan: &Plan) -> Result<Row> {
    let (b, g) = alternate(launch, plan.rounds, async |s: &Server| {
        load::handshakes(s, plan.handshake_workers, plan.window).await
    })
    .await?;
    let (rb, rg) = (median_by(b, load::Rate::per_sec), median_by(g, load::Rate::per_sec));
    eprintln!(
        "handshakes/s: gateway {:.0} ({} failed) baseline {:.0} ({} failed)",
        rg.per_sec(),
        rg.failed,
        rb.per_sec(),
        rb.failed
    );
    let ratio = rg.per_sec() / rb.per_sec().max(1e-9);
    Ok(Row {
        figure: format!(
            "authenticated handshakes/s, {} parallel clients{}",
            plan.handshake_workers,
            rounds_note(plan)
        ),
        gateway: format!("{:.0}/s ({} failed)", rg.per_sec(), rg.failed),
        baseline: format!("{:.0}/s ({} failed)", rb.per_sec(), rb.failed),
        ratio: format!("{ratio:.2}×"),
        target: "≥ 0.8× baseline".into(),
        verdict: verdict(ratio >= 0.8 && rg.failed == 0),
    })
}

async fn echo(launch: &Launch, plan: &Plan) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for op in [Op::Message, Op::Ping] {
        let (b, g) = alternate(launch, plan.rounds, async |s: &Server| {
            load::closed_loop(s, op, 100, plan.window).await
        })
        .await?;
        let (rb, rg) = (median_by(b, load::Rate::per_sec), median_by(g, load::Rate::per_sec));
        let ratio = rg.per_sec() / rb.per_sec().max(1e-9);
        eprintln!("round trips/s ({op:?}): gateway {:.0} baseline {:.0}", rg.per_sec(), rb.per_sec());
        let (figure, target, ok) = match op {
            Op::Message => (
                "echo round trips/s, 100 connections, closed loop (message.send → echo → typing.stop)",
                "≥ 0.7× baseline",
                ratio >= 0.7 && rg.failed == 0,
            ),
            Op::Ping => {
                ("(context) app-level ping → pong/s, 100 connections, closed loop", "-", rg.failed == 0)
            }
        };
        rows.push(Row {
            figure: format!("{figure}{}", rounds_note(plan)),
            gateway: format!("{:.0}/s ({} failed)", rg.per_sec(), rg.failed),
            baseline: format!("{:.0}/s ({} failed)", rb.per_sec(), rb.failed),
            ratio: format!("{ratio:.2}×"),
            target: target.into(),
            verdict: if op == Op::Ping && ok { "-" } else { verdict(ok) },
        });
        if op == Op::Message {
            let mut shaped = Vec::new();
            for _ in 0..plan.rounds.max(1) {
                let server = launch.start(Kind::PicoShaped).await?;
                shaped.push(load::closed_loop(&server, op, 100, plan.window).await?);
            }
            let rs = median_by(shaped, load::Rate::per_sec);
            eprintln!("round trips/s (pico-shaped baseline): {:.0}", rs.per_sec());
            rows.push(Row {
                figure: format!(
                    "(context) the same echo against a bare server sending the same three frames{}",
                    rounds_note(plan)
                ),
                gateway: format!("{:.0}/s", rg.per_sec()),
                baseline: format!("{:.0}/s ({} failed)", rs.per_sec(), rs.failed),
                ratio: format!("{:.2}×", rg.per_sec() / rs.per_sec().max(1e-9)),
                target: "-".into(),
                verdict: "-",
            });
        }
    }
    Ok(rows)
}

/// Two replicas on PostgreSQL (50 sockets each, measured at once) against one gateway on
/// SQLite (100 sockets), alternating, median of the rounds.
async fn replicas(launch: &Launch, plan: &Plan, url: &str, password_file: &std::path::Path) -> Result<Row> {
    let password_file = password_file.to_str().context("the password file path is not UTF-8")?;
    let env = [("PICOCLAW_STORAGE_URL", url), ("PICOCLAW_STORAGE_PASSWORD_FILE", password_file)];
    let (mut sqlite, mut pg) = (Vec::new(), Vec::new());
    for _ in 0..plan.rounds.max(1) {
        let one = launch.start(Kind::Gateway).await?;
        sqlite.push(load::closed_loop(&one, Op::Message, 100, plan.window).await?);
        drop(one);
        let a = launch.start_with(Kind::Gateway, &env).await?;
        let b = launch.start_with(Kind::Gateway, &env).await?;
        let (ra, rb) = tokio::join!(
            load::closed_loop(&a, Op::Message, 50, plan.window),
            load::closed_loop(&b, Op::Message, 50, plan.window)
        );
        let (ra, rb) = (ra?, rb?);
        pg.push(load::Rate {
            ok: ra.ok + rb.ok,
            failed: ra.failed + rb.failed,
            elapsed: ra.elapsed.max(rb.elapsed),
        });
    }
    let (rs, rp) = (median_by(sqlite, load::Rate::per_sec), median_by(pg, load::Rate::per_sec));
    eprintln!(
        "round trips/s: two replicas on PostgreSQL {:.0}, one on SQLite {:.0}",
        rp.per_sec(),
        rs.per_sec()
    );
    Ok(Row {
        figure: format!(
            "echo round trips/s, 100 sockets: two replicas on PostgreSQL (50 each) vs one on SQLite{}",
            rounds_note(plan)
        ),
        gateway: format!("{:.0}/s ({} failed)", rp.per_sec(), rp.failed),
        baseline: format!("SQLite {:.0}/s ({} failed)", rs.per_sec(), rs.failed),
        ratio: format!("{:.2}×", rp.per_sec() / rs.per_sec().max(1e-9)),
        target: "-".into(),
        verdict: if rp.failed == 0 && rs.failed == 0 { "-" } else { "failed" },
    })
}

/// The storage baseline (see `disk.rs`): not a budget row, the floor under the echo and
/// latency rows when every turn is fsynced.
async fn disk_rows(launch: &Launch, plan: &Plan) -> Result<Vec<Row>> {
    let (dir, window) = (launch.home_dir.clone(), plan.window);
    let d = tokio::task::spawn_blocking(move || disk::measure(&dir, 100, window, 5000)).await??;
    eprintln!(
        "disk: {:.0} durable appends/s with {} files in parallel; one writer: p50 {:.3} / p99 {:.3} ms; \
         {}/s from {} files: p50 {:.3} / p99 {:.3} / p999 {:.3} ms",
        d.parallel_per_sec,
        d.writers,
        d.single_ms(0.5),
        d.single_ms(0.99),
        d.paced_rate,
        d.writers,
        d.paced_ms(0.5),
        d.paced_ms(0.99),
        d.paced_ms(0.999)
    );
    Ok(vec![
        Row {
            figure: format!(
                "(context) append + fdatasync/s on the homes' filesystem, {} files in parallel",
                d.writers
            ),
            gateway: "-".into(),
            baseline: format!("{:.0}/s", d.parallel_per_sec),
            ratio: "-".into(),
            target: "-".into(),
            verdict: "-",
        },
        Row {
            figure: "(context) one append + fdatasync, one writer".into(),
            gateway: "-".into(),
            baseline: format!("p50 {:.3} / p99 {:.3} ms", d.single_ms(0.5), d.single_ms(0.99)),
            ratio: "-".into(),
            target: "-".into(),
            verdict: "-",
        },
        Row {
            figure: format!(
                "(context) append + fdatasync at a fixed {}/s from {} files (the latency row's load)",
                d.paced_rate, d.writers
            ),
            gateway: "-".into(),
            baseline: format!(
                "p50 {:.3} / p99 {:.3} / p999 {:.3} ms ({} syncs)",
                d.paced_ms(0.5),
                d.paced_ms(0.99),
                d.paced_ms(0.999),
                d.paced.len()
            ),
            ratio: "-".into(),
            target: "-".into(),
            verdict: "-",
        },
    ])
}

async fn latency(launch: &Launch, plan: &Plan, rate: u32) -> Result<Row> {
    let (b, g) = alternate(launch, plan.rounds, async |s: &Server| {
        load::fixed_rate(s, Op::Message, 100, rate, plan.window, plan.grace).await
    })
    .await?;
    let p99 = |l: &load::Latencies| l.quantile_ms(0.99);
    let (lb, lg) = (median_by(b, p99), median_by(g, p99));
    let cell = |l: &load::Latencies| {
        format!(
            "p50 {:.3} / p99 {:.3} / p999 {:.3} ms ({:.0} msg/s offered, {}/{} answered)",
            l.quantile_ms(0.5),
            l.quantile_ms(0.99),
            l.quantile_ms(0.999),
            l.achieved,
            l.received,
            l.sent
        )
    };
    eprintln!("latency: gateway {} | baseline {}", cell(&lg), cell(&lb));
    let (g99, b99) = (lg.quantile_ms(0.99), lb.quantile_ms(0.99));
    let ratio = g99 / b99;
    Ok(Row {
        figure: format!("round trip at a fixed {rate} msg/s, 100 connections{}", rounds_note(plan)),
        gateway: cell(&lg),
        baseline: cell(&lb),
        ratio: format!("p99 {ratio:.2}×"),
        target: "p99 ≤ 2 ms and ≤ 1.5× baseline p99".into(),
        verdict: verdict(g99 <= 2.0 && ratio <= 1.5 && lg.received == lg.sent),
    })
}

/// True when the ELF file has no `.symtab` section (what `strip` removes).
fn is_stripped(path: &std::path::Path) -> Result<bool> {
    let elf = std::fs::read(path)?;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]) as usize);
    let u64_at = |o: usize| {
        elf.get(o..o + 8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes).map(|v| v as usize)
    };
    if elf.get(..5) != Some(b"\x7fELF\x02".as_slice()) {
        bail!("{} is not a 64-bit ELF file", path.display());
    }
    let (Some(shoff), Some(shentsize), Some(shnum), Some(shstrndx)) =
        (u64_at(0x28), u16_at(0x3A), u16_at(0x3C), u16_at(0x3E))
    else {
        bail!("truncated ELF header");
    };
    let section = |i: usize| shoff + i * shentsize;
    let Some(strtab) = u64_at(section(shstrndx) + 0x18) else { bail!("truncated section table") };
    for i in 0..shnum {
        let Some(name) =
            elf.get(section(i)..section(i) + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        else {
            bail!("truncated section table");
        };
        let start = strtab + name as usize;
        if elf.get(start..start + 8) == Some(b".symtab\0".as_slice()) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn rounds_note(plan: &Plan) -> String {
    if plan.rounds > 1 { format!(", median of {} alternating rounds", plan.rounds) } else { String::new() }
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| figure | gateway | baseline | ratio | target | verdict |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.figure, r.gateway, r.baseline, r.ratio, r.target, r.verdict
        );
    }
}
