//! The TUI's operations, run off the drawing loop: each one calls the code the dashboard
//! or the CLI uses (`GatewayControl`, `auth explain`, `named::ops`) and reports back a
//! [`Done`]. Nothing here prints: a line on stderr would tear the screen.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use picoclaw_auth::Scope;
use picoclaw_auth::audit::{self, AuditEvent, AuditSink};
use picoclaw_auth::explain::{Extra, explain, named_token_counts};
use picoclaw_auth::named::ops::{CreateRequest, Requester, RotateRequest};
use picoclaw_config::{Flags, Paths};
use picoclaw_credentials::Secret;
use picoclaw_launcher::{GatewayControl, GatewayStatus};
use tokio::sync::mpsc;

use crate::context::Context;

/// One row of the credentials table: never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredRow {
    /// `pico token`, `gateway token`, … or a named token's `name (scope)`.
    pub name: String,
    /// Where it comes from (`.security.yml`, `env:…`), `not set`, or a named token's state.
    pub source: String,
    /// First 8 hex of its SHA-256, or `-`.
    pub fingerprint: String,
}

/// A result for the screen.
pub enum Done {
    /// The gateway's state now.
    Status(GatewayStatus),
    /// The credentials table now, or why it could not be read.
    Credentials(Result<Vec<CredRow>, String>),
    /// An operation finished; what happened, for the footer line.
    Notice(String),
    /// An operation failed.
    Failed(String),
    /// A new secret to show once.
    Secret {
        /// What it is.
        title: String,
        /// Its fingerprint and what happened around it.
        detail: String,
        /// The value.
        secret: Secret,
    },
    /// Chat news.
    Chat(super::chat::ChatEvent),
}

/// Starts operations in the background and sends their [`Done`].
pub struct Worker {
    control: Arc<GatewayControl>,
    done: mpsc::Sender<Done>,
    refreshing: Arc<AtomicBool>,
}

impl Worker {
    pub fn new(control: Arc<GatewayControl>, done: mpsc::Sender<Done>) -> Worker {
        Worker { control, done, refreshing: Arc::default() }
    }

    /// Reads the gateway state and the credentials table (one refresh at a time).
    pub fn refresh(&self) {
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (control, done, flag) = (self.control.clone(), self.done.clone(), self.refreshing.clone());
        tokio::spawn(async move {
            let status = control.status().await;
            let _ = done.send(Done::Status(status)).await;
            let creds = tokio::task::spawn_blocking(credentials)
                .await
                .unwrap_or_else(|e| Err(format!("cannot read the credentials: {e}")));
            let _ = done.send(Done::Credentials(creds)).await;
            flag.store(false, Ordering::Release);
        });
    }

    pub fn start(&self) {
        let (control, done) = (self.control.clone(), self.done.clone());
        tokio::spawn(async move {
            let msg = match control.start().await {
                Ok(r) => Done::Notice(format!("gateway started (pid {}) at {}", r.pid, r.base_url())),
                Err(e) => Done::Failed(e.to_string()),
            };
            let _ = done.send(msg).await;
            let _ = done.send(Done::Status(control.status().await)).await;
        });
    }

    pub fn stop(&self) {
        let (control, done) = (self.control.clone(), self.done.clone());
        tokio::spawn(async move {
            let msg = match control.stop().await {
                Ok(Some(pid)) => Done::Notice(format!("gateway stopped (pid {pid})")),
                Ok(None) => Done::Notice("gateway is not running".to_owned()),
                Err(e) => Done::Failed(e.to_string()),
            };
            let _ = done.send(msg).await;
            let _ = done.send(Done::Status(control.status().await)).await;
        });
    }

    pub fn restart(&self) {
        let (control, done) = (self.control.clone(), self.done.clone());
        tokio::spawn(async move {
            let msg = match control.restart().await {
                Ok(r) => Done::Notice(format!("gateway restarted (pid {}) at {}", r.pid, r.base_url())),
                Err(e) => Done::Failed(e.to_string()),
            };
            let _ = done.send(msg).await;
            let _ = done.send(Done::Status(control.status().await)).await;
        });
    }

    /// `picoclaw token rotate pico`, with the same checks and reload.
    pub fn rotate_pico(&self) {
        self.blocking(|| {
            let ctx = Context::load(&Flags::new()).map_err(|e| format!("{e:#}"))?;
            crate::commands::token::refuse_if_the_gateway_takes_it_from_env(&ctx, "pico")
                .map_err(|e| format!("{e:#}"))?;
            let ops = ctx.token_ops();
            let request = RotateRequest::new("pico", None).map_err(|e| e.to_string())?;
            let audit = Audit::new(&ctx.paths);
            let rotated = ops.rotate(&request, &Requester::Cli, &audit).map_err(|e| e.to_string())?;
            let mut detail = format!(
                "fingerprint {}; {}",
                rotated.fingerprint,
                super::super::token::ask_gateway_to_reload(&ctx)
            );
            if let Err(e) = crate::commands::token::confirm_the_gateway_accepts(&ctx, rotated.secret()) {
                detail = format!("{detail}; warning: {e:#}");
            }
            if let Some(e) = audit.failure() {
                detail = format!("{detail}; warning: {e}");
            }
            Ok(Done::Secret { title: "new pico token".to_owned(), detail, secret: rotated.secret().clone() })
        });
    }

    /// `picoclaw token create --name NAME --scope SCOPE`, with the same reload.
    pub fn create(&self, name: String, scope: Scope) {
        self.blocking(move || {
            let ctx = Context::load(&Flags::new()).map_err(|e| format!("{e:#}"))?;
            let ops = ctx.token_ops();
            let request = CreateRequest::new(&name, scope, None, ops.now()).map_err(|e| e.to_string())?;
            let audit = Audit::new(&ctx.paths);
            let created = ops.create(&request, &Requester::Cli, &audit).map_err(|e| e.to_string())?;
            let s = &created.summary;
            let mut detail = format!(
                "id {}, fingerprint {}; {}",
                s.id,
                s.fingerprint,
                crate::commands::token::ask_gateway_to_reload(&ctx)
            );
            if let Some(e) = audit.failure() {
                detail = format!("{detail}; warning: {e}");
            }
            Ok(Done::Secret {
                title: format!("token `{}` ({} scope)", s.name, s.scope),
                detail,
                secret: created.secret().clone(),
            })
        });
    }

    /// Runs `op` on the blocking pool, then refreshes.
    fn blocking(&self, op: impl FnOnce() -> Result<Done, String> + Send + 'static) {
        let done = self.done.clone();
        tokio::spawn(async move {
            let msg = match tokio::task::spawn_blocking(op).await {
                Ok(Ok(msg)) => msg,
                Ok(Err(e)) => Done::Failed(e),
                Err(e) => Done::Failed(format!("the operation failed: {e}")),
            };
            let _ = done.send(msg).await;
            let creds = tokio::task::spawn_blocking(credentials)
                .await
                .unwrap_or_else(|e| Err(format!("cannot read the credentials: {e}")));
            let _ = done.send(Done::Credentials(creds)).await;
        });
    }
}

/// The credentials as `picoclaw auth explain` lists them, then the named tokens.
fn credentials() -> Result<Vec<CredRow>, String> {
    let ctx = Context::load(&Flags::new()).map_err(|e| format!("{e:#}"))?;
    let launcher = ctx.loaded.launcher_token();
    let runtime = super::super::gateway::live_record(&ctx.paths);
    let password = ctx.loaded.dashboard_password().ok().flatten();
    let extra = Extra {
        runtime: runtime.as_ref(),
        launcher: launcher.as_ref(),
        password: password.as_ref(),
        named: named_token_counts(&ctx.token_records()),
    };
    let explanation = explain(&ctx.settings, &ctx.credentials, &extra);
    let mut rows: Vec<CredRow> = explanation
        .credentials
        .iter()
        .map(|c| CredRow {
            name: c.name.to_owned(),
            source: if c.set { c.source.clone().unwrap_or_else(|| "-".into()) } else { "not set".into() },
            fingerprint: c.fingerprint.clone().unwrap_or_else(|| "-".into()),
        })
        .collect();
    let ops = ctx.token_ops();
    if let Ok(listed) = ops.list() {
        rows.extend(listed.tokens.iter().map(|t| CredRow {
            name: format!("{} ({})", t.name, t.scope),
            source: format!("named, {}", t.state),
            fingerprint: t.fingerprint.clone(),
        }));
    }
    Ok(rows)
}

/// `logs/audit.jsonl`, appended to synchronously; a failure is kept for the screen.
struct Audit {
    path: std::path::PathBuf,
    failure: std::sync::Mutex<Option<String>>,
}

impl Audit {
    fn new(paths: &Paths) -> Audit {
        Audit { path: paths.audit_log(), failure: std::sync::Mutex::new(None) }
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }
}

impl AuditSink for Audit {
    fn record(&self, event: &AuditEvent) {
        if let Err(e) = audit::append(&self.path, event) {
            *self.failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(format!("cannot write {}: {e}", self.path.display()));
        }
    }
}
