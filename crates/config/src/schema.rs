//! The one table of configuration keys.
//!
//! Every key picoclaw understands is listed here exactly once, with its type, default,
//! environment variable and command-line flag. Environment names are written out in full,
//! never derived by splitting on `_`, so `PICOCLAW_CHANNELS_PICO_CLIENT_URL` can never be
//! mistaken for a `client_url` key of `channels.pico`.

use std::fmt;

use serde_json::Value;

/// Which file a key is stored in (below the flag and environment layers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// `config.json`, overridden by `.security.yml`.
    Config,
    /// `launcher-config.json` (the dashboard's own file).
    Launcher,
}

/// The type of a key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true`/`false`; from env also `1/0/yes/no/on/off`.
    Bool,
    /// A TCP port, 0-65535 (0 = pick a free port).
    Port,
    /// A whole number of seconds (1..=86400).
    Seconds,
    /// A count or size, at least 1.
    Count,
    /// A size in bytes, at least 1 (up to 1 PiB).
    Bytes,
    /// A string.
    Str,
    /// A list of strings; from env a comma-separated list.
    StrList,
    /// A secret string. Never printed, never echoed in an error.
    Secret,
    /// The `model_list` array of model entries.
    ModelList,
    /// Where to bind or dial ([`Host`](crate::Host)).
    Host,
    /// A log level ([`LogLevel`](crate::LogLevel)).
    LogLevel,
    /// A list of networks ([`Cidrs`](crate::Cidrs)); from env a comma-separated list.
    Cidrs,
    /// A `ws://`/`wss://` URL whose userinfo is a secret
    /// ([`PicoClientUrl`](crate::PicoClientUrl)).
    WsUrl,
    /// A URL path prefix ([`BasePath`](crate::BasePath)); empty = the root.
    BasePath,
}

impl Kind {
    /// How the type is described to a user ("expected ...").
    pub fn expected(self) -> &'static str {
        match self {
            Kind::Bool => "true or false",
            Kind::Port => "an integer port between 0 and 65535",
            Kind::Seconds => "a whole number of seconds between 1 and 86400",
            Kind::Count => "a whole number of at least 1",
            Kind::Bytes => "a whole number of bytes, at least 1",
            Kind::Str => "a string",
            Kind::StrList => "a list of strings",
            Kind::Secret => "a string",
            Kind::ModelList => "a list of objects with \"model_name\", \"model\" and \"api_base\" strings",
            Kind::Host => crate::Host::EXPECTED,
            Kind::LogLevel => crate::LogLevel::EXPECTED,
            Kind::Cidrs => crate::Cidrs::EXPECTED,
            Kind::WsUrl => crate::PicoClientUrl::EXPECTED,
            Kind::BasePath => crate::BasePath::EXPECTED,
        }
    }

    /// A one-word type name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Bool => "bool",
            Kind::Port => "port",
            Kind::Seconds => "seconds",
            Kind::Count => "count",
            Kind::Bytes => "bytes",
            Kind::Str => "string",
            Kind::StrList => "list",
            Kind::Secret => "secret",
            Kind::ModelList => "models",
            Kind::Host => "host",
            Kind::LogLevel => "level",
            Kind::Cidrs => "networks",
            Kind::WsUrl => "url",
            Kind::BasePath => "path",
        }
    }

    /// Checks one string value of a string-valued kind (a list kind: one entry): `Ok` when
    /// it parses as that kind. Never echoes the value.
    pub fn check_str(self, text: &str) -> bool {
        match self {
            Kind::Host => crate::Host::parse(text).is_ok(),
            Kind::LogLevel => crate::LogLevel::parse(text).is_some(),
            Kind::Cidrs => crate::Cidrs::parse_one(text).is_some(),
            Kind::WsUrl => crate::PicoClientUrl::parse(text).is_ok(),
            Kind::BasePath => crate::BasePath::parse(text).is_ok(),
            _ => true,
        }
    }
}

/// A built-in default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Default {
    /// No default: the key is unset unless a source sets it.
    None,
    /// A boolean default.
    Bool(bool),
    /// A numeric default.
    Int(u64),
    /// A string default.
    Str(&'static str),
    /// An empty list.
    EmptyList,
}

impl Default {
    /// The default as a JSON value, or `None` when the key has no default.
    pub fn to_value(self) -> Option<Value> {
        match self {
            Default::None => None,
            Default::Bool(b) => Some(Value::Bool(b)),
            Default::Int(n) => Some(Value::from(n)),
            Default::Str(s) => Some(Value::from(s)),
            Default::EmptyList => Some(Value::Array(Vec::new())),
        }
    }
}

impl fmt::Display for Default {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Default::None => f.write_str("-"),
            Default::Bool(b) => write!(f, "{b}"),
            Default::Int(n) => write!(f, "{n}"),
            Default::Str(s) => f.write_str(s),
            Default::EmptyList => f.write_str("[]"),
        }
    }
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Dotted path, e.g. `channels.pico.allow_origins`.
    pub path: &'static str,
    /// The file the key lives in.
    pub home: Home,
    /// The key's path inside its file (differs from `path` only for launcher keys).
    pub file_key: &'static str,
    /// The environment variable, if the key has one.
    pub env: Option<&'static str>,
    /// The command-line flag, if the key has one. Secrets never have one (argv is public).
    pub flag: Option<&'static str>,
    /// The value type.
    pub kind: Kind,
    /// The built-in default.
    pub default: Default,
    /// One line for `picoclaw config env`.
    pub doc: &'static str,
    /// For a secret: the variable naming a file that holds it (`PICOCLAW_GATEWAY_TOKEN_FILE`),
    /// written out in full like `env`.
    pub env_file: Option<&'static str>,
    /// For a secret: its file name in a systemd credentials directory
    /// (`$CREDENTIALS_DIRECTORY/picoclaw-gateway-token`, `LoadCredential=`).
    pub credential: Option<&'static str>,
}

impl Key {
    /// True for tokens and API keys.
    pub fn is_secret(&self) -> bool {
        self.kind == Kind::Secret
    }

    /// The same key, readable from a file too: `env_file` names the variable holding the
    /// file's path, `credential` the file's name in `$CREDENTIALS_DIRECTORY`.
    const fn readable_from_files(self, env_file: &'static str, credential: &'static str) -> Key {
        Key { env_file: Some(env_file), credential: Some(credential), ..self }
    }
}

/// The variable systemd sets to the directory of a unit's credentials (`LoadCredential=`,
/// `SetCredential=`, `ImportCredential=`).
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// The largest secret file read (a token or API key is far smaller; a larger file is
/// refused, not truncated).
pub const SECRET_FILE_MAX_BYTES: u64 = 16 * 1024;

/// Secrets that can come from a file, as `(variable, credential name, key path)`.
pub fn secret_files() -> impl Iterator<Item = (&'static str, &'static str, &'static Key)> {
    KEYS.iter().filter_map(|k| Some((k.env_file?, k.credential?, k)))
}

const fn key(
    path: &'static str,
    env: Option<&'static str>,
    flag: Option<&'static str>,
    kind: Kind,
    default: Default,
    doc: &'static str,
) -> Key {
    Key {
        path,
        home: Home::Config,
        file_key: path,
        env,
        flag,
        kind,
        default,
        doc,
        env_file: None,
        credential: None,
    }
}

const fn launcher_key(
    path: &'static str,
    file_key: &'static str,
    env: Option<&'static str>,
    flag: Option<&'static str>,
    kind: Kind,
    default: Default,
    doc: &'static str,
) -> Key {
    Key {
        path,
        home: Home::Launcher,
        file_key,
        env,
        flag,
        kind,
        default,
        doc,
        env_file: None,
        credential: None,
    }
}

/// `gateway.host`.
pub const GATEWAY_HOST: Key = key(
    "gateway.host",
    Some("PICOCLAW_GATEWAY_HOST"),
    Some("--host"),
    Kind::Host,
    Default::Str("localhost"),
    "address the gateway binds (localhost = loopback only)",
);

/// `gateway.port`.
pub const GATEWAY_PORT: Key = key(
    "gateway.port",
    Some("PICOCLAW_GATEWAY_PORT"),
    Some("--port"),
    Kind::Port,
    Default::Int(18790),
    "port of the gateway's HTTP and WebSocket server",
);

/// `gateway.token`.
pub const GATEWAY_TOKEN: Key = key(
    "gateway.token",
    Some("PICOCLAW_GATEWAY_TOKEN"),
    None,
    Kind::Secret,
    Default::None,
    "gateway token: accepted on every gateway endpoint, including /pico/ws",
)
.readable_from_files("PICOCLAW_GATEWAY_TOKEN_FILE", "picoclaw-gateway-token");

/// `gateway.log_level`.
pub const GATEWAY_LOG_LEVEL: Key = key(
    "gateway.log_level",
    Some("PICOCLAW_LOG_LEVEL"),
    Some("--log-level"),
    Kind::LogLevel,
    Default::Str("info"),
    "log level: error, warn, info, debug or trace",
);

/// `gateway.hot_reload`.
pub const GATEWAY_HOT_RELOAD: Key = key(
    "gateway.hot_reload",
    Some("PICOCLAW_GATEWAY_HOT_RELOAD"),
    None,
    Kind::Bool,
    Default::Bool(true),
    "watch config.json and .security.yml and apply valid changes without a restart",
);

/// `gateway.shutdown_timeout`.
pub const GATEWAY_SHUTDOWN_TIMEOUT: Key = key(
    "gateway.shutdown_timeout",
    Some("PICOCLAW_GATEWAY_SHUTDOWN_TIMEOUT"),
    None,
    Kind::Seconds,
    Default::Int(10),
    "seconds to drain connections on SIGTERM before closing them",
);

/// `gateway.rotation_grace`.
pub const GATEWAY_ROTATION_GRACE: Key = key(
    "gateway.rotation_grace",
    Some("PICOCLAW_GATEWAY_ROTATION_GRACE"),
    None,
    Kind::Seconds,
    Default::Int(300),
    "seconds the old value of a secret file stays valid after the file changes (_FILE, credentials dir)",
);

/// `gateway.trusted_proxies`.
pub const GATEWAY_TRUSTED_PROXIES: Key = key(
    "gateway.trusted_proxies",
    Some("PICOCLAW_GATEWAY_TRUSTED_PROXIES"),
    None,
    Kind::Cidrs,
    Default::EmptyList,
    "proxy addresses whose X-Forwarded-For is believed (client = right-most untrusted hop)",
);

/// `gateway.base_path`.
pub const GATEWAY_BASE_PATH: Key = key(
    "gateway.base_path",
    Some("PICOCLAW_GATEWAY_BASE_PATH"),
    None,
    Kind::BasePath,
    Default::Str(""),
    "path prefix the gateway also answers under, for a proxy that forwards /prefix/pico/ws unchanged",
);

/// `channels.pico.enabled`.
pub const CHANNELS_PICO_ENABLED: Key = key(
    "channels.pico.enabled",
    Some("PICOCLAW_CHANNELS_PICO_ENABLED"),
    None,
    Kind::Bool,
    Default::Bool(false),
    "enable the Pico WebSocket channel at /pico/ws",
);

/// `channels.pico.token`.
pub const CHANNELS_PICO_TOKEN: Key = key(
    "channels.pico.token",
    Some("PICOCLAW_CHANNELS_PICO_TOKEN"),
    None,
    Kind::Secret,
    Default::None,
    "pico token: accepted on the chat endpoints (/pico/ws, /pico/media, /v1, its own history)",
)
.readable_from_files("PICOCLAW_CHANNELS_PICO_TOKEN_FILE", "picoclaw-pico-token");

/// `channels.pico.allow_token_query`.
pub const CHANNELS_PICO_ALLOW_TOKEN_QUERY: Key = key(
    "channels.pico.allow_token_query",
    Some("PICOCLAW_CHANNELS_PICO_ALLOW_TOKEN_QUERY"),
    None,
    Kind::Bool,
    Default::Bool(false),
    "accept ?token= on /pico/ws (exposes the token in URLs and logs)",
);

/// `channels.pico.allow_origins`.
pub const CHANNELS_PICO_ALLOW_ORIGINS: Key = key(
    "channels.pico.allow_origins",
    Some("PICOCLAW_CHANNELS_PICO_ALLOW_ORIGINS"),
    None,
    Kind::StrList,
    Default::EmptyList,
    "allowed browser Origins (comma list in env); empty allows all",
);

/// `channels.pico.ping_interval`.
pub const CHANNELS_PICO_PING_INTERVAL: Key = key(
    "channels.pico.ping_interval",
    Some("PICOCLAW_CHANNELS_PICO_PING_INTERVAL"),
    None,
    Kind::Seconds,
    Default::Int(30),
    "seconds between WebSocket pings",
);

/// `channels.pico.read_timeout`.
pub const CHANNELS_PICO_READ_TIMEOUT: Key = key(
    "channels.pico.read_timeout",
    Some("PICOCLAW_CHANNELS_PICO_READ_TIMEOUT"),
    None,
    Kind::Seconds,
    Default::Int(60),
    "seconds without any frame from the client before the socket is closed",
);

/// `channels.pico.write_timeout`.
pub const CHANNELS_PICO_WRITE_TIMEOUT: Key = key(
    "channels.pico.write_timeout",
    Some("PICOCLAW_CHANNELS_PICO_WRITE_TIMEOUT"),
    None,
    Kind::Seconds,
    Default::Int(60),
    "seconds any single write may take before the socket is closed",
);

/// `channels.pico.max_connections`.
pub const CHANNELS_PICO_MAX_CONNECTIONS: Key = key(
    "channels.pico.max_connections",
    Some("PICOCLAW_CHANNELS_PICO_MAX_CONNECTIONS"),
    None,
    Kind::Count,
    Default::Int(100),
    "maximum concurrent Pico sockets; more get 503",
);

/// `channels.pico.max_frame_bytes`.
pub const CHANNELS_PICO_MAX_FRAME_BYTES: Key = key(
    "channels.pico.max_frame_bytes",
    Some("PICOCLAW_CHANNELS_PICO_MAX_FRAME_BYTES"),
    None,
    Kind::Count,
    Default::Int(1_048_576),
    "largest accepted frame in bytes; larger frames close the socket with 1009",
);

/// `channels.pico.send_queue`.
pub const CHANNELS_PICO_SEND_QUEUE: Key = key(
    "channels.pico.send_queue",
    Some("PICOCLAW_CHANNELS_PICO_SEND_QUEUE"),
    None,
    Kind::Count,
    Default::Int(256),
    "frames queued per socket; a client that stops reading is closed when it fills",
);

/// `channels.pico.send_queue_bytes`.
pub const CHANNELS_PICO_SEND_QUEUE_BYTES: Key = key(
    "channels.pico.send_queue_bytes",
    Some("PICOCLAW_CHANNELS_PICO_SEND_QUEUE_BYTES"),
    None,
    Kind::Bytes,
    Default::Int(4 * 1024 * 1024),
    "bytes queued per socket (pending updates of a message coalesce); past it the socket is closed with 1008",
);

/// `channels.pico.send_queue_total_bytes`.
pub const CHANNELS_PICO_SEND_QUEUE_TOTAL_BYTES: Key = key(
    "channels.pico.send_queue_total_bytes",
    Some("PICOCLAW_CHANNELS_PICO_SEND_QUEUE_TOTAL_BYTES"),
    None,
    Kind::Bytes,
    Default::Int(64 * 1024 * 1024),
    "bytes queued on all sockets together; a lagging socket that would pass it is closed with 1008",
);

/// `channels.pico_client.enabled`.
pub const CHANNELS_PICO_CLIENT_ENABLED: Key = key(
    "channels.pico_client.enabled",
    Some("PICOCLAW_CHANNELS_PICO_CLIENT_ENABLED"),
    None,
    Kind::Bool,
    Default::Bool(false),
    "dial a remote Pico server as a client",
);

/// `channels.pico_client.url`.
pub const CHANNELS_PICO_CLIENT_URL: Key = key(
    "channels.pico_client.url",
    Some("PICOCLAW_CHANNELS_PICO_CLIENT_URL"),
    None,
    Kind::WsUrl,
    Default::None,
    "WebSocket URL of the remote Pico server, e.g. ws://host:18790/pico/ws",
);

/// `channels.pico_client.token`.
pub const CHANNELS_PICO_CLIENT_TOKEN: Key = key(
    "channels.pico_client.token",
    Some("PICOCLAW_CHANNELS_PICO_CLIENT_TOKEN"),
    None,
    Kind::Secret,
    Default::None,
    "token sent to the remote Pico server as a Bearer header",
)
.readable_from_files("PICOCLAW_CHANNELS_PICO_CLIENT_TOKEN_FILE", "picoclaw-pico-client-token");

/// `channels.pico_client.session_id`.
pub const CHANNELS_PICO_CLIENT_SESSION_ID: Key = key(
    "channels.pico_client.session_id",
    Some("PICOCLAW_CHANNELS_PICO_CLIENT_SESSION_ID"),
    None,
    Kind::Str,
    Default::None,
    "session id on the remote server (random when unset)",
);

/// `channels.pico_client.ping_interval`.
pub const CHANNELS_PICO_CLIENT_PING_INTERVAL: Key = key(
    "channels.pico_client.ping_interval",
    Some("PICOCLAW_CHANNELS_PICO_CLIENT_PING_INTERVAL"),
    None,
    Kind::Seconds,
    Default::Int(30),
    "seconds between pings to the remote server",
);

/// `channels.pico_client.read_timeout`.
pub const CHANNELS_PICO_CLIENT_READ_TIMEOUT: Key = key(
    "channels.pico_client.read_timeout",
    Some("PICOCLAW_CHANNELS_PICO_CLIENT_READ_TIMEOUT"),
    None,
    Kind::Seconds,
    Default::Int(60),
    "seconds without a frame from the remote server before reconnecting",
);

/// `agents.defaults.model`.
pub const AGENTS_DEFAULTS_MODEL: Key = key(
    "agents.defaults.model",
    Some("PICOCLAW_AGENTS_DEFAULTS_MODEL"),
    None,
    Kind::Str,
    Default::None,
    "model_name from model_list that answers chats; unset = built-in echo agent",
);

/// `agents.defaults.api_key`.
pub const AGENTS_DEFAULTS_API_KEY: Key = key(
    "agents.defaults.api_key",
    Some("PICOCLAW_AGENTS_DEFAULTS_API_KEY"),
    None,
    Kind::Secret,
    Default::None,
    "API key for the default model (overrides .security.yml model_list.<name>.api_keys)",
)
.readable_from_files("PICOCLAW_AGENTS_DEFAULTS_API_KEY_FILE", "picoclaw-api-key");

/// `agents.defaults.history_messages`.
pub const AGENTS_DEFAULTS_HISTORY_MESSAGES: Key = key(
    "agents.defaults.history_messages",
    Some("PICOCLAW_AGENTS_DEFAULTS_HISTORY_MESSAGES"),
    None,
    Kind::Count,
    Default::Int(40),
    "most recent chat messages per session kept in memory and sent to the model",
);

/// `agents.defaults.provider_timeout`.
pub const AGENTS_DEFAULTS_PROVIDER_TIMEOUT: Key = key(
    "agents.defaults.provider_timeout",
    Some("PICOCLAW_AGENTS_DEFAULTS_PROVIDER_TIMEOUT"),
    None,
    Kind::Seconds,
    Default::Int(60),
    "seconds to wait for the model provider's first byte and between streamed chunks",
);

/// `storage.max_session_bytes`.
pub const STORAGE_MAX_SESSION_BYTES: Key = key(
    "storage.max_session_bytes",
    Some("PICOCLAW_STORAGE_MAX_SESSION_BYTES"),
    None,
    Kind::Bytes,
    Default::Int(8 * 1024 * 1024),
    "history text kept per session; past it the oldest messages of the session are dropped",
);

/// `storage.max_total_bytes`.
pub const STORAGE_MAX_TOTAL_BYTES: Key = key(
    "storage.max_total_bytes",
    Some("PICOCLAW_STORAGE_MAX_TOTAL_BYTES"),
    None,
    Kind::Bytes,
    Default::Int(256 * 1024 * 1024),
    "history kept in all (text + 512 bytes per session); past it new turns and new sessions are refused with storage_full",
);

/// `storage.url`.
pub const STORAGE_URL: Key = key(
    "storage.url",
    Some("PICOCLAW_STORAGE_URL"),
    None,
    Kind::Str,
    Default::None,
    "postgres://user@host[:port]/database: sessions in PostgreSQL, shared by several gateway replicas; unset = SQLite in the home",
);

/// `storage.password`.
pub const STORAGE_PASSWORD: Key = key(
    "storage.password",
    Some("PICOCLAW_STORAGE_PASSWORD"),
    None,
    Kind::Secret,
    Default::None,
    "password of the storage.url database user (never inside the URL)",
)
.readable_from_files("PICOCLAW_STORAGE_PASSWORD_FILE", "picoclaw-storage-password");

/// `agents.defaults.messages_per_minute`.
pub const AGENTS_DEFAULTS_MESSAGES_PER_MINUTE: Key = key(
    "agents.defaults.messages_per_minute",
    Some("PICOCLAW_AGENTS_DEFAULTS_MESSAGES_PER_MINUTE"),
    None,
    Kind::Count,
    Default::Int(120),
    "chat messages one credential may send per minute; more get a rate_limited error frame",
);

/// `model_list`.
pub const MODEL_LIST: Key = key(
    "model_list",
    None,
    None,
    Kind::ModelList,
    Default::EmptyList,
    "OpenAI-compatible models: model_name, model, api_base (keys go in .security.yml)",
);

/// `launcher.host`.
pub const LAUNCHER_HOST: Key = launcher_key(
    "launcher.host",
    "host",
    Some("PICOCLAW_LAUNCHER_HOST"),
    Some("--host"),
    Kind::Host,
    Default::Str("localhost"),
    "address the dashboard binds",
);

/// `launcher.port`.
pub const LAUNCHER_PORT: Key = launcher_key(
    "launcher.port",
    "port",
    Some("PICOCLAW_LAUNCHER_PORT"),
    Some("--port"),
    Kind::Port,
    Default::Int(18800),
    "port of the dashboard",
);

/// `launcher.public`.
pub const LAUNCHER_PUBLIC: Key = launcher_key(
    "launcher.public",
    "public",
    Some("PICOCLAW_LAUNCHER_PUBLIC"),
    Some("--public"),
    Kind::Bool,
    Default::Bool(false),
    "bind the dashboard on all interfaces",
);

/// `launcher.allowed_cidrs`.
pub const LAUNCHER_ALLOWED_CIDRS: Key = launcher_key(
    "launcher.allowed_cidrs",
    "allowed_cidrs",
    Some("PICOCLAW_LAUNCHER_ALLOWED_CIDRS"),
    None,
    Kind::Cidrs,
    Default::EmptyList,
    "client networks allowed to reach the dashboard; empty allows all",
);

/// `launcher.trusted_proxies`.
pub const LAUNCHER_TRUSTED_PROXIES: Key = launcher_key(
    "launcher.trusted_proxies",
    "trusted_proxies",
    Some("PICOCLAW_LAUNCHER_TRUSTED_PROXIES"),
    None,
    Kind::Cidrs,
    Default::EmptyList,
    "proxy addresses whose X-Forwarded-For / X-Forwarded-Proto are believed",
);

/// `launcher.base_path`.
pub const LAUNCHER_BASE_PATH: Key = launcher_key(
    "launcher.base_path",
    "base_path",
    Some("PICOCLAW_LAUNCHER_BASE_PATH"),
    None,
    Kind::BasePath,
    Default::Str(""),
    "path prefix the dashboard is served under behind a proxy (/picoclaw); empty = the root",
);

/// `launcher.allow_localhost_bypass` (upstream PicoClaw's launcher key, same meaning).
pub const LAUNCHER_ALLOW_LOCALHOST_BYPASS: Key = launcher_key(
    "launcher.allow_localhost_bypass",
    "allow_localhost_bypass",
    Some("PICOCLAW_LAUNCHER_ALLOW_LOCALHOST_BYPASS"),
    None,
    Kind::Bool,
    Default::Bool(true),
    "loopback clients may use the dashboard even when allowed_cidrs does not list them",
);

/// `launcher.dashboard_password_hash` (upstream PicoClaw's key): enables password login.
pub const LAUNCHER_DASHBOARD_PASSWORD_HASH: Key = launcher_key(
    "launcher.dashboard_password_hash",
    "dashboard_password_hash",
    None,
    None,
    Kind::Secret,
    Default::None,
    "dashboard password hash (bcrypt from upstream, argon2id when set here); enables password login",
);

/// `launcher.token`.
pub const LAUNCHER_TOKEN: Key = launcher_key(
    "launcher.token",
    "launcher_token",
    Some("PICOCLAW_LAUNCHER_TOKEN"),
    None,
    Kind::Secret,
    Default::None,
    "dashboard login token (random and persisted when unset)",
)
.readable_from_files("PICOCLAW_LAUNCHER_TOKEN_FILE", "picoclaw-launcher-token");

/// `launcher.token_generated`: the fingerprint (first 8 hex of its SHA-256, not a secret)
/// of the dashboard token picoclaw generated. While it matches `launcher_token`, the token
/// is reported as `random` across restarts; `/setup` and a hand-edited token end that.
pub const LAUNCHER_TOKEN_GENERATED: Key = launcher_key(
    "launcher.token_generated",
    "launcher_token_generated",
    None,
    None,
    Kind::Str,
    Default::None,
    "fingerprint of the dashboard token picoclaw generated (reported as random while it matches)",
);

/// Every key, in display order.
pub static KEYS: &[Key] = &[
    GATEWAY_HOST,
    GATEWAY_PORT,
    GATEWAY_TOKEN,
    GATEWAY_LOG_LEVEL,
    GATEWAY_HOT_RELOAD,
    GATEWAY_SHUTDOWN_TIMEOUT,
    GATEWAY_ROTATION_GRACE,
    GATEWAY_TRUSTED_PROXIES,
    GATEWAY_BASE_PATH,
    CHANNELS_PICO_ENABLED,
    CHANNELS_PICO_TOKEN,
    CHANNELS_PICO_ALLOW_TOKEN_QUERY,
    CHANNELS_PICO_ALLOW_ORIGINS,
    CHANNELS_PICO_PING_INTERVAL,
    CHANNELS_PICO_READ_TIMEOUT,
    CHANNELS_PICO_WRITE_TIMEOUT,
    CHANNELS_PICO_MAX_CONNECTIONS,
    CHANNELS_PICO_MAX_FRAME_BYTES,
    CHANNELS_PICO_SEND_QUEUE,
    CHANNELS_PICO_SEND_QUEUE_BYTES,
    CHANNELS_PICO_SEND_QUEUE_TOTAL_BYTES,
    CHANNELS_PICO_CLIENT_ENABLED,
    CHANNELS_PICO_CLIENT_URL,
    CHANNELS_PICO_CLIENT_TOKEN,
    CHANNELS_PICO_CLIENT_SESSION_ID,
    CHANNELS_PICO_CLIENT_PING_INTERVAL,
    CHANNELS_PICO_CLIENT_READ_TIMEOUT,
    AGENTS_DEFAULTS_MODEL,
    AGENTS_DEFAULTS_API_KEY,
    AGENTS_DEFAULTS_HISTORY_MESSAGES,
    AGENTS_DEFAULTS_PROVIDER_TIMEOUT,
    AGENTS_DEFAULTS_MESSAGES_PER_MINUTE,
    STORAGE_MAX_SESSION_BYTES,
    STORAGE_MAX_TOTAL_BYTES,
    STORAGE_URL,
    STORAGE_PASSWORD,
    MODEL_LIST,
    LAUNCHER_HOST,
    LAUNCHER_PORT,
    LAUNCHER_PUBLIC,
    LAUNCHER_ALLOWED_CIDRS,
    LAUNCHER_TRUSTED_PROXIES,
    LAUNCHER_BASE_PATH,
    LAUNCHER_ALLOW_LOCALHOST_BYPASS,
    LAUNCHER_DASHBOARD_PASSWORD_HASH,
    LAUNCHER_TOKEN,
    LAUNCHER_TOKEN_GENERATED,
];

/// Variables that select files rather than keys; listed by `picoclaw config env`.
pub static PATH_VARS: &[(&str, &str, &str)] = &[
    ("PICOCLAW_HOME", "~/.picoclaw", "home directory holding every picoclaw file"),
    ("PICOCLAW_CONFIG", "$PICOCLAW_HOME/config.json", "config.json location (.security.yml sits beside it)"),
];

/// Looks a key up by its dotted path.
pub fn lookup(path: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.path == path)
}

/// Looks a key up by its environment variable.
pub fn by_env(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.env == Some(name))
}

/// Keys of one file.
pub fn keys_in(home: Home) -> impl Iterator<Item = &'static Key> {
    KEYS.iter().filter(move |k| k.home == home)
}

/// The known key closest to `unknown`, for "did you mean" hints.
pub fn closest(unknown: &str, home: Home) -> Option<&'static str> {
    keys_in(home)
        .map(|k| (strsim::jaro_winkler(unknown, k.file_key), k.file_key))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, key)| key)
}

/// Channels that upstream PicoClaw has and picoclaw does not implement; their keys are
/// ignored with a warning that says so, rather than a "did you mean".
pub static FOREIGN_CHANNELS: &[&str] = &[
    "telegram", "discord", "slack", "line", "feishu", "dingtalk", "qq", "whatsapp", "wecom", "onebot",
    "maixcam", "matrix",
];
