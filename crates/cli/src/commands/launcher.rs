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

pub fn run(args: LauncherArgs, format: LogFormat) -> Result<ExitCode> {
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
    runtime.block_on(async move {
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
        if !args.no_browser {
            open_browser(&url);
        }
        launcher.run(shutdown_signal()).await
    })?;
    tracing::info!("launcher stopped");
    Ok(ExitCode::SUCCESS)
}

/// Opens the dashboard (never with the token in the URL: argv is visible to other users)
/// when there is a desktop to open it on.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        Some("open")
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some() {
        Some("xdg-open")
    } else {
        None
    };
    if let Some(opener) = opener {
        let spawned = std::process::Command::new(opener)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if spawned.is_err() {
            tracing::debug!("could not run {opener}");
        }
    }
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
