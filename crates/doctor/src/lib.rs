//! `picoclaw doctor`: finds what makes clients and the gateway disagree, or what leaks or
//! weakens a credential, and applies the safe fixes.
//!
//! The doctor is a planner (OpenClaw lesson 12): it first collects [`Finding`]s with
//! stable kebab-case codes, a severity and the fix it would apply; with `--fix` it applies
//! the safe ones, then checks again. A finding counts as fixed only when the second pass
//! no longer reports it, so `fixed` is a verified statement, and running `--fix` twice
//! changes nothing the second time. Fixes never overwrite a file that does not parse and
//! never replace a secret a file already holds; they preserve the credentials clients
//! already hold (an embedded unit token moves into `.security.yml` before the unit is
//! rewritten without it).
//!
//! The doctor reads secret values only through the `picoclaw-credentials` crate, and
//! presents a configured credential only to the local gateway recorded in
//! `.picoclaw.pid`, over loopback, at `/auth/whoami`.

mod checks;
mod code;
pub use picoclaw_lifecycle::http;
mod repair;

use std::path::PathBuf;

use picoclaw_config::EnvSource;
use serde::Serialize;

pub use crate::code::Code;

/// How bad a finding is. Errors and warnings are problems (non-zero exit); infos are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Broken or unsafe now.
    Error,
    /// Likely to break or leak later.
    Warning,
    /// Worth knowing; not a problem.
    Info,
}

impl Severity {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }

    /// True for errors and warnings.
    pub fn is_problem(self) -> bool {
        self != Severity::Info
    }
}

/// What `--fix` does for a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// chmod the file.
    Chmod(PathBuf, u32),
    /// Remove `.picoclaw.pid` if it is still stale.
    RemoveStalePid,
    /// Rewrite upstream-shaped config.json / `.security.yml` into ours (backups kept),
    /// then move config.json secrets into `.security.yml`.
    RewriteUpstream,
    /// Move config.json secrets into `.security.yml`.
    MoveConfigSecrets,
    /// Adopt a unit's secrets into `.security.yml`, then rewrite it without them.
    MigrateUnit(PathBuf),
    /// Re-render our unit (outdated or pointing at a missing binary).
    RerenderUnit(PathBuf),
    /// Ask the running gateway to re-read its files (with its runtime token).
    ReloadGateway,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Stable code, e.g. `token-embedded-in-unit`.
    pub code: Code,
    /// Severity.
    pub severity: Severity,
    /// What is wrong (names sources and fingerprints, never a value).
    pub message: String,
    /// The fix (what `--fix` does, or what to do by hand).
    pub fix: String,
    /// True when `--fix` applied the fix and a second check no longer finds the problem.
    pub fixed: bool,
    /// What the finding is about (a file, a key); findings are matched on code + subject.
    pub subject: String,
    /// Why `--fix` could not fix it, or what it left for the user to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip)]
    action: Option<Action>,
}

impl Finding {
    fn new(code: Code, severity: Severity, subject: impl Into<String>) -> Finding {
        Finding {
            code,
            severity,
            message: String::new(),
            fix: String::new(),
            fixed: false,
            subject: subject.into(),
            note: None,
            action: None,
        }
    }

    fn message(mut self, message: impl Into<String>) -> Finding {
        self.message = message.into();
        self
    }

    fn fix(mut self, fix: impl Into<String>) -> Finding {
        self.fix = fix.into();
        self
    }

    fn action(mut self, action: Action) -> Finding {
        self.action = Some(action);
        self
    }

    /// True when `--fix` has something to apply for it.
    pub fn fixable(&self) -> bool {
        self.action.is_some()
    }
}

/// The doctor's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Every finding, most severe first.
    pub findings: Vec<Finding>,
    /// Errors and warnings still present (after fixes, when `--fix` ran).
    pub problems_remaining: usize,
    /// Whether `--fix` ran (then the text output does not suggest it again).
    #[serde(skip)]
    pub fix_ran: bool,
}

/// What to run.
pub struct Options<'a> {
    /// The environment (process env in production, a map in tests).
    pub env: &'a dyn EnvSource,
    /// Apply the safe fixes.
    pub fix: bool,
    /// The `picoclaw` binary to put in a re-rendered unit when the recorded one is gone.
    pub current_exe: Option<PathBuf>,
}

/// Runs every check and, with `fix`, applies the safe fixes and checks again.
pub fn run(options: &Options<'_>) -> Report {
    let mut findings = checks::diagnose(options.env);
    if options.fix && findings.iter().any(Finding::fixable) {
        let notes = repair::apply(&findings, options);
        let after = checks::diagnose(options.env);
        let same = |a: &Finding, b: &Finding| a.code == b.code && a.subject == b.subject;
        // Fixed: found before, fixable, and gone now. Everything else is reported as the
        // second pass sees it (a fix may have changed a source or surfaced something new).
        let mut report: Vec<Finding> = findings
            .into_iter()
            .filter(|f| f.fixable() && !after.iter().any(|a| same(a, f)))
            .map(|mut f| {
                f.fixed = true;
                f
            })
            .collect();
        report.extend(after);
        for f in &mut report {
            if let Some(note) = notes.get(&(f.code, f.subject.clone())) {
                f.note = Some(note.clone());
            }
        }
        findings = report;
    }
    findings.sort_by_key(|f| (f.fixed, f.severity));
    let problems_remaining = findings.iter().filter(|f| f.severity.is_problem() && !f.fixed).count();
    Report { findings, problems_remaining, fix_ran: options.fix }
}

impl Report {
    /// Human-readable text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            let state = if f.fixed { " [fixed]" } else { "" };
            out.push_str(&format!("{:<8} {}{state}\n", f.severity.as_str(), f.code));
            out.push_str(&format!("         {}\n", f.message));
            if !f.fix.is_empty() {
                out.push_str(&format!("         fix: {}\n", f.fix));
            }
            if let Some(note) = &f.note {
                out.push_str(&format!("         note: {note}\n"));
            }
        }
        let fixable = self.findings.iter().filter(|f| !f.fixed && f.fixable()).count();
        match self.problems_remaining {
            0 => out.push_str("no problems found\n"),
            n => {
                out.push_str(&format!("{n} problem(s) remain"));
                if fixable > 0 && !self.fix_ran {
                    out.push_str(&format!("; `picoclaw doctor --fix` can fix {fixable}"));
                }
                out.push('\n');
            }
        }
        out
    }
}
