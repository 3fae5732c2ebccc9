//! `picoclaw launcher`: resolves the dashboard token and settings, prepares a first-run
//! home, then runs the dashboard server (crates/launcher) until Ctrl-C / SIGTERM.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use picoclaw_config::{Flags, LogLevel, MapEnv, Paths, ProcessEnv, schema};
use picoclaw_credentials::launcher::Origin;
use picoclaw_launcher::{Launcher, Options};

use crate::cli::{LauncherArgs, LogFormat};
use crate::context::Context;
use crate::logging;

fn flags(args: &LauncherArgs) -> Flags {
    Flags::new()
        .with(&schema::LAUNCHER_HOST, args.host.clone())
        .with(&schema::LAUNCHER_PORT, args.port)
        .with(&schema::LAUNCHER_PUBLIC, args.public.then_some(true))
}

/// Makes a path absolute against the current directory (the gateway child gets these).
pub(super) fn absolute(path: &Path) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    Ok(std::env::current_dir().context("cannot read the current directory")?.join(path))
}

/// Whether this build has the tray (`--features tray`, Linux).
const TRAY_BUILT: bool = cfg!(all(feature = "tray", target_os = "linux"));

pub fn run(args: LauncherArgs, format: LogFormat) -> Result<ExitCode> {
    if args.tray && !TRAY_BUILT {
        eprintln!(
            "error: --tray: the tray is available on Linux builds with the `tray` feature \
             (cargo install --path crates/cli --features tray); this build has none. \
             Use the dashboard (picoclaw launcher --console) or the terminal UI (picoclaw tui)."
        );
        return Ok(ExitCode::from(2));
    }
    let paths = Paths::from_env(&ProcessEnv)?;
    if !paths.config_file().exists() {
        // First run, as upstream does: create config.json and a private pico token so the
        // gateway the launcher starts can chat right away.
        println!("No configuration yet: running `picoclaw onboard` first.");
        super::onboard::run()?;
        println!();
    }
    logging::init(format, LogLevel::Info, Some(&paths.launcher_log()));
    let ctx = Context::load(&flags(&args))?;
    ctx.print_warnings();
    let token = ctx.loaded.launcher_token_or_create().context("cannot resolve the launcher token")?;
    tracing::info!(
        source = %token.origin,
        fingerprint = %token.secret.fingerprint(),
        "launcher token source: {} ({}); {}",
        token.origin,
        token.source,
        match token.origin {
            Origin::Env => "the value is managed outside picoclaw (that variable or file) and is never logged",
            _ => "the value is never logged: run with --console or read launcher_token in launcher-config.json",
        }
    );
    let password = ctx.loaded.dashboard_password().context("cannot read the dashboard password hash")?;
    if let Some(p) = &password {
        tracing::info!(source = %p.source, "dashboard password login enabled ({:?} hash from {})", p.scheme, p.source);
    }
    let absolute_env = MapEnv::new()
        .with("PICOCLAW_HOME", absolute(ctx.paths.home())?.to_string_lossy())
        .with("PICOCLAW_CONFIG", absolute(ctx.paths.config_file())?.to_string_lossy());
    let paths = Paths::from_env(&absolute_env)?;
    let options = Options {
        paths,
        settings: ctx.settings.launcher.clone(),
        token: token.clone(),
        password,
        exe: std::env::current_exe().context("cannot find the picoclaw executable")?,
        port_source: match ctx.settings.origin(&schema::LAUNCHER_PORT) {
            None | Some(picoclaw_config::Source::Default) => "the built-in default (18800)".to_owned(),
            Some(other) => other.to_string(),
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let home = absolute(ctx.paths.home())?;
    let token_from = match token.source {
        picoclaw_config::Source::Env(ref name) => format!("env {name}"),
        ref other => other.to_string(),
    };
    let open_file = home.join(OPEN_FILE);
    let tray_failed = runtime.block_on(async move {
        let launcher = Launcher::bind(options).await?;
        let url = launcher.url();
        tracing::info!(url = %url, "dashboard listening");
        if args.console {
            println!("PicoClaw launcher");
            println!("  dashboard:  {url}");
            match token.origin {
                Origin::Env if matches!(token.source, picoclaw_config::Source::Env(_)) => {
                    println!("  token:      token from env PICOCLAW_LAUNCHER_TOKEN (not shown)");
                }
                Origin::Env => println!("  token:      token from {} (not shown)", token.source),
                // The user asked for the token on this console (seed 001: console mode).
                Origin::Config | Origin::Random => {
                    println!("  token:      {} (source: {})", token.secret.expose(), token.origin);
                }
            }
            // A one-time link rather than the long-lived token in a URL (browser history,
            // screenshots, a shared terminal); the token above still logs in for longer.
            let link = launcher.handle().login_link()?;
            println!("  login link (one-time, 2 min): {}", link.expose());
            println!("Press Ctrl-C to stop.");
        } else {
            println!(
                "PicoClaw dashboard: {url} (token source: {}; use --console to print a login link)",
                token.origin
            );
        }
        if let Err(e) = launcher.ensure_gateway().await {
            eprintln!("warning: {e}; the dashboard can start it once the problem is fixed");
        }
        let handle = launcher.handle();
        if !args.no_browser && opener().is_some() {
            match handle.login_link() {
                Ok(link) => {
                    if let Err(e) = open_login(&home, &link) {
                        tracing::debug!("{e}");
                    }
                }
                Err(e) => tracing::warn!("{e}"),
            }
        }
        let (quit_tx, quit_rx) = tokio::sync::oneshot::channel::<Result<(), String>>();
        if args.tray {
            start_tray(handle, token_from, home, quit_tx);
        } else {
            drop(quit_tx);
        }
        let failed = std::sync::Arc::new(std::sync::Mutex::new(None));
        let seen = failed.clone();
        let quit = async move {
            if let Ok(outcome) = quit_rx.await {
                if let Err(e) = outcome {
                    *seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                }
            } else {
                std::future::pending::<()>().await;
            }
        };
        launcher
            .run(async move {
                tokio::select! {
                    () = shutdown_signal() => {}
                    () = quit => {}
                }
            })
            .await?;
        let failed = failed.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        Ok::<_, anyhow::Error>(failed)
    })?;
    // The page held a one-time code (used or expiring anyway): leave nothing behind.
    let _ = std::fs::remove_file(&open_file);
    tracing::info!("launcher stopped");
    if let Some(e) = tray_failed {
        eprintln!("error: {e}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(all(feature = "tray", target_os = "linux"))]
fn start_tray(
    handle: picoclaw_launcher::Handle,
    token_from: String,
    home: PathBuf,
    quit: tokio::sync::oneshot::Sender<Result<(), String>>,
) {
    tokio::spawn(async move {
        let open = move |link: &picoclaw_credentials::Secret| open_login(&home, link);
        let outcome = super::tray::run(handle, token_from, open).await;
        // Quit from the menu (Ok) or a tray that could not register (Err) ends the launcher.
        let _ = quit.send(outcome);
    });
}

#[cfg(not(all(feature = "tray", target_os = "linux")))]
fn start_tray(
    _: picoclaw_launcher::Handle,
    _: String,
    _: PathBuf,
    quit: tokio::sync::oneshot::Sender<Result<(), String>>,
) {
    let _ = quit.send(Err("the tray is not in this build".to_owned()));
}

/// The program that opens a URL or file in the user's browser, when there is a desktop.
fn opener() -> Option<&'static str> {
    if cfg!(target_os = "macos") {
        Some("open")
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some() {
        Some("xdg-open")
    } else {
        None
    }
}

/// The file "Open dashboard" hands to the browser.
const OPEN_FILE: &str = "launcher-open.html";

/// Opens a one-time login link in the browser without putting it in anyone's argv (every
/// local user can read a command line, and the browser keeps its own): the link goes into
/// `$PICOCLAW_HOME/launcher-open.html` (0600, written atomically), a page that forwards to
/// it, and the opener gets that file's path (what Jupyter does for its token).
fn open_login(home: &Path, link: &picoclaw_credentials::Secret) -> Result<(), String> {
    let Some(opener) = opener() else {
        return Err("no desktop to open a browser on (neither DISPLAY nor WAYLAND_DISPLAY is set)".to_owned());
    };
    let escaped: String = link
        .expose()
        .chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            c => c.to_string(),
        })
        .collect();
    let page = picoclaw_credentials::Secret::new(format!(
        "<!doctype html><meta charset=utf-8><meta name=referrer content=no-referrer>\
         <meta http-equiv=refresh content=\"0;url={escaped}\"><title>PicoClaw</title>\
         <p>Opening the <a href=\"{escaped}\">PicoClaw dashboard</a>…</p>\n"
    ));
    let path = home.join(OPEN_FILE);
    picoclaw_config::files::write_atomic(
        &path,
        page.expose().as_bytes(),
        picoclaw_config::files::SECRET_MODE,
    )
    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    std::process::Command::new(opener)
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| format!("cannot run {opener}: {e}"))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let ctrl_c = tokio::signal::ctrl_c();
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = ctrl_c => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
