//! The checks: each reads the setup and pushes findings; none changes anything.

use std::path::Path;

use picoclaw_config::schema::{self, Key};
use picoclaw_config::{EnvSource, Flags, Paths, Settings, Source};
use picoclaw_credentials::runtime::RuntimeRecord;
use picoclaw_credentials::strength::weakness;
use picoclaw_credentials::{Credentials, Loaded, Resolved};
use picoclaw_lifecycle::http::Credential;
use picoclaw_lifecycle::service::{self, Manager, UserDirs};
use picoclaw_lifecycle::{Probe, VerifiedGateway};

use crate::http;
use crate::{Action, Code, Finding, Severity};

/// Runs every check.
pub fn diagnose(env: &dyn EnvSource) -> Vec<Finding> {
    let mut out = Vec::new();
    let paths = match Paths::from_env(env) {
        Ok(p) => p,
        Err(e) => {
            out.push(
                Finding::new(Code::ConfigInvalid, Severity::Error, "PICOCLAW_HOME")
                    .message(e.to_string())
                    .fix("set PICOCLAW_HOME (or HOME)"),
            );
            return out;
        }
    };
    let loaded = picoclaw_credentials::load(&paths, env, &Flags::new()).map_err(|e| e.to_string());
    permissions(&paths, loaded.as_ref().ok(), &mut out);
    ownership(&paths, &mut out);
    let verified = lock_state(&paths, &mut out);
    shared_home(&paths, loaded.as_ref().ok(), &mut out);
    if let Ok(dirs) = UserDirs::from_env(env) {
        units(&paths, &dirs, &mut out);
    }
    match &loaded {
        Err(message) => out.push(
            Finding::new(Code::ConfigInvalid, Severity::Error, "config")
                .message(format!("the configuration does not load: {message}"))
                .fix("correct the file, key or variable named above; picoclaw never rewrites a file it cannot parse"),
        ),
        Ok(loaded) => {
            let (settings, creds) = (&loaded.settings, &loaded.credentials);
            for w in loaded.warnings() {
                out.push(
                    Finding::new(Code::ConfigWarning, Severity::Warning, format!("{}:{}", w.file, w.key))
                        .message(w.to_string())
                        .fix("correct or remove the key"),
                );
            }
            upstream_shape(loaded, &mut out);
            secrets_in_config(loaded, &mut out);
            secret_in_url(settings, creds, &mut out);
            shadows(creds, &mut out);
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            secret_mounts(&paths, creds, &mountinfo, &mut out);
            exposure(settings, &mut out);
            weak(loaded, creds, &mut out);
            shared_tokens(creds, settings, &mut out);
            if let Some(verified) = &verified {
                gateway(verified, settings, creds, &mut out);
            }
        }
    }
    out
}

fn permissions(paths: &Paths, loaded: Option<&Loaded>, out: &mut Vec<Finding>) {
    let mut files = vec![paths.security_file(), paths.launcher_file(), paths.pid_file()];
    // config.json is private only when it holds secrets (it may be a read-only ConfigMap).
    let config_has_secrets = loaded.is_some_and(|l| !l.config_secrets().is_empty());
    if config_has_secrets {
        files.push(paths.config_file().to_owned());
    }
    for file in files {
        if let Some(mode) = picoclaw_config::files::too_open(&file) {
            out.push(
                Finding::new(Code::InsecurePermissions, Severity::Error, file.display().to_string())
                    .message(format!(
                        "{} holds secrets and has mode {mode:04o}: other users can read it",
                        file.display()
                    ))
                    .fix(format!("chmod 600 {}", file.display()))
                    .action(Action::Chmod(file.clone(), 0o600)),
            );
        }
    }
}

/// Two fresh gateway heartbeats in one home: gateways on several machines share it (and,
/// with SQLite, its `sessions.db`), which the `.picoclaw.pid` lock cannot prevent.
fn shared_home(paths: &Paths, loaded: Option<&Loaded>, out: &mut Vec<Finding>) {
    let beats = picoclaw_lifecycle::writers::fresh(paths);
    if beats.len() < 2 {
        return;
    }
    let who: Vec<String> = beats.iter().map(|b| format!("pid {} on {}", b.pid, b.host)).collect();
    let sqlite = loaded.is_none_or(|l| l.settings.storage.url.is_none());
    let what = if sqlite {
        format!(
            "{} and its SQLite history {}",
            paths.home().display(),
            paths.sessions_dir().join("sessions.db").display()
        )
    } else {
        paths.home().display().to_string()
    };
    out.push(
        Finding::new(Code::SharedHome, Severity::Error, paths.home().display().to_string())
            .message(format!(
                "{} gateways write {what} at the same time ({}): the .picoclaw.pid lock guards a home on one machine only, so their records, logs and history overwrite each other",
                beats.len(),
                who.join(", ")
            ))
            .fix("give every gateway its own PICOCLAW_HOME (an emptyDir or a volume per replica) and share sessions through storage.url = postgres://… (docs/storage.md)"),
    );
}

/// How long the doctor gives a gateway that holds the lock to publish its record before a
/// record naming another pid is reported as not the gateway's.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(3);

fn lock_state(paths: &Paths, out: &mut Vec<Finding>) -> Option<VerifiedGateway> {
    match picoclaw_lifecycle::settle(paths, SETTLE) {
        Ok(Probe::Running(verified)) => Some(verified),
        Ok(Probe::Starting(pending)) if pending.recorded.is_none() => {
            out.push(
                Finding::new(Code::GatewayStarting, Severity::Info, "gateway")
                    .message(format!("{pending}"))
                    .fix("wait a moment and run doctor again"),
            );
            None
        }
        Ok(Probe::Starting(pending)) => {
            let fix = match pending.holder {
                Some(pid) => format!(
                    "check that pid {pid} is picoclaw (`ps -p {pid} -o args=`); if so end it (`kill {pid}`) and start the gateway again, which writes a new record"
                ),
                None => "restart the gateway; the start writes a new record".to_owned(),
            };
            out.push(
                Finding::new(Code::GatewayUnverified, Severity::Error, paths.pid_file().display().to_string())
                    .message(format!(
                        "{pending}. The doctor sent nothing to the address it names, and `picoclaw gateway stop` will not signal it"
                    ))
                    .fix(fix),
            );
            None
        }
        Ok(Probe::Unverified(mismatch)) => {
            out.push(
                Finding::new(Code::GatewayUnverified, Severity::Error, paths.pid_file().display().to_string())
                    .message(format!(
                        "{mismatch}. The doctor sent nothing to it (no token, no request), and `picoclaw gateway stop` will not signal it"
                    ))
                    .fix("see who listens there (`ss -ltnp`); restart the gateway so it writes a new record (a record is written only by the gateway that holds the lock)"),
            );
            None
        }
        Ok(Probe::Stale) => {
            let pid = RuntimeRecord::read(&paths.pid_file()).ok().flatten().map(|r| r.pid);
            out.push(
                Finding::new(Code::StalePidFile, Severity::Warning, paths.pid_file().display().to_string())
                    .message(format!(
                        "{} names pid {} but no gateway holds the lock: it was left by a crash or SIGKILL",
                        paths.pid_file().display(),
                        pid.map_or_else(|| "?".to_owned(), |p| p.to_string())
                    ))
                    .fix("remove it (the next gateway start would also replace it)")
                    .action(Action::RemoveStalePid),
            );
            None
        }
        Ok(Probe::NotRunning) => {
            out.push(
                Finding::new(Code::GatewayNotRunning, Severity::Info, "gateway")
                    .message(format!("no gateway is running for {}", paths.home().display()))
                    .fix("picoclaw gateway start (or systemctl --user start picoclaw-gateway.service)"),
            );
            None
        }
        Err(e) => {
            out.push(
                Finding::new(Code::GatewayUnreachable, Severity::Error, "lock")
                    .message(format!("cannot check the gateway lock: {e}"))
                    .fix("check the permissions of the home directory"),
            );
            None
        }
    }
}

/// A home (or config directory) other users can write lets them replace the record, the
/// lock or the configuration that local tools trust; a home or record owned by another
/// user is theirs to rewrite.
#[cfg(unix)]
fn ownership(paths: &Paths, out: &mut Vec<Finding>) {
    use std::os::unix::fs::MetadataExt;
    let me = rustix::process::geteuid().as_raw();
    let home = paths.home().to_owned();
    let mut dirs = vec![(home.clone(), true)];
    if !same_dir(paths.config_dir(), &home) {
        dirs.push((paths.config_dir().to_owned(), false));
    }
    for (dir, is_home) in &dirs {
        let Ok(meta) = std::fs::metadata(dir) else { continue };
        let mode = meta.mode() & 0o7777;
        if mode & 0o022 == 0 {
            continue;
        }
        let ours = meta.uid() == me;
        let what = if *is_home { "PICOCLAW_HOME" } else { "the directory of config.json" };
        // The home holds only picoclaw's files: private. A config directory may be shared
        // for reading (a ConfigMap, /etc): only the write bits go.
        let target = if *is_home { 0o700 } else { mode & !0o022 };
        let mut finding = Finding::new(Code::InsecureHomePermissions, Severity::Error, dir.display().to_string())
            .message(format!(
                "{what} {} has mode {mode:04o}: other users can write it, so they can replace .picoclaw.pid, the lock or the configuration that picoclaw trusts",
                dir.display()
            ));
        finding = if ours {
            finding
                .fix(format!("chmod {target:o} {}", dir.display()))
                .action(Action::Chmod(dir.clone(), target))
        } else {
            finding.fix(format!(
                "it belongs to uid {}: have its owner run `chmod {target:o} {}`, or use a home of your own",
                meta.uid(),
                dir.display()
            ))
        };
        out.push(finding);
    }
    for (path, what) in [
        (home.clone(), "PICOCLAW_HOME"),
        (paths.pid_file(), "the gateway record"),
        (picoclaw_lifecycle::lock_path(paths), "the gateway lock"),
    ] {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.uid() == me {
            continue;
        }
        out.push(
            Finding::new(Code::ForeignOwner, Severity::Error, path.display().to_string())
                .message(format!(
                    "{what} {} belongs to uid {}, not to you (uid {me}): that user decides what picoclaw reads there (which pid `gateway stop` signals, where tokens are sent)",
                    path.display(),
                    meta.uid()
                ))
                .fix(format!(
                    "use a home that belongs to you (PICOCLAW_HOME), or run picoclaw as uid {}",
                    meta.uid()
                )),
        );
    }
}

#[cfg(not(unix))]
fn ownership(_paths: &Paths, _out: &mut Vec<Finding>) {}

fn same_dir(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
    canon(a) == canon(b)
}

fn units(paths: &Paths, dirs: &UserDirs, out: &mut Vec<Finding>) {
    for path in service::discover(dirs) {
        let Ok(audit) = service::audit_file(&path, dirs) else { continue };
        let home = audit.effective_home(dirs);
        let for_us = same_dir(&home, paths.home());
        if !audit.embedded.is_empty() {
            let what: Vec<String> = audit
                .embedded
                .iter()
                .map(|e| {
                    format!("{} via {} in {} (fingerprint {})", e.key.path, e.name, e.place, e.fingerprint())
                })
                .collect();
            let reload = match audit.manager {
                Manager::Systemd => "systemctl --user daemon-reload && systemctl --user restart <unit>",
                Manager::Launchd => "launchctl kickstart -k gui/$UID/<label>",
            };
            let mut finding = Finding::new(Code::TokenEmbeddedInUnit, Severity::Error, path.display().to_string())
                .message(format!(
                    "{} embeds {} secret(s): {}. A copy in a service definition shadows .security.yml and goes stale when the token is rotated",
                    path.display(),
                    audit.embedded.len(),
                    what.join("; ")
                ));
            if for_us {
                finding = finding
                    .fix(format!(
                        "move each value into .security.yml at the same key (so clients holding it keep working), then rewrite the unit without it; then {reload}"
                    ))
                    .action(Action::MigrateUnit(path.clone()));
            } else {
                finding = finding.fix(format!(
                    "this unit runs with PICOCLAW_HOME={}; run `PICOCLAW_HOME={} picoclaw doctor --fix`",
                    home.display(),
                    home.display()
                ));
            }
            out.push(finding);
        }
        if audit.ours && for_us {
            let binary_missing = audit.binary.as_deref().is_none_or(|b| !b.exists());
            let current = audit.spec(dirs).and_then(|spec| service::render(audit.manager, &spec).ok());
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if binary_missing || current.is_some_and(|c| c != text) && audit.embedded.is_empty() {
                let why = if binary_missing {
                    format!(
                        "the binary it starts ({}) does not exist",
                        audit.binary.as_deref().map_or_else(|| "none".into(), |b| b.display().to_string())
                    )
                } else {
                    "it differs from what this picoclaw renders (edited by hand, or written by another version)"
                        .to_owned()
                };
                out.push(
                    Finding::new(Code::UnitOutdated, Severity::Warning, path.display().to_string())
                        .message(format!("{}: {why}", path.display()))
                        .fix("re-render it (`picoclaw service install --force`), then reload the service manager")
                        .action(Action::RerenderUnit(path.clone())),
                );
            }
        }
    }
}

/// A file in upstream PicoClaw's version-3 shape (`"version": 3`, `channel_list.<name>`
/// with `settings`). picoclaw reads it as it is; the finding says so, and `--fix` rewrites
/// it into ours so one shape is documented, shown and diffed. Secrets under
/// `channel_list.*.settings` in config.json are moved to `.security.yml` by the same fix.
fn upstream_shape(loaded: &Loaded, out: &mut Vec<Finding>) {
    for path in loaded.upstream_shaped() {
        let name =
            path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
        out.push(
            Finding::new(Code::UpstreamConfigShape, Severity::Warning, path.display().to_string())
                .message(format!(
                    "{} is in upstream PicoClaw's version-3 shape (`version`, `channel_list.<name>.settings`); picoclaw reads it as it is (`channel_list.pico.settings.token` as channels.pico.token, and so on)",
                    path.display()
                ))
                .fix(format!(
                    "rewrite it into picoclaw's shape (`channels.pico.*`, no `version`), keeping the old file as {name}{} beside it; secrets in config.json then move to .security.yml",
                    picoclaw_credentials::upstream::BACKUP_SUFFIX
                ))
                .action(Action::RewriteUpstream),
        );
    }
}

fn secrets_in_config(loaded: &Loaded, out: &mut Vec<Finding>) {
    for s in loaded.config_secrets() {
        out.push(
            Finding::new(Code::SecretInConfigJson, Severity::Error, s.key.clone())
                .message(format!(
                    "{} holds {} (fingerprint {}); config.json is for settings and is often shared or committed",
                    loaded.paths.config_file().display(),
                    s.key,
                    s.fingerprint
                ))
                .fix(format!("move it to .security.yml key {} (mode 0600) and remove it from config.json", s.target))
                .action(Action::MoveConfigSecrets),
        );
    }
}

/// A password in `channels.pico_client.url`. picoclaw resolves it as a credential (HTTP
/// Basic auth) and never shows it, but the file or variable holding the URL is read by
/// other tools as a plain setting. In `.security.yml` it is where secrets belong.
fn secret_in_url(settings: &Settings, creds: &Credentials, out: &mut Vec<Finding>) {
    if let Some(url) = settings.pico_client.url.as_ref().filter(|u| u.has_secret_query()) {
        let source = settings
            .origin(&schema::CHANNELS_PICO_CLIENT_URL)
            .map_or_else(|| "-".into(), ToString::to_string);
        out.push(
            Finding::new(Code::SecretInUrl, Severity::Warning, schema::CHANNELS_PICO_CLIENT_URL.path)
                .message(format!(
                    "channels.pico_client.url from {source} carries a token in its query ({}); URLs end up in proxy logs and are shown by other tools as they are",
                    url.shown()
                ))
                .fix("put the token in .security.yml channels.pico_client.token (sent as Authorization: Bearer) and remove it from the URL"),
        );
    }
    let Some(basic) = creds.pico_client_basic() else { return };
    let severity = match basic.source {
        Source::SecurityFile(_) => return,
        Source::ConfigFile(_) => Severity::Error,
        _ => Severity::Warning,
    };
    let shown = settings.pico_client.url.as_ref().map_or("-", |u| u.shown());
    let used = if creds.pico_client().is_some() {
        "It is ignored: channels.pico_client.token is set and is sent instead"
    } else {
        "pico_client sends it as HTTP Basic auth"
    };
    out.push(
        Finding::new(Code::SecretInUrl, severity, schema::CHANNELS_PICO_CLIENT_URL.path)
            .message(format!(
                "channels.pico_client.url from {} carries a user:password (fingerprint {}); picoclaw shows the URL as {shown} and never logs the password, but {} is a settings source other tools show as is. {used}",
                basic.source,
                basic.secret.fingerprint(),
                basic.source
            ))
            .fix("if the remote server accepts a token, put it in .security.yml channels.pico_client.token and remove the user:password from the URL; if it needs HTTP Basic auth, move channels.pico_client.url (with its user:password) into .security.yml, which is private and never shown"),
    );
}

fn shadows(creds: &Credentials, out: &mut Vec<Finding>) {
    for w in creds.shadow_warnings() {
        // A variable, a `_FILE` variable or the systemd credentials directory: all are
        // absent from processes started elsewhere, which then resolve the file's value.
        let name = match &w.winner {
            Source::Env(name) | Source::EnvFile(name) => *name,
            Source::Credential(_) => picoclaw_config::schema::CREDENTIALS_DIRECTORY,
            _ => continue,
        };
        out.push(
            Finding::new(Code::EnvShadowsFile, Severity::Warning, w.key.clone())
                .message(format!(
                    "{w}. Processes started without {name} (a service unit, cron, another shell) resolve the file's value instead"
                ))
                .fix(format!(
                    "keep one source: unset {name}, or put the same value in {}",
                    w.shadowed
                )),
        );
    }
}

/// The mount points of `/proc/self/mountinfo` text (field 5, `\040`-style escapes decoded).
fn mount_points(mountinfo: &str) -> Vec<std::path::PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| {
            let decoded =
                m.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\");
            std::path::PathBuf::from(decoded)
        })
        .collect()
}

/// Kubernetes pitfalls of secrets on volumes (docs/deploy.md): a secret file or
/// `.security.yml` mounted on its own (`subPath`: a bind mount of one file, never updated
/// when the Secret changes, kubernetes#50345), and a `.security.yml` the gateway cannot
/// write (a read-only mount, or a symlink into a Secret volume's `..data`). `mountinfo` is
/// the text of `/proc/self/mountinfo` (empty where there is none).
pub(crate) fn secret_mounts(paths: &Paths, creds: &Credentials, mountinfo: &str, out: &mut Vec<Finding>) {
    let mounted = mount_points(mountinfo);
    let security = paths.security_file();
    let mut files: Vec<std::path::PathBuf> = creds.secret_files().to_vec();
    if security.exists() {
        files.push(security.clone());
    }
    for file in &files {
        let is_file = std::fs::metadata(file).is_ok_and(|m| m.is_file());
        if is_file && mounted.iter().any(|m| m == file) {
            out.push(
                Finding::new(Code::SecretMountSubpath, Severity::Warning, file.display().to_string())
                    .message(format!(
                        "{} is a single file mounted on its own (a Kubernetes subPath mount): it never sees an update of its source, so a rotated Secret does not reach the gateway until the pod is recreated (kubernetes#50345)",
                        file.display()
                    ))
                    .fix("mount the Secret as a directory (no subPath) and point a PICOCLAW_<NAME>_FILE variable at the file inside it; keep .security.yml on a writable volume (docs/deploy.md)"),
            );
        }
    }
    let Ok(meta) = std::fs::symlink_metadata(&security) else { return };
    let into_secret_volume = meta.file_type().is_symlink()
        && std::fs::read_link(&security).is_ok_and(|t| t.components().any(|c| c.as_os_str() == "..data"));
    // Opening for append writes nothing; it fails on a read-only mount (EROFS) or file.
    let read_only = matches!(
        std::fs::OpenOptions::new().append(true).open(&security),
        Err(e) if e.kind() == std::io::ErrorKind::ReadOnlyFilesystem || e.kind() == std::io::ErrorKind::PermissionDenied
    );
    if into_secret_volume || read_only {
        let why = if into_secret_volume {
            "is a symlink into a Secret volume (..data)"
        } else {
            "cannot be written (a read-only mount or file)"
        };
        out.push(
            Finding::new(Code::SecurityFileReadOnly, Severity::Warning, security.display().to_string())
                .message(format!(
                    "{} {why}, but the gateway writes named tokens (`picoclaw token create|revoke|rotate`) and rotation records there; those operations fail",
                    security.display()
                ))
                .fix("keep .security.yml on the writable PICOCLAW_HOME volume and deliver the gateway and pico tokens as files of the Secret directory (PICOCLAW_<NAME>_FILE)"),
        );
    }
}

fn exposure(settings: &Settings, out: &mut Vec<Finding>) {
    let origin = |key: &Key| settings.origin(key).map_or_else(|| "default".to_owned(), ToString::to_string);
    if settings.pico.enabled && settings.pico.allow_token_query {
        out.push(
            Finding::new(Code::QueryTokenEnabled, Severity::Warning, schema::CHANNELS_PICO_ALLOW_TOKEN_QUERY.path)
                .message(format!(
                    "channels.pico.allow_token_query is true (from {}): tokens in URLs end up in logs, proxies and browser history",
                    origin(&schema::CHANNELS_PICO_ALLOW_TOKEN_QUERY)
                ))
                .fix("set channels.pico.allow_token_query to false; browsers can send the token as the `token.<t>` WebSocket subprotocol"),
        );
    }
    if settings.pico.enabled && !settings.gateway.host.is_loopback() && settings.pico.allow_origins.is_empty()
    {
        out.push(
            Finding::new(Code::PublicBindWithoutOrigins, Severity::Warning, schema::CHANNELS_PICO_ALLOW_ORIGINS.path)
                .message(format!(
                    "the gateway binds {} (from {}) and channels.pico.allow_origins is empty, so a web page on any origin can open /pico/ws with a token it holds",
                    settings.gateway.host,
                    origin(&schema::GATEWAY_HOST)
                ))
                .fix("list the origins of your web clients in channels.pico.allow_origins, or bind localhost behind a reverse proxy"),
        );
    }
}

fn weak(loaded: &Loaded, creds: &Credentials, out: &mut Vec<Finding>) {
    let launcher = loaded.launcher_token();
    let all: [(&str, Option<(&picoclaw_credentials::Secret, &Source)>); 4] = [
        (schema::GATEWAY_TOKEN.path, creds.gateway().map(|r| (&r.secret, &r.source))),
        (schema::CHANNELS_PICO_TOKEN.path, creds.pico().map(|r| (&r.secret, &r.source))),
        (schema::CHANNELS_PICO_CLIENT_TOKEN.path, creds.pico_client().map(|r| (&r.secret, &r.source))),
        (schema::LAUNCHER_TOKEN.path, launcher.as_ref().map(|l| (&l.secret, &l.source))),
    ];
    for (key, found) in all {
        let Some((secret, source)) = found else { continue };
        if let Some(w) = weakness(secret) {
            out.push(
                Finding::new(Code::WeakToken, Severity::Error, key)
                    .message(format!("{key} from {source} (fingerprint {}) is weak: {w}", secret.fingerprint()))
                    .fix(format!(
                        "replace it with a random token (`openssl rand -hex 32`) in {source}, then update the clients that use it"
                    )),
            );
        }
    }
}

/// A pico token equal to the gateway token makes every pico-token holder an admin: the
/// gateway token is accepted on every endpoint.
fn shared_tokens(creds: &Credentials, settings: &Settings, out: &mut Vec<Finding>) {
    let (Some(gateway), Some(pico)) = (creds.gateway(), creds.pico()) else { return };
    // Both are hashed and the digests compared in constant time; neither value is shown.
    if !gateway.secret.matches(pico.secret.expose()) {
        return;
    }
    let channel = if settings.pico.enabled {
        ""
    } else {
        " (the Pico channel is off now, but the value is still the gateway token)"
    };
    out.push(
        Finding::new(Code::PicoTokenEqualsGatewayToken, Severity::Error, schema::CHANNELS_PICO_TOKEN.path)
            .message(format!(
                "channels.pico.token ({}) is the same value as gateway.token ({}): every client given the pico token for chat can also reload the gateway and manage tokens{channel}",
                pico.source, gateway.source
            ))
            .fix(format!(
                "give the pico token its own random value (`openssl rand -hex 32`) in {}, then update the chat clients; or give chat clients named tokens (`picoclaw token create --scope chat`)",
                pico.source
            )),
    );
}

fn gateway(verified: &VerifiedGateway, settings: &Settings, creds: &Credentials, out: &mut Vec<Finding>) {
    let record = verified.record();
    match verified.loopback_addr() {
        Ok(_) => {}
        Err(e) => {
            out.push(
                Finding::new(Code::GatewayCheckSkipped, Severity::Info, "gateway")
                    .message(format!(
                        "the running gateway (pid {}) is recorded at {}: {e}",
                        record.pid,
                        record.base_url()
                    ))
                    .fix("run doctor against a gateway bound to loopback or 0.0.0.0"),
            );
            return;
        }
    }
    match http::request(verified, "GET", "/health", Credential::None) {
        Ok(r) if r.status == 200 => {
            let theirs = r.body.get("version").and_then(|v| v.as_str()).unwrap_or(&record.version);
            if theirs != env!("CARGO_PKG_VERSION") {
                out.push(
                    Finding::new(Code::GatewayVersionMismatch, Severity::Warning, "gateway")
                        .message(format!(
                            "the running gateway (pid {}) is version {theirs}, this picoclaw is {}: an upgrade is not in effect until the gateway restarts",
                            record.pid,
                            env!("CARGO_PKG_VERSION")
                        ))
                        .fix("restart the gateway (picoclaw gateway restart, or systemctl --user restart picoclaw-gateway.service)"),
                );
            }
        }
        Ok(r) => {
            out.push(unreachable(record, &format!("/health answered {}", r.status)));
            return;
        }
        Err(e) => {
            out.push(unreachable(record, &e.to_string()));
            return;
        }
    }
    match http::request(verified, "GET", "/ready", Credential::None) {
        Ok(r) if r.status == 200 => {}
        Ok(r) => out.push(
            Finding::new(Code::GatewayNotReady, Severity::Warning, "gateway")
                .message(format!(
                    "the gateway (pid {}) answers /ready with {} ({})",
                    record.pid,
                    r.status,
                    r.body.get("checks").map_or_else(String::new, ToString::to_string)
                ))
                .fix("wait for start-up to finish; if it stays not ready, see logs/gateway.log"),
        ),
        Err(e) => out.push(unreachable(record, &e.to_string())),
    }
    let mut candidates: Vec<(&str, &Resolved, &str)> = Vec::new();
    if let Some(r) = creds.gateway() {
        candidates.push((schema::GATEWAY_TOKEN.path, r, "gateway"));
    }
    if let Some(r) = creds.pico()
        && settings.pico.enabled
    {
        candidates.push((schema::CHANNELS_PICO_TOKEN.path, r, "pico"));
    }
    for (key, resolved, kind) in candidates {
        // Presented only to the verified local gateway, over loopback.
        let answer = http::request(verified, "GET", "/auth/whoami", Credential::Configured(&resolved.secret));
        let ours = resolved.secret.fingerprint().to_string();
        let mismatch = |detail: String| {
            Finding::new(Code::ClientGatewayTokenMismatch, Severity::Error, key)
                .message(format!(
                    "{key} as this environment resolves it ({}, fingerprint {ours}) {detail} by the running gateway (pid {}, {}). Clients configured like this shell fail with 401",
                    resolved.source,
                    record.pid,
                    record.base_url()
                ))
                .fix(format!(
                    "reload the gateway so it re-reads its files (doctor --fix does this with the runtime token); if the gateway's own environment sets the variable for {key}, restart it from an environment that matches (systemctl --user restart picoclaw-gateway.service, or picoclaw gateway restart)"
                ))
                .action(Action::ReloadGateway)
        };
        match answer {
            Ok(r) if r.status == 200 => {
                let theirs = r.body.get("fingerprint").and_then(|v| v.as_str()).unwrap_or_default();
                let their_kind = r.body.get("kind").and_then(|v| v.as_str()).unwrap_or_default();
                if theirs != ours {
                    out.push(mismatch(format!(
                        "was accepted as a different credential (fingerprint {theirs})"
                    )));
                } else if their_kind != kind && their_kind != "gateway" {
                    out.push(
                        Finding::new(Code::ClientGatewayTokenMismatch, Severity::Warning, key)
                            .message(format!("{key} (fingerprint {ours}) is accepted by the gateway as a {their_kind} credential, not as the {kind} token"))
                            .fix("use distinct values for distinct credentials"),
                    );
                }
            }
            Ok(r) if r.status == 401 => {
                let code = r.body.pointer("/error/code").and_then(|v| v.as_str()).unwrap_or("unauthorized");
                out.push(mismatch(format!("is rejected ({code})")));
            }
            Ok(r) => out.push(
                // Not verified is not "fine": e.g. 429 after many failed attempts.
                Finding::new(Code::ClientGatewayTokenUnverified, Severity::Warning, key)
                    .message(format!(
                        "could not verify {key} against the running gateway: /auth/whoami answered {}{}",
                        r.status,
                        r.body
                            .pointer("/error/code")
                            .and_then(|v| v.as_str())
                            .map_or_else(String::new, |c| format!(" ({c})"))
                    ))
                    .fix("run doctor again in a minute (failed attempts are rate limited)"),
            ),
            Err(e) => out.push(unreachable(record, &e.to_string())),
        }
    }
}

fn unreachable(record: &RuntimeRecord, why: &str) -> Finding {
    Finding::new(Code::GatewayUnreachable, Severity::Error, "gateway")
        .message(format!(
            "the gateway (pid {}) holds the lock but {} does not answer: {why}",
            record.pid,
            record.base_url()
        ))
        .fix("see logs/gateway.log; restart it with `picoclaw gateway restart` or `systemctl --user restart picoclaw-gateway.service`")
}

#[cfg(test)]
mod tests;
