//! `picoclaw service install|uninstall|status|audit`: the gateway as a systemd user unit
//! or launchd agent. The unit never holds a secret; `audit` finds units that do.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use picoclaw_config::{Paths, ProcessEnv};
use picoclaw_credentials::migrate::Adoption;
use picoclaw_lifecycle::migrate::{self, MigrateError};
use picoclaw_lifecycle::service::{self, Manager, ManagerCall, UnitAudit, UnitSpec, UserDirs};
use picoclaw_lifecycle::{Probe, binary};
use serde_json::json;

use crate::cli::{ManagerArgs, ServiceCommand};
use crate::context::Context;

/// Exit code of `service status` when no unit is installed (LSB "not running" family).
const NOT_INSTALLED: u8 = 3;

fn manager(args: ManagerArgs) -> Manager {
    if args.launchd {
        Manager::Launchd
    } else if args.systemd {
        Manager::Systemd
    } else {
        Manager::native()
    }
}

pub fn run(command: ServiceCommand) -> Result<ExitCode> {
    let dirs = UserDirs::from_env(&ProcessEnv)?;
    match command {
        ServiceCommand::Install { manager: m, force, binary, credentials } => {
            install(&dirs, manager(m), force, binary, credentials)
        }
        ServiceCommand::Uninstall { manager: m, force } => uninstall(&dirs, manager(m), force),
        ServiceCommand::Status { manager: m, json } => status(&dirs, manager(m), json),
        ServiceCommand::Audit { paths, json } => audit(&dirs, paths, json),
    }
}

fn absolute(path: PathBuf) -> Result<PathBuf> {
    if path.is_absolute() {
        return Ok(path);
    }
    Ok(std::env::current_dir().context("cannot read the current directory")?.join(path))
}

/// The binary the unit starts (see `picoclaw_lifecycle::binary`), and what to tell the user
/// about the choice.
fn unit_binary(explicit: Option<PathBuf>) -> Result<(PathBuf, Option<String>)> {
    if let Some(path) = explicit {
        let path = absolute(path)?;
        let path = std::fs::canonicalize(&path)
            .with_context(|| format!("--binary {}: no such file", path.display()))?;
        if !path.is_file() {
            anyhow::bail!("--binary {}: not a file (expected the picoclaw executable)", path.display());
        }
        let note = binary::build_dir_of(&path).map(|dir| build_dir_warning(&path, &dir));
        return Ok((path, note));
    }
    let exe = std::env::current_exe().context("cannot find the picoclaw executable")?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    let Some(dir) = binary::build_dir_of(&exe) else { return Ok((exe, None)) };
    match binary::installed_on_path(std::env::var_os("PATH").as_deref()) {
        Some(installed) => {
            let note = format!(
                "note: {} is a build output (in {}); the unit starts the installed {} instead (--binary chooses another)",
                exe.display(),
                dir.display(),
                installed.display()
            );
            Ok((installed, Some(note)))
        }
        None => Ok((exe.clone(), Some(build_dir_warning(&exe, &dir)))),
    }
}

fn build_dir_warning(binary: &std::path::Path, dir: &std::path::Path) -> String {
    format!(
        "warning: {} is inside the cargo build directory {}: `cargo clean` or the next build removes or replaces \
         it and the service stops starting. Install picoclaw (`cargo install --path crates/cli` puts it in \
         ~/.cargo/bin) and run `picoclaw service install` again, or pass --binary",
        binary.display(),
        dir.display()
    )
}

/// The directory `service install --credentials` loads systemd credentials from.
pub const CREDENTIALS_SUBDIR: &str = "credentials";

/// `LoadCredential=` entries for the gateway's secret files found in `dir` (names from the
/// schema; the launcher's token is not the gateway's). Paths only: nothing is read.
fn credential_files(dir: &std::path::Path) -> Result<Vec<(String, PathBuf)>> {
    let expected: Vec<&str> = picoclaw_config::schema::secret_files()
        .filter(|(_, _, key)| key.home == picoclaw_config::schema::Home::Config)
        .map(|(_, name, _)| name)
        .collect();
    let found: Vec<(String, PathBuf)> = expected
        .iter()
        .map(|name| ((*name).to_owned(), dir.join(name)))
        .filter(|(_, path)| path.is_file())
        .collect();
    if found.is_empty() {
        anyhow::bail!(
            "--credentials: {} holds none of the credential files {}; put each secret in its own file there (mode 0600, the secret only), then run this again",
            dir.display(),
            expected.join(", ")
        );
    }
    #[cfg(unix)]
    for (_, path) in &found {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "--credentials: {} has permissions {mode:04o}; a secret file must be private (chmod 600)",
                path.display()
            );
        }
    }
    Ok(found)
}

fn install(
    dirs: &UserDirs,
    manager: Manager,
    force: bool,
    binary: Option<PathBuf>,
    credentials: bool,
) -> Result<ExitCode> {
    let paths = Paths::from_env(&ProcessEnv)?;
    // A unit for a configuration that cannot load would only crash-loop: refuse early.
    let ctx = Context::load(&picoclaw_config::Flags::new())
        .context("the configuration does not load; fix it before installing the service")?;
    ctx.print_warnings();
    picoclaw_config::files::ensure_dir(paths.home(), 0o700)
        .with_context(|| format!("cannot create {}", paths.home().display()))?;
    let home = absolute(paths.home().to_owned())?;
    let home = std::fs::canonicalize(&home).unwrap_or(home);
    let config = match std::env::var_os("PICOCLAW_CONFIG").filter(|v| !v.is_empty()) {
        Some(c) => Some(absolute(PathBuf::from(c))?),
        None => None,
    };
    let (binary, note) = unit_binary(binary)?;
    if let Some(note) = &note {
        eprintln!("{note}");
    }
    let credentials =
        if credentials { credential_files(&home.join(CREDENTIALS_SUBDIR))? } else { Vec::new() };
    let spec = UnitSpec { binary, home, config, credentials };
    adopt_existing(dirs, manager, &paths, force)?;
    let done = service::install(dirs, manager, &spec, force)?;
    let mut out = std::io::stdout().lock();
    if done.unchanged {
        writeln!(out, "{} is up to date", done.path.display())?;
    } else {
        writeln!(out, "wrote {} ({})", done.path.display(), if done.replaced { "replaced" } else { "new" })?;
    }
    writeln!(
        out,
        "it starts `{} gateway` with PICOCLAW_HOME={}",
        spec.binary.display(),
        spec.home.display()
    )?;
    writeln!(
        out,
        "it holds no secret: the gateway reads its tokens from {} at every start and reload",
        paths.security_file().display()
    )?;
    match manager {
        Manager::Systemd => {
            match service::systemctl_user(&["daemon-reload"]) {
                ManagerCall::Done => writeln!(out, "ran: systemctl --user daemon-reload")?,
                ManagerCall::Failed(e) => {
                    writeln!(out, "systemctl --user daemon-reload failed ({e}); run it yourself")?
                }
                ManagerCall::Unavailable => writeln!(
                    out,
                    "no systemd user manager answers here; when one does, run: systemctl --user daemon-reload"
                )?,
            }
            writeln!(
                out,
                "start it now and at login:  systemctl --user enable --now {}",
                service::SYSTEMD_UNIT
            )?;
            writeln!(out, "keep it running after logout: loginctl enable-linger $USER")?;
        }
        Manager::Launchd => {
            writeln!(out, "load it: launchctl bootstrap gui/$(id -u) {}", done.path.display())?;
            writeln!(out, "after changes: launchctl kickstart -k gui/$(id -u)/{}", service::LAUNCHD_LABEL)?;
        }
    }
    for name in ["PICOCLAW_GATEWAY_TOKEN", "PICOCLAW_CHANNELS_PICO_TOKEN"] {
        if std::env::var_os(name).is_some() {
            writeln!(
                out,
                "note: this shell sets {name}; the service does not see it and uses the value in the files (`picoclaw doctor` checks they agree)"
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Replacing a unit that embeds tokens would drop them: move them into the picoclaw files
/// first (same keys), exactly as `doctor --fix` does, so clients holding them keep working.
fn adopt_existing(dirs: &UserDirs, manager: Manager, paths: &Paths, force: bool) -> Result<()> {
    let path = dirs.unit_path(manager);
    if !path.exists() {
        return Ok(());
    }
    let audit = service::audit_file(&path, dirs)?;
    if audit.embedded.is_empty() || (!audit.ours && !force) {
        return Ok(());
    }
    let adopted = match migrate::adopt(paths, dirs, &audit) {
        Ok(adopted) => adopted,
        Err(MigrateError::OtherHome { home, .. }) => anyhow::bail!(
            "{} embeds secrets for PICOCLAW_HOME={}; run `PICOCLAW_HOME={} picoclaw doctor --fix` first, so they are not lost",
            path.display(),
            home.display(),
            home.display()
        ),
        Err(MigrateError::Ambiguous { key }) => anyhow::bail!(
            "{} sets {} to two different values; remove the wrong one by hand, then install again",
            path.display(),
            key.path
        ),
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!(
                "{} embeds secrets that could not be preserved; nothing was changed",
                path.display()
            )));
        }
    };
    for a in &adopted {
        match &a.outcome {
            Adoption::Stored { destination } => {
                println!(
                    "moved {} (fingerprint {}) from the old unit to {destination}",
                    a.key.path, a.fingerprint
                )
            }
            Adoption::Conflict { destination, file_fingerprint } => println!(
                "note: the old unit set {} (fingerprint {}); {destination} holds fingerprint {file_fingerprint} and is kept: the service uses it after a restart",
                a.key.path, a.fingerprint
            ),
            Adoption::AlreadyThere { .. } | Adoption::Ambiguous => {}
        }
    }
    Ok(())
}

fn uninstall(dirs: &UserDirs, manager: Manager, force: bool) -> Result<ExitCode> {
    if manager == Manager::Systemd {
        match service::systemctl_user(&["disable", "--now", service::SYSTEMD_UNIT]) {
            ManagerCall::Done => println!("ran: systemctl --user disable --now {}", service::SYSTEMD_UNIT),
            ManagerCall::Failed(_) | ManagerCall::Unavailable => {}
        }
    }
    match service::uninstall(dirs, manager, force)? {
        Some(path) => {
            println!("removed {}", path.display());
            match manager {
                Manager::Systemd => match service::systemctl_user(&["daemon-reload"]) {
                    ManagerCall::Done => println!("ran: systemctl --user daemon-reload"),
                    _ => println!(
                        "if a systemd user manager runs this service, run: systemctl --user disable --now {} && systemctl --user daemon-reload",
                        service::SYSTEMD_UNIT
                    ),
                },
                Manager::Launchd => {
                    println!("unload it: launchctl bootout gui/$(id -u)/{}", service::LAUNCHD_LABEL)
                }
            }
        }
        None => println!("no unit installed at {}", dirs.unit_path(manager).display()),
    }
    Ok(ExitCode::SUCCESS)
}

fn embedded_json(audit: &UnitAudit) -> serde_json::Value {
    json!(
        audit
            .embedded
            .iter()
            .map(|e| json!({
                "key": e.key.path,
                "name": e.name,
                "place": e.place.to_string(),
                "fingerprint": e.fingerprint().to_string(),
            }))
            .collect::<Vec<_>>()
    )
}

fn describe(audit: &UnitAudit, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{}", audit.path.display())?;
    writeln!(out, "  written by: {}", if audit.ours { "picoclaw service install" } else { "hand-written" })?;
    if let Some(home) = &audit.home {
        writeln!(out, "  PICOCLAW_HOME: {}", home.display())?;
    }
    if audit.embedded.is_empty() {
        writeln!(out, "  secrets: none")?;
    }
    for e in &audit.embedded {
        writeln!(
            out,
            "  EMBEDDED SECRET: {} via {} in {} (fingerprint {})",
            e.key.path,
            e.name,
            e.place,
            e.fingerprint()
        )?;
    }
    Ok(())
}

fn gateway_state(paths: &Paths) -> (String, serde_json::Value) {
    match picoclaw_lifecycle::probe(paths) {
        Ok(Probe::Running(r)) => (
            format!("running (pid {}) at {}", r.pid(), r.base_url()),
            json!({"state": "running", "pid": r.pid(), "address": r.base_url()}),
        ),
        Ok(Probe::Starting(p)) => (
            format!("starting ({p})"),
            json!({"state": "starting", "lock_holder": p.holder, "recorded_pid": p.recorded}),
        ),
        Ok(Probe::Unverified(m)) => {
            (format!("unverified: {m}"), json!({"state": "unverified", "reason": m.to_string()}))
        }
        Ok(Probe::Stale) => (
            format!("not running (stale {}; `picoclaw doctor --fix` removes it)", paths.pid_file().display()),
            json!({"state": "stale"}),
        ),
        Ok(Probe::NotRunning) => ("not running".into(), json!({"state": "not-running"})),
        Err(e) => (format!("unknown ({e})"), json!({"state": "unknown"})),
    }
}

fn status(dirs: &UserDirs, manager: Manager, json_out: bool) -> Result<ExitCode> {
    let paths = Paths::from_env(&ProcessEnv)?;
    let path = dirs.unit_path(manager);
    let audit = if path.exists() { Some(service::audit_file(&path, dirs)?) } else { None };
    let (gateway_text, gateway_json) = gateway_state(&paths);
    let active = if manager == Manager::Systemd { service::systemd_state() } else { None };
    let embeds = audit.as_ref().is_some_and(|a| !a.embedded.is_empty());
    if json_out {
        let value = json!({
            "manager": manager,
            "unit": path,
            "installed": audit.is_some(),
            "ours": audit.as_ref().map(|a| a.ours),
            "embeds_secrets": embeds,
            "embedded": audit.as_ref().map(embedded_json),
            "service_state": active,
            "gateway": gateway_json,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        let mut out = std::io::stdout().lock();
        match &audit {
            Some(a) => describe(a, &mut out)?,
            None => {
                writeln!(out, "{} (not installed; `picoclaw service install` writes it)", path.display())?
            }
        }
        if let Some(state) = &active {
            writeln!(out, "service: {state}")?;
        }
        writeln!(out, "gateway: {gateway_text}")?;
        if embeds {
            writeln!(
                out,
                "the unit embeds secrets: run `picoclaw doctor --fix` to move them into .security.yml"
            )?;
        }
    }
    Ok(match (&audit, embeds) {
        (None, _) => ExitCode::from(NOT_INSTALLED),
        (Some(_), true) => ExitCode::from(1),
        (Some(_), false) => ExitCode::SUCCESS,
    })
}

fn audit(dirs: &UserDirs, extra: Vec<PathBuf>, json_out: bool) -> Result<ExitCode> {
    let mut files = service::discover(dirs);
    for p in extra {
        let p = absolute(p)?;
        if !files.contains(&p) {
            files.push(p);
        }
    }
    let mut audits = Vec::new();
    for file in &files {
        audits.push(
            service::audit_file(file, dirs).with_context(|| format!("cannot audit {}", file.display()))?,
        );
    }
    let dirty = audits.iter().filter(|a| !a.embedded.is_empty()).count();
    if json_out {
        let units: Vec<_> = audits
            .iter()
            .map(|a| json!({"path": a.path, "manager": a.manager, "ours": a.ours, "embedded": embedded_json(a)}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&json!({"units": units, "embedding_secrets": dirty}))?);
    } else {
        let mut out = std::io::stdout().lock();
        if audits.is_empty() {
            writeln!(
                out,
                "no picoclaw units found in {} or {}",
                dirs.systemd_dir().display(),
                dirs.launchd_dir().display()
            )?;
        }
        for a in &audits {
            describe(a, &mut out)?;
        }
        if dirty > 0 {
            writeln!(
                out,
                "{dirty} unit(s) embed secrets: `picoclaw doctor --fix` moves them into .security.yml and rewrites the unit"
            )?;
        }
    }
    Ok(if dirty > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}
