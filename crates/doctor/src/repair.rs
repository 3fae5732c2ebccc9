//! Applying the safe fixes, in an order that never loses a credential: permissions first,
//! then secrets into `.security.yml`, then units rewritten without them, then a reload of
//! the running gateway so it reads the result.

use std::collections::HashMap;
use std::path::Path;

use picoclaw_config::Paths;
use picoclaw_credentials::migrate::Adoption;
use picoclaw_credentials::migrate::{MoveOutcome, move_config_secrets};
use picoclaw_lifecycle::Probe;
use picoclaw_lifecycle::migrate::{self, MigrateError};
use picoclaw_lifecycle::service::{self, Manager, ManagerCall, UserDirs};

use crate::{Action, Code, Finding, Options, http};

type Notes = HashMap<(Code, String), String>;

fn priority(action: &Action) -> u8 {
    match action {
        Action::Chmod(..) => 0,
        Action::RemoveStalePid => 1,
        Action::RewriteUpstream => 2,
        Action::MoveConfigSecrets => 3,
        Action::MigrateUnit(_) => 4,
        Action::RerenderUnit(_) => 5,
        Action::ReloadGateway => 6,
    }
}

/// Applies every finding's action once (duplicates collapse); returns notes per finding.
pub fn apply(findings: &[Finding], options: &Options<'_>) -> Notes {
    let mut notes = Notes::new();
    let Ok(paths) = Paths::from_env(options.env) else { return notes };
    let dirs = UserDirs::from_env(options.env).ok();
    let mut work: Vec<(&Action, &Finding)> =
        findings.iter().filter_map(|f| f.action.as_ref().map(|a| (a, f))).collect();
    work.sort_by_key(|(a, _)| priority(a));
    let mut done: Vec<&Action> = Vec::new();
    for (action, finding) in work {
        if done.contains(&action) {
            continue;
        }
        done.push(action);
        let key = (finding.code, finding.subject.clone());
        match action {
            Action::Chmod(path, mode) => {
                if let Err(e) = chmod(path, *mode) {
                    notes.insert(key, format!("chmod failed: {e}"));
                }
            }
            Action::RemoveStalePid => {
                // Re-check: a gateway may have started since the diagnosis.
                if matches!(picoclaw_lifecycle::probe(&paths), Ok(Probe::Stale))
                    && let Err(e) = std::fs::remove_file(paths.pid_file())
                {
                    notes.insert(key, format!("cannot remove it: {e}"));
                }
            }
            Action::RewriteUpstream => {
                let note = match picoclaw_credentials::upstream::rewrite_upstream_files(&paths) {
                    Ok(done) => {
                        let mut parts: Vec<String> = done
                            .iter()
                            .map(|r| {
                                format!(
                                    "{} rewritten; the old file is {}",
                                    r.path.display(),
                                    r.backup.display()
                                )
                            })
                            .collect();
                        // Secrets that sat under channel_list.*.settings are now at their
                        // flat keys of config.json: move them where secrets belong.
                        match move_config_secrets(&paths) {
                            Ok(moved) => parts.extend(moved.iter().map(|(s, outcome)| match outcome {
                                MoveOutcome::Conflict { file_fingerprint } => format!(
                                    "{} left in config.json: .security.yml:{} already holds a different value (fingerprint {file_fingerprint}), which wins",
                                    s.key, s.target
                                ),
                                _ => format!("{} (fingerprint {}) moved to .security.yml:{}", s.key, s.fingerprint, s.target),
                            })),
                            Err(e) => parts.push(format!("secrets were not moved: {e}")),
                        }
                        parts.join("; ")
                    }
                    Err(e) => format!("nothing was changed: {e}"),
                };
                for f in findings.iter().filter(|f| f.code == Code::UpstreamConfigShape) {
                    notes.insert((f.code, f.subject.clone()), note.clone());
                }
            }
            Action::MoveConfigSecrets => match move_config_secrets(&paths) {
                Ok(results) => {
                    for (secret, outcome) in results {
                        if let MoveOutcome::Conflict { file_fingerprint } = outcome {
                            notes.insert(
                                (Code::SecretInConfigJson, secret.key.clone()),
                                format!(
                                    "left in config.json: .security.yml:{} already holds a different value (fingerprint {file_fingerprint}), which wins; delete the one that is wrong by hand",
                                    secret.target
                                ),
                            );
                        }
                    }
                }
                Err(e) => {
                    for f in findings.iter().filter(|f| f.code == Code::SecretInConfigJson) {
                        notes.insert((f.code, f.subject.clone()), format!("nothing was changed: {e}"));
                    }
                }
            },
            Action::MigrateUnit(path) => {
                if let Some(dirs) = &dirs {
                    let note = migrate_unit(&paths, dirs, path);
                    notes.insert(key, note);
                }
            }
            Action::RerenderUnit(path) => {
                if let Some(dirs) = &dirs {
                    notes.insert(key, rerender(dirs, path, options));
                }
            }
            Action::ReloadGateway => {
                if let Some(note) = reload(&paths) {
                    for f in findings.iter().filter(|f| f.code == Code::ClientGatewayTokenMismatch) {
                        notes.insert((f.code, f.subject.clone()), note.clone());
                    }
                }
            }
        }
    }
    notes
}

fn chmod(path: &Path, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(())
    }
}

fn after_rewrite(manager: Manager, label: &str) -> String {
    match manager {
        Manager::Systemd => match service::systemctl_user(&["daemon-reload"]) {
            ManagerCall::Done => format!(
                "ran `systemctl --user daemon-reload`; the running service keeps its old environment until `systemctl --user restart {label}`"
            ),
            ManagerCall::Failed(e) => format!(
                "`systemctl --user daemon-reload` failed ({e}); run it, then `systemctl --user restart {label}`"
            ),
            ManagerCall::Unavailable => format!(
                "no systemd user manager answers here; run `systemctl --user daemon-reload && systemctl --user restart {label}`"
            ),
        },
        Manager::Launchd => format!(
            "run `launchctl bootout gui/$UID/{label}; launchctl bootstrap gui/$UID <plist>` to load the new definition"
        ),
    }
}

fn migrate_unit(paths: &Paths, dirs: &UserDirs, path: &Path) -> String {
    let done = match migrate::unit(paths, dirs, path) {
        Ok(done) => done,
        Err(MigrateError::Read(e)) => return format!("cannot read it: {e}"),
        Err(MigrateError::Ambiguous { .. }) => {
            return "nothing was changed: the unit sets the same key to different values; remove the wrong one by hand"
                .to_owned();
        }
        Err(e) => return format!("nothing was changed: {e}"),
    };
    let mut parts = Vec::new();
    for a in &done.adopted {
        match &a.outcome {
            Adoption::Stored { destination } => {
                parts.push(format!("{} (fingerprint {}) moved to {destination}", a.key.path, a.fingerprint));
            }
            Adoption::AlreadyThere { destination } => {
                parts.push(format!("{} already in {destination}", a.key.path));
            }
            Adoption::Conflict { destination, file_fingerprint } => parts.push(format!(
                "{destination} holds a different value (fingerprint {file_fingerprint}) and was kept: after a restart the service uses it, so clients still holding fingerprint {} must be updated",
                a.fingerprint
            )),
            Adoption::Ambiguous => {}
        }
    }
    let label = match done.audit.manager {
        Manager::Systemd => path
            .file_name()
            .map_or_else(|| service::SYSTEMD_UNIT.into(), |n| n.to_string_lossy().into_owned()),
        Manager::Launchd => service::LAUNCHD_LABEL.to_owned(),
    };
    match done.rewrite {
        Ok(r) if r.remaining > 0 => parts.push(format!(
            "{} secret(s) remain in a command line, which cannot be edited safely: remove them from {} by hand",
            r.remaining,
            path.display()
        )),
        Ok(_) => parts.push(format!("unit rewritten without secrets; {}", after_rewrite(done.audit.manager, &label))),
        Err(e) => parts.push(format!("the unit was not rewritten: {e}")),
    }
    parts.join("; ")
}

fn rerender(dirs: &UserDirs, path: &Path, options: &Options<'_>) -> String {
    let audit = match service::audit_file(path, dirs) {
        Ok(a) => a,
        Err(e) => return format!("cannot read it: {e}"),
    };
    let Some(mut spec) = audit.spec(dirs).or_else(|| {
        options.current_exe.clone().map(|binary| service::UnitSpec {
            binary,
            home: audit.effective_home(dirs),
            config: audit.config.clone(),
            credentials: audit.credentials.clone(),
        })
    }) else {
        return "cannot tell which binary to start".to_owned();
    };
    if !spec.binary.exists()
        && let Some(exe) = &options.current_exe
    {
        spec.binary = exe.clone();
    }
    let text = match service::render(audit.manager, &spec) {
        Ok(t) => t,
        Err(e) => return e.to_string(),
    };
    if let Err(e) = picoclaw_config::files::write_atomic(path, text.as_bytes(), 0o644) {
        return e.to_string();
    }
    let label = match audit.manager {
        Manager::Systemd => service::SYSTEMD_UNIT,
        Manager::Launchd => service::LAUNCHD_LABEL,
    };
    format!("re-rendered; {}", after_rewrite(audit.manager, label))
}

fn reload(paths: &Paths) -> Option<String> {
    let Ok(Probe::Running(verified)) = picoclaw_lifecycle::probe(paths) else { return None };
    verified.loopback_addr().ok()?;
    // The runtime token is the verified local gateway's own credential.
    Some(match http::request(&verified, "POST", "/reload", http::Credential::Runtime) {
        Ok(r) if r.status == 200 => "asked the gateway to reload its files".to_owned(),
        Ok(r) => format!("the gateway refused to reload ({})", r.status),
        Err(e) => format!("cannot reach the gateway to reload it: {e}"),
    })
}
