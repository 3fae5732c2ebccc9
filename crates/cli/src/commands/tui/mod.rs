//! `picoclaw tui`: a keyboard-driven terminal front-end for a box reached over SSH.
//!
//! It is a thin shell over the code the dashboard and the CLI already use: gateway state
//! and Start/Stop/Restart through the launcher's `GatewayControl`, the credentials table
//! from `auth explain` (sources and fingerprints, never values), rotation and creation
//! through `picoclaw_auth::named::ops`, chat over the local gateway's Pico socket with the
//! runtime token, and a bounded tail of `logs/gateway.log`. The terminal is restored on
//! exit, on error, on panic and on SIGINT/SIGTERM. Decisions: docs/tui.md.

mod app;
mod chat;
mod logtail;
mod render;
mod work;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use picoclaw_config::{MapEnv, Paths, ProcessEnv};
use picoclaw_launcher::GatewayControl;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use tokio::sync::mpsc;

use app::{Action, App};
use work::Done;

/// How often the header, the credentials and the log tail are refreshed.
const REFRESH: Duration = Duration::from_secs(1);

/// Runs `picoclaw tui` until the user quits (q, Ctrl-C) or a signal arrives.
pub fn run() -> Result<ExitCode> {
    use std::io::IsTerminal;
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        anyhow::bail!(
            "picoclaw tui needs a terminal (standard input and output are not both one); \
             from a script use `picoclaw gateway status`, `picoclaw auth explain` or `picoclaw chat`"
        );
    }
    let paths = Paths::from_env(&ProcessEnv)?;
    // Absolute, as the launcher makes them: the gateway child gets these.
    let absolute = super::launcher::absolute;
    let absolute_env = MapEnv::new()
        .with("PICOCLAW_HOME", absolute(paths.home())?.to_string_lossy())
        .with("PICOCLAW_CONFIG", absolute(paths.config_file())?.to_string_lossy());
    let paths = Paths::from_env(&absolute_env)?;
    let exe = std::env::current_exe().context("cannot find the picoclaw executable")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // ratatui::try_init() enters raw mode and the alternate screen and installs a panic
    // hook that restores the terminal before the panic message is printed.
    let mut terminal = match ratatui::try_init() {
        Ok(terminal) => terminal,
        Err(e) => {
            ratatui::restore();
            return Err(e).context("cannot set up the terminal");
        }
    };
    let result = runtime.block_on(event_loop(&mut terminal, paths, exe));
    ratatui::restore();
    // Background work (a blocking stop, a chat socket) must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result.map(|()| ExitCode::SUCCESS)
}

/// Key presses, read on a plain thread (crossterm's reads block).
fn keys() -> mpsc::Receiver<Event> {
    let (tx, rx) = mpsc::channel(64);
    std::thread::spawn(move || {
        loop {
            match event::poll(Duration::from_millis(250)) {
                Ok(true) => match event::read() {
                    Ok(ev) => {
                        if tx.blocking_send(ev).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                Ok(false) if tx.is_closed() => return,
                Ok(false) => {}
                Err(_) => return,
            }
        }
    });
    rx
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    paths: Paths,
    exe: std::path::PathBuf,
) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut sighup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    let control = std::sync::Arc::new(GatewayControl::detached(paths.clone(), exe));
    let (done_tx, mut done_rx) = mpsc::channel::<Done>(64);
    let worker = work::Worker::new(control, done_tx.clone());
    let chat = chat::spawn(paths.clone(), done_tx);
    let mut app = App::new(logtail::LogTail::open(paths.gateway_log()));
    let mut keys = keys();
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        terminal.draw(|frame| render::draw(frame, &app)).context("cannot draw the screen")?;
        tokio::select! {
            _ = tick.tick() => {
                app.logs.poll();
                worker.refresh();
            }
            Some(done) = done_rx.recv() => app.apply(done),
            ev = keys.recv() => match ev {
                Some(Event::Key(key)) if key.kind != KeyEventKind::Release => match app.key(key) {
                    Action::None => {}
                    Action::Quit => return Ok(()),
                    Action::Start => worker.start(),
                    Action::Stop => worker.stop(),
                    Action::Restart => worker.restart(),
                    Action::RotatePico => worker.rotate_pico(),
                    Action::Create { name, scope } => worker.create(name, scope),
                    Action::Send(text) => chat.send(text),
                },
                Some(_) => {}
                None => return Ok(()),
            },
            _ = sigint.recv() => return Ok(()),
            _ = sigterm.recv() => return Ok(()),
            _ = sighup.recv() => return Ok(()),
        }
    }
}
