//! The command-line surface (the raw layer; values are validated by the config crate).

use std::ffi::OsString;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// picoclaw: a tiny personal-AI gateway with one coherent credential system.
#[derive(Debug, Parser)]
#[command(name = "picoclaw", version, about, propagate_version = true, after_help = EXIT_STATUS)]
pub struct Cli {
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The exit statuses every command shares (each command's `--help` adds its own).
const EXIT_STATUS: &str = "Exit status: 0 success; 1 failure (the message on stderr says what and why); 2 usage\n\
error (an unknown or malformed flag or argument); 3 not running / not installed\n\
(`gateway status`, `service status`); 78 configuration error (`gateway` in the\n\
foreground, EX_CONFIG, so a service manager does not restart-loop on a bad file).\n\
Commands that print state take --json (config show, auth explain, gateway status, token\n\
list, sessions list|show, service status|audit, doctor, version).";

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the home directory, config.json and a private .security.yml with a pico token.
    Onboard,
    /// Show the merged configuration or the environment variable table.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Explain which credential each endpoint accepts, and where each comes from.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Run the gateway in the foreground, or manage a background one.
    Gateway(GatewayArgs),
    /// Named tokens (create, list, revoke, rotate) and rotation of the pico/gateway tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Pair a phone or extension: a one-time link (optionally a QR code) that gives it its own token.
    Pair(PairArgs),
    /// Run the web dashboard (login, gateway control, chat, tokens); starts a gateway if none runs.
    Launcher(LauncherArgs),
    /// Chat with the gateway: one message when MESSAGE is given, else line by line from stdin.
    Chat(ChatArgs),
    /// Chat history kept by the running gateway: list, show, export (JSONL) or delete sessions.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Run the Pico protocol's checks against a server (ours or upstream PicoClaw's); pass/fail per feature.
    Conformance(ConformanceArgs),
    /// Install, remove, show or audit the gateway's systemd user unit or launchd agent.
    #[command(subcommand)]
    Service(ServiceCommand),
    /// A terminal UI for SSH: gateway state and control, log tail, credentials, chat.
    Tui,
    /// Check for credential drift, leaks, weak tokens and an unhealthy gateway; --fix repairs.
    Doctor(DoctorArgs),
    /// Print a known-good nginx, Caddy or Traefik configuration for picoclaw behind it.
    ProxyConfig(ProxyConfigArgs),
    /// Print the version.
    Version {
        /// Print JSON: {"version": "..."}.
        #[arg(long)]
        json: bool,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `picoclaw config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// The merged configuration, secrets redacted.
    Show {
        /// Show where each value comes from.
        #[arg(long)]
        origin: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every environment variable picoclaw reads, with its key, type and default.
    Env,
}

/// `picoclaw sessions ...` (through the running local gateway, with its runtime token:
/// every session, whoever owns it).
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// Sessions, most recent first: id, owner, messages, last activity.
    List {
        /// At most this many (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One session's messages, oldest first.
    Show {
        /// The session id.
        id: String,
        /// Only messages with a larger `seq` (protocol 2's numbering).
        #[arg(long, default_value_t = 0)]
        after_seq: u64,
        /// At most this many messages (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Every message of a session as JSON Lines (one object per message, oldest first).
    Export {
        /// The session id.
        id: String,
        /// Write to this file (atomically) instead of stdout.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Delete a session and its history; its open sockets are closed (code 4004).
    Delete {
        /// The session id.
        id: String,
    },
}

/// `picoclaw auth ...`
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Each endpoint, the credentials it accepts now, their sources and fingerprints.
    Explain {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `picoclaw token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a named token; it is printed once on stdout and only its SHA-256 is stored.
    Create {
        /// A unique name (letters, digits, `.`, `_`, `-`), e.g. `phone` or `ci`.
        #[arg(long)]
        name: String,
        /// What it may do: `chat` (the Pico channel) or `admin` (everything).
        #[arg(long, value_enum)]
        scope: TokenScope,
        /// Lifetime (`30d`, `12h`, `90m`) or an RFC 3339 time; default: never expires.
        #[arg(long)]
        expires: Option<String>,
        /// Print JSON (including the token) on stdout.
        #[arg(long)]
        json: bool,
    },
    /// List named tokens and the pico/gateway tokens (never a secret).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a named token at once (by id or name).
    Revoke {
        /// Token id or name.
        target: String,
        /// Print JSON (the revoked token's record) on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Give a credential a new secret: a named token (id or name; same id, name and scope),
    /// `pico` or `gateway`. The new value is printed once on stdout.
    Rotate {
        /// Token id or name, `pico` or `gateway`.
        target: String,
        /// How long the old secret keeps working (`10m`, `1h`); default: it stops at once.
        #[arg(long)]
        grace: Option<String>,
        /// Print JSON (including the new token) on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// Scope of a named token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenScope {
    /// Reading the history of every session (`/api/sessions`); cannot send or delete.
    Read,
    /// The Pico channel only.
    Chat,
    /// Everything, including /reload and the token API.
    Admin,
}

/// `picoclaw gateway [--host H] [--port P] [start|stop|restart|status|reload]`
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status (foreground): 0 clean stop; 1 cannot run (port in use, a gateway already\n\
runs from this home); 78 configuration error. `start` exits 0 when one already runs,\n\
`stop` exits 0 when none runs; `status`: see `picoclaw gateway status --help`."
)]
pub struct GatewayArgs {
    /// Bind address (overrides PICOCLAW_GATEWAY_HOST and the files).
    #[arg(long, global = true)]
    pub host: Option<String>,
    /// Port (overrides PICOCLAW_GATEWAY_PORT and the files).
    #[arg(long, global = true)]
    pub port: Option<u16>,
    /// Background management; without one, the gateway runs in the foreground.
    #[command(subcommand)]
    pub action: Option<GatewayAction>,
}

/// Background gateway management.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum GatewayAction {
    /// Start a gateway in the background (logs to logs/gateway.log).
    Start,
    /// Stop the running gateway (SIGTERM, drain, then SIGKILL after a bound).
    Stop,
    /// Stop, then start.
    Restart,
    /// Show pid, address, uptime, version and readiness.
    #[command(
        after_help = "Exit status: 0 running and ready; 1 running but not ready, starting, or not verifiable\n\
(.picoclaw.pid does not match the process holding the lock); 3 not running (also when a\n\
crash left a stale .picoclaw.pid)."
    )]
    Status {
        /// Print JSON: {state, running, pid, address, version, started_at, uptime_s, ready,
        /// agent, pico, pico_client} (state: running|starting|unverified|stale|not_running).
        #[arg(long)]
        json: bool,
    },
    /// Ask the running gateway to re-read its configuration and secrets.
    Reload,
}

/// `picoclaw launcher [--host H] [--port P] [--public] [--console] [--no-browser]`
#[derive(Debug, Args)]
pub struct LauncherArgs {
    /// Bind address (overrides PICOCLAW_LAUNCHER_HOST and launcher-config.json).
    #[arg(long)]
    pub host: Option<String>,
    /// Port, default 18800 (overrides PICOCLAW_LAUNCHER_PORT and launcher-config.json).
    #[arg(long)]
    pub port: Option<u16>,
    /// Listen on all interfaces (set launcher.allowed_cidrs too).
    #[arg(long)]
    pub public: bool,
    /// Print the dashboard token (or its source, when it comes from the environment) and a one-time login link.
    #[arg(long)]
    pub console: bool,
    /// Do not open a web browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Show a tray icon (gateway state, Start/Stop/Restart, Open dashboard, Copy Console Token, Quit); Linux builds with the `tray` feature.
    #[arg(long)]
    pub tray: bool,
}

/// `picoclaw pair [--scope chat|read] [--name N] [--ttl 10m] [--public-url U] [--qr] [--json]`
#[derive(Debug, Args)]
#[command(
    long_about = "Pair a phone or a browser extension with the running gateway.\n\n\
The gateway issues a single-use code that lives --ttl (1s to 1h) and prints a link\n\
<public-url>/pair#code=<code>. Opening it on the device exchanges the code, once, for a\n\
named token of --scope called --name (list it with `picoclaw token list`, revoke it with\n\
`picoclaw token revoke NAME`). The code is only ever in the link's fragment: never in a\n\
query, an argument or a log. It dies with the gateway, at its TTL, after one use, and\n\
when the credential that asked for it (the runtime token of this gateway) changes.",
    after_help = "Exit status: 0 a link was printed; 1 no gateway runs, or it refused (the message says why);\n\
2 usage error.\n\
The link alone goes to stdout (with --qr, the QR code after it; with --json, the JSON\n\
answer); notes go to stderr."
)]
pub struct PairArgs {
    /// What the device's token may do: chat (the Pico channel) or read (history only).
    #[arg(long, value_enum, default_value_t = PairScope::Chat)]
    pub scope: PairScope,
    /// The device's token name (1-64 letters, digits, `.`, `_`, `-`); default device-<6 hex>.
    #[arg(long)]
    pub name: Option<String>,
    /// How long the code can be used (1s to 1h): 90s, 10m, 1h.
    #[arg(long, default_value = "10m")]
    pub ttl: String,
    /// The URL the device reaches the gateway at (https://pc.example.com, http://192.168.1.20:18790);
    /// default: the gateway's own address.
    #[arg(long)]
    pub public_url: Option<String>,
    /// Also print the link as a QR code for a phone's camera.
    #[arg(long)]
    pub qr: bool,
    /// Print the gateway's JSON answer (link, id, scope, name, expiry) on stdout.
    #[arg(long)]
    pub json: bool,
}

/// What a paired device's token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PairScope {
    /// The Pico channel (chat).
    Chat,
    /// Reading history only.
    Read,
}

/// `picoclaw proxy-config nginx|caddy|traefik [--base-path P] [--public-url U] [--gateway]`
#[derive(Debug, Args)]
pub struct ProxyConfigArgs {
    /// The proxy.
    #[arg(value_enum)]
    pub proxy: ProxyArg,
    /// The prefix the dashboard is under (default: launcher.base_path); set launcher.base_path to the same.
    #[arg(long)]
    pub base_path: Option<String>,
    /// Where users open the dashboard, http(s)://HOST[:PORT] (default: any host on port 80).
    #[arg(long)]
    pub public_url: Option<String>,
    /// Also expose the gateway's Pico socket at <base>/gateway/pico/ws.
    #[arg(long)]
    pub gateway: bool,
}

/// Proxies `proxy-config` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProxyArg {
    /// A file for /etc/nginx/conf.d/.
    Nginx,
    /// A Caddyfile.
    Caddy,
    /// A Traefik dynamic configuration file (YAML).
    Traefik,
}

/// `picoclaw chat [--session S] [--url U] [MESSAGE]`
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 every message was answered; 1 a turn failed, or the gateway refused or\n\
closed the connection."
)]
pub struct ChatArgs {
    /// Session id (letters, digits, `.`, `_`, `:`, `-`); default: a new random session.
    #[arg(long, short = 's')]
    pub session: Option<String>,
    /// A remote gateway (`ws://`, `wss://`, `http://` or `https://`); default: the local
    /// gateway recorded in .picoclaw.pid, with its runtime token.
    #[arg(long)]
    pub url: Option<String>,
    /// Seconds to wait for a complete answer.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// The message; several words are joined with spaces. Omit it to chat interactively.
    pub message: Vec<String>,
}

/// `picoclaw conformance [--url U] [--token-env NAME | --token-stdin] [--json] [--strict]`
#[derive(Debug, Args)]
#[command(after_help = "\
The token is never taken from argv: --token-env names an environment variable that holds it, \
--token-stdin reads it from the first line of stdin. Without --url the local gateway recorded \
in .picoclaw.pid is tested with its runtime token; with --url and neither option, the \
configured credentials are used (pico token, else gateway token).

Exit codes: 0 every core (Pico v1) check passed (with --strict: every check); 1 a check failed; \
2 usage error or no usable target/token.")]
pub struct ConformanceArgs {
    /// The server's Pico socket (`ws://`, `wss://`; `http(s)://host:port` means `/pico/ws`);
    /// default: the local gateway.
    #[arg(long)]
    pub url: Option<String>,
    /// The environment variable holding the token to present.
    #[arg(long, value_name = "NAME", conflicts_with = "token_stdin")]
    pub token_env: Option<String>,
    /// Read the token from the first line of stdin.
    #[arg(long)]
    pub token_stdin: bool,
    /// Seconds one step (a handshake, an awaited frame) may take.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
    /// Fail unless the protocol-2 extensions pass too.
    #[arg(long)]
    pub strict: bool,
}

/// Accepts Go-style single-dash long flags from upstream PicoClaw docs (`-console`,
/// `-port 18800`) by rewriting them to `--console`, `--port`.
pub fn normalize_args(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    const LONG: &[&str] = &["-console", "-port", "-host", "-public", "-no-browser"];
    args.into_iter()
        .map(|arg| match arg.to_str() {
            Some(s) if LONG.iter().any(|l| s == *l || s.starts_with(&format!("{l}="))) => {
                OsString::from(format!("-{s}"))
            }
            _ => arg,
        })
        .collect()
}

/// Which service manager a `picoclaw service` command targets (default: this OS's).
#[derive(Debug, Clone, Copy, Default, Args)]
pub struct ManagerArgs {
    /// A systemd user unit (~/.config/systemd/user/picoclaw-gateway.service).
    #[arg(long, conflicts_with = "launchd")]
    pub systemd: bool,
    /// A launchd agent (~/Library/LaunchAgents/io.picoclaw.gateway.plist); renders on any OS.
    #[arg(long)]
    pub launchd: bool,
}

/// `picoclaw service ...`
#[derive(Debug, Subcommand)]
pub enum ServiceCommand {
    /// Write the unit (no secret in it, ever) and reload the user's service manager.
    Install {
        /// The service manager.
        #[command(flatten)]
        manager: ManagerArgs,
        /// Replace a unit at the same path that picoclaw did not write.
        #[arg(long)]
        force: bool,
        /// The picoclaw binary the unit starts. Default: this one; when this one is in a
        /// cargo build directory (target/), the installed `picoclaw` on PATH (e.g.
        /// ~/.cargo/bin/picoclaw from `cargo install --path crates/cli`), else this one
        /// with a warning.
        #[arg(long, value_name = "PATH")]
        binary: Option<PathBuf>,
        /// Hand the gateway its secrets as systemd credentials: one `LoadCredential=` per
        /// file found in $PICOCLAW_HOME/credentials/ (picoclaw-gateway-token,
        /// picoclaw-pico-token, picoclaw-pico-client-token, picoclaw-api-key). The unit holds
        /// the paths, never a value.
        #[arg(long, conflicts_with = "launchd")]
        credentials: bool,
    },
    /// Stop and disable the service, and remove the unit.
    Uninstall {
        /// The service manager.
        #[command(flatten)]
        manager: ManagerArgs,
        /// Remove a unit at the same path that picoclaw did not write.
        #[arg(long)]
        force: bool,
    },
    /// The unit's path, whether it embeds secrets, and the gateway's state.
    #[command(
        after_help = "Exit status: 0 installed and clean; 1 installed but embeds a secret; 3 not installed."
    )]
    Status {
        /// The service manager.
        #[command(flatten)]
        manager: ManagerArgs,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Find units (ours or hand-written) that embed a picoclaw token.
    #[command(after_help = "Exit status: 0 no unit embeds a token; 1 at least one does.")]
    Audit {
        /// Unit or plist files to audit besides the ones found in the user's directories.
        paths: Vec<std::path::PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `picoclaw doctor [--fix] [--json]`
#[derive(Debug, Clone, Copy, Args)]
#[command(after_help = "Exit status: 0 no problem remains (notes may be shown); 1 problems remain.")]
pub struct DoctorArgs {
    /// Apply the safe fixes (idempotent), then check again.
    #[arg(long)]
    pub fix: bool,
    /// Print JSON: {findings: [{code, severity, message, fix, fixed}], problems_remaining}.
    #[arg(long)]
    pub json: bool,
}
