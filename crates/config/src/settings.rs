//! Typed, non-secret settings, each value with the source that won.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::error::ConfigError;
use crate::layers::Layers;
use crate::schema::{self, Key};
use crate::secret_url::PicoClientUrl;
use crate::source::Source;
use crate::values::{BasePath, Cidrs, Host, LogLevel};

/// The winning value of one key, and every lower source that set a *different* value.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The value (a JSON value; secrets are never resolved here).
    pub value: Value,
    /// Where it came from.
    pub source: Source,
    /// Lower-precedence sources holding a different value (names only).
    pub shadowed: Vec<Source>,
}

/// Resolves one key through the layers: the highest source wins; lower sources with a
/// different value are reported as shadowed. Used for every key, secret or not (the
/// credentials crate wraps secret values before anyone sees them).
pub fn resolve(layers: &Layers, key: &Key) -> Option<Resolution> {
    let mut candidates = layers
        .candidates(key)
        .into_iter()
        // `.security.yml` `model_list` is the map of model keys (model_name → api_keys),
        // not the model list: it must not shadow config.json's array.
        .filter(|c| key.kind != schema::Kind::ModelList || c.value.is_array());
    let winner = candidates.next()?;
    let shadowed = candidates
        .filter(|c| c.source != Source::Default && c.value != winner.value)
        .map(|c| c.source)
        .collect();
    Some(Resolution { value: winner.value.clone(), source: winner.source, shadowed })
}

/// A byte bound as `usize` (saturating on 32-bit targets).
fn bytes(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// Gateway server settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySettings {
    /// Bind address (`localhost` = loopback).
    pub host: Host,
    /// Port (0 = any free port; the real one is recorded in `.picoclaw.pid`).
    pub port: u16,
    /// Log level.
    pub log_level: LogLevel,
    /// Watch files and apply valid changes.
    pub hot_reload: bool,
    /// Drain bound on shutdown.
    pub shutdown_timeout: Duration,
    /// How long the old value of a secret file (`_FILE`, `$CREDENTIALS_DIRECTORY`) stays
    /// valid after the file changed.
    pub rotation_grace: Duration,
    /// Peers whose `X-Forwarded-For` is believed (rate limits count the real client).
    pub trusted_proxies: Cidrs,
    /// A prefix every endpoint is also served under (beside the root).
    pub base_path: BasePath,
}

/// The Pico channel (`channels.pico`).
#[derive(Debug, Clone, PartialEq)]
pub struct PicoSettings {
    /// Channel on.
    pub enabled: bool,
    /// Accept `?token=`.
    pub allow_token_query: bool,
    /// Allowed Origins; empty = any.
    pub allow_origins: Vec<String>,
    /// WebSocket ping period.
    pub ping_interval: Duration,
    /// Idle read limit.
    pub read_timeout: Duration,
    /// Bound on every single write.
    pub write_timeout: Duration,
    /// Concurrent sockets.
    pub max_connections: usize,
    /// Largest frame in bytes.
    pub max_frame_bytes: usize,
    /// Frames queued per socket.
    pub send_queue: usize,
    /// Bytes queued per socket.
    pub send_queue_bytes: usize,
    /// Bytes queued on all sockets together.
    pub send_queue_total_bytes: usize,
}

/// The outbound Pico client (`channels.pico_client`).
#[derive(Debug, Clone, PartialEq)]
pub struct PicoClientSettings {
    /// Channel on (then `url` is set: an enabled client without a URL is refused).
    pub enabled: bool,
    /// Remote `ws://` or `wss://` URL, without any userinfo (a credential, resolved by the
    /// credentials crate).
    pub url: Option<PicoClientUrl>,
    /// Fixed remote session id.
    pub session_id: Option<String>,
    /// Ping period.
    pub ping_interval: Duration,
    /// Idle read limit.
    pub read_timeout: Duration,
}

/// `agents.defaults`.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentSettings {
    /// `model_name` of the model answering chats; `None` = built-in echo agent. When set,
    /// it names an entry of `model_list`.
    pub default_model: Option<String>,
    /// Most recent messages per session kept in memory and sent to the model.
    pub history_messages: usize,
    /// Upper bound on the bytes of that history (fixed: 256 KiB).
    pub history_bytes: usize,
    /// First-byte and idle-gap limit for the model provider.
    pub provider_timeout: Duration,
    /// Chat messages one credential may send per minute.
    pub messages_per_minute: usize,
}

/// `storage.*`: where the session history lives and its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageSettings {
    /// A PostgreSQL database shared by several replicas; `None` = SQLite in the home.
    pub url: Option<crate::StorageUrl>,
    /// Text bytes kept per session (older messages are dropped past it).
    pub max_session_bytes: u64,
    /// Text bytes kept in all (new turns are refused past it).
    pub max_total_bytes: u64,
}

/// One `model_list` entry (its API key is resolved by the credentials crate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    /// The name other keys refer to.
    pub model_name: String,
    /// The model id sent to the API: `model` without an upstream provider prefix
    /// (`openai/gpt-5.4` → `gpt-5.4`; see [`crate::providers::resolve`]).
    pub model: String,
    /// Upstream's provider id: the `provider` field, a known prefix of `model`, or `openai`.
    pub provider: &'static str,
    /// Base URL of the OpenAI-compatible API: `api_base`, else the provider's default
    /// (`https://api.openai.com/v1` for `openai`); empty for a provider without one.
    pub api_base: String,
}

/// The dashboard (`launcher-config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct LauncherSettings {
    /// Bind address.
    pub host: Host,
    /// Port.
    pub port: u16,
    /// Bind all interfaces.
    pub public: bool,
    /// Allowed client networks; empty = any.
    pub allowed_cidrs: Cidrs,
    /// Proxies whose forwarding headers are trusted.
    pub trusted_proxies: Cidrs,
    /// Loopback clients pass `allowed_cidrs` (upstream's `allow_localhost_bypass`).
    pub allow_localhost_bypass: bool,
    /// The path prefix every page, asset, API call, cookie and socket is under.
    pub base_path: BasePath,
}

/// Every non-secret setting, typed, with provenance.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `gateway.*`.
    pub gateway: GatewaySettings,
    /// `channels.pico.*`.
    pub pico: PicoSettings,
    /// `channels.pico_client.*`.
    pub pico_client: PicoClientSettings,
    /// `agents.defaults.*`.
    pub agents: AgentSettings,
    /// `model_list`.
    pub models: Vec<ModelEntry>,
    /// `launcher-config.json`.
    pub launcher: LauncherSettings,
    /// `storage.*`.
    pub storage: StorageSettings,
    resolved: BTreeMap<&'static str, Resolution>,
}

impl Settings {
    /// Resolves every non-secret key into its type. A value that does not parse (a flag,
    /// or a combination such as an enabled pico_client without a URL) is an error naming
    /// the key, where the value came from and what was expected.
    pub fn resolve(layers: &Layers) -> Result<Settings, ConfigError> {
        let mut resolved: BTreeMap<_, _> = schema::KEYS
            .iter()
            .filter(|k| !k.is_secret())
            .filter_map(|k| Some((k.path, resolve(layers, k)?)))
            .collect();
        // model_list entries may carry api_key(s) in config.json; those are secrets and are
        // resolved by the credentials crate only, so they never enter the settings.
        if let Some(Value::Array(models)) = resolved.get_mut(schema::MODEL_LIST.path).map(|r| &mut r.value) {
            for entry in models.iter_mut().filter_map(Value::as_object_mut) {
                entry.remove("api_key");
                entry.remove("api_keys");
            }
        }
        let r = Reader { resolved: &resolved };
        // A password in channels.pico_client.url is a secret: the settings keep the URL
        // without it, and every display of the resolved value shows it as `***`.
        let pico_client_url = r.url(&schema::CHANNELS_PICO_CLIENT_URL)?;
        let pico_client_enabled = r.bool(&schema::CHANNELS_PICO_CLIENT_ENABLED)?;
        if pico_client_enabled && pico_client_url.is_none() {
            return Err(r.invalid(
                &schema::CHANNELS_PICO_CLIENT_ENABLED,
                "pico_client is enabled but channels.pico_client.url is not set".into(),
            ));
        }
        let models = r.models()?;
        // Empty means unset (upstream writes `"model_name": ""` until a model is chosen).
        let default_model = r.string(&schema::AGENTS_DEFAULTS_MODEL)?.filter(|m| !m.trim().is_empty());
        if let Some(model) = &default_model
            && !models.iter().any(|m| &m.model_name == model)
        {
            let known: Vec<_> = models.iter().map(|m| m.model_name.as_str()).collect();
            return Err(r.invalid(
                &schema::AGENTS_DEFAULTS_MODEL,
                format!(
                    "names model {model:?}, which is not in model_list (known: {})",
                    if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                ),
            ));
        }
        if let Some(name) = &default_model
            && let Some(entry) = models.iter().find(|m| &m.model_name == name)
            && !crate::providers::find(entry.provider).is_some_and(|p| p.openai_compatible)
        {
            return Err(r.invalid(
                &schema::AGENTS_DEFAULTS_MODEL,
                format!(
                    "names model {name:?}, whose provider is {:?}: picoclaw speaks only OpenAI-compatible chat completions; give that model_list entry an OpenAI-compatible api_base and \"provider\": \"openai\", or choose another model",
                    entry.provider
                ),
            ));
        }
        let settings = Settings {
            gateway: GatewaySettings {
                host: r.host(&schema::GATEWAY_HOST)?,
                port: r.port(&schema::GATEWAY_PORT)?,
                log_level: r.log_level(&schema::GATEWAY_LOG_LEVEL)?,
                hot_reload: r.bool(&schema::GATEWAY_HOT_RELOAD)?,
                shutdown_timeout: r.secs(&schema::GATEWAY_SHUTDOWN_TIMEOUT)?,
                rotation_grace: r.secs(&schema::GATEWAY_ROTATION_GRACE)?,
                trusted_proxies: r.cidrs(&schema::GATEWAY_TRUSTED_PROXIES)?,
                base_path: r.base_path(&schema::GATEWAY_BASE_PATH)?,
            },
            pico: PicoSettings {
                enabled: r.bool(&schema::CHANNELS_PICO_ENABLED)?,
                allow_token_query: r.bool(&schema::CHANNELS_PICO_ALLOW_TOKEN_QUERY)?,
                allow_origins: r.origins(&schema::CHANNELS_PICO_ALLOW_ORIGINS)?,
                ping_interval: r.secs(&schema::CHANNELS_PICO_PING_INTERVAL)?,
                read_timeout: r.secs(&schema::CHANNELS_PICO_READ_TIMEOUT)?,
                write_timeout: r.secs(&schema::CHANNELS_PICO_WRITE_TIMEOUT)?,
                max_connections: r.count(&schema::CHANNELS_PICO_MAX_CONNECTIONS)?,
                max_frame_bytes: r.count(&schema::CHANNELS_PICO_MAX_FRAME_BYTES)?,
                send_queue: r.count(&schema::CHANNELS_PICO_SEND_QUEUE)?,
                send_queue_bytes: bytes(r.u64_in(&schema::CHANNELS_PICO_SEND_QUEUE_BYTES, 1..=1 << 50)?),
                send_queue_total_bytes: bytes(
                    r.u64_in(&schema::CHANNELS_PICO_SEND_QUEUE_TOTAL_BYTES, 1..=1 << 50)?,
                ),
            },
            pico_client: PicoClientSettings {
                enabled: pico_client_enabled,
                url: pico_client_url,
                session_id: r.string(&schema::CHANNELS_PICO_CLIENT_SESSION_ID)?,
                ping_interval: r.secs(&schema::CHANNELS_PICO_CLIENT_PING_INTERVAL)?,
                read_timeout: r.secs(&schema::CHANNELS_PICO_CLIENT_READ_TIMEOUT)?,
            },
            agents: AgentSettings {
                default_model,
                history_messages: r.count(&schema::AGENTS_DEFAULTS_HISTORY_MESSAGES)?,
                history_bytes: 256 * 1024,
                provider_timeout: r.secs(&schema::AGENTS_DEFAULTS_PROVIDER_TIMEOUT)?,
                messages_per_minute: r.count(&schema::AGENTS_DEFAULTS_MESSAGES_PER_MINUTE)?,
            },
            storage: StorageSettings {
                url: r.storage_url(&schema::STORAGE_URL)?,
                max_session_bytes: r.u64_in(&schema::STORAGE_MAX_SESSION_BYTES, 1..=1 << 50)?,
                max_total_bytes: r.u64_in(&schema::STORAGE_MAX_TOTAL_BYTES, 1..=1 << 50)?,
            },
            models,
            launcher: LauncherSettings {
                host: r.host(&schema::LAUNCHER_HOST)?,
                port: r.port(&schema::LAUNCHER_PORT)?,
                public: r.bool(&schema::LAUNCHER_PUBLIC)?,
                allowed_cidrs: r.cidrs(&schema::LAUNCHER_ALLOWED_CIDRS)?,
                trusted_proxies: r.cidrs(&schema::LAUNCHER_TRUSTED_PROXIES)?,
                allow_localhost_bypass: r.bool(&schema::LAUNCHER_ALLOW_LOCALHOST_BYPASS)?,
                base_path: r.base_path(&schema::LAUNCHER_BASE_PATH)?,
            },
            resolved: BTreeMap::new(),
        };
        let mut settings = settings;
        if let Some(url) =
            settings.pico_client.url.as_ref().filter(|u| u.has_userinfo() || u.has_secret_query())
            && let Some(r) = resolved.get_mut(schema::CHANNELS_PICO_CLIENT_URL.path)
        {
            r.value = Value::from(url.shown());
        }
        settings.resolved = resolved;
        Ok(settings)
    }

    /// Where the value of `key` came from (`None` for unset keys without default).
    pub fn origin(&self, key: &Key) -> Option<&Source> {
        self.resolved.get(key.path).map(|r| &r.source)
    }

    /// Every resolved non-secret key with its value, source and shadowed sources.
    pub fn entries(&self) -> impl Iterator<Item = (&'static str, &Resolution)> {
        self.resolved.iter().map(|(k, r)| (*k, r))
    }

    /// The model entry `agents.defaults.model` names, if any.
    pub fn default_model(&self) -> Option<&ModelEntry> {
        let name = self.agents.default_model.as_ref()?;
        self.models.iter().find(|m| &m.model_name == name)
    }
}

/// Reads typed values out of the resolved keys. File and environment values were checked
/// against their kind when parsed, flags were typed by the argument parser; a value that
/// still does not fit (a flag given a bad host, say) is an error, never a silent default.
struct Reader<'a> {
    resolved: &'a BTreeMap<&'static str, Resolution>,
}

impl Reader<'_> {
    fn value(&self, key: &Key) -> Option<&Resolution> {
        self.resolved.get(key.path)
    }

    fn invalid(&self, key: &Key, message: String) -> ConfigError {
        let origin = self.value(key).map(|r| r.source.to_string()).unwrap_or_else(|| "default".into());
        ConfigError::Invalid { key: key.path, origin, message }
    }

    fn expected(&self, key: &Key) -> ConfigError {
        self.invalid(key, format!("expected {}", key.kind.expected()))
    }

    fn string(&self, key: &Key) -> Result<Option<String>, ConfigError> {
        match self.value(key).map(|r| &r.value) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.expected(key)),
        }
    }

    fn required_str(&self, key: &Key) -> Result<String, ConfigError> {
        self.string(key)?.ok_or_else(|| self.expected(key))
    }

    fn bool(&self, key: &Key) -> Result<bool, ConfigError> {
        match self.value(key).map(|r| &r.value) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.expected(key)),
        }
    }

    fn u64_in(&self, key: &Key, range: std::ops::RangeInclusive<u64>) -> Result<u64, ConfigError> {
        let n = self.value(key).and_then(|r| r.value.as_u64()).ok_or_else(|| self.expected(key))?;
        if range.contains(&n) { Ok(n) } else { Err(self.expected(key)) }
    }

    fn port(&self, key: &Key) -> Result<u16, ConfigError> {
        let n = self.u64_in(key, 0..=u64::from(u16::MAX))?;
        u16::try_from(n).map_err(|_| self.expected(key))
    }

    fn secs(&self, key: &Key) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.u64_in(key, 1..=86_400)?))
    }

    fn count(&self, key: &Key) -> Result<usize, ConfigError> {
        let n = self.u64_in(key, 1..=1 << 30)?;
        usize::try_from(n).map_err(|_| self.expected(key))
    }

    fn list(&self, key: &Key) -> Result<Vec<String>, ConfigError> {
        match self.value(key).map(|r| &r.value) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_owned).ok_or_else(|| self.expected(key)))
                .collect(),
            Some(_) => Err(self.expected(key)),
        }
    }

    fn origins(&self, key: &Key) -> Result<Vec<String>, ConfigError> {
        let list = self.list(key)?;
        for entry in &list {
            if let Err(why) = crate::origin::check_pattern(entry) {
                // An origin is not a secret: name it.
                return Err(self.invalid(
                    key,
                    format!(
                        "the entry {entry:?} is not an origin pattern: {why}; expected {}",
                        crate::origin::EXPECTED
                    ),
                ));
            }
        }
        Ok(list)
    }

    fn host(&self, key: &Key) -> Result<Host, ConfigError> {
        Host::parse(&self.required_str(key)?).map_err(|_| self.expected(key))
    }

    fn base_path(&self, key: &Key) -> Result<BasePath, ConfigError> {
        let raw = self.string(key)?.unwrap_or_default();
        BasePath::parse(&raw)
            .map_err(|why| self.invalid(key, format!("{why}: expected {}", key.kind.expected())))
    }

    fn log_level(&self, key: &Key) -> Result<LogLevel, ConfigError> {
        LogLevel::parse(&self.required_str(key)?).ok_or_else(|| self.expected(key))
    }

    fn cidrs(&self, key: &Key) -> Result<Cidrs, ConfigError> {
        let list = self.list(key)?;
        Cidrs::parse(list.iter().map(String::as_str)).map_err(|entry| {
            self.invalid(key, format!("{entry:?} is not a network: expected {}", key.kind.expected()))
        })
    }

    fn url(&self, key: &Key) -> Result<Option<PicoClientUrl>, ConfigError> {
        match self.string(key)? {
            None => Ok(None),
            Some(raw) if raw.trim().is_empty() => Ok(None),
            Some(raw) => PicoClientUrl::parse(&raw).map(Some).map_err(|_| self.expected(key)),
        }
    }

    fn storage_url(&self, key: &Key) -> Result<Option<crate::StorageUrl>, ConfigError> {
        match self.string(key)? {
            None => Ok(None),
            Some(raw) if raw.trim().is_empty() => Ok(None),
            Some(raw) => {
                crate::StorageUrl::parse(raw.trim()).map(Some).map_err(|why| self.invalid(key, why.0))
            }
        }
    }

    fn models(&self) -> Result<Vec<ModelEntry>, ConfigError> {
        let key = &schema::MODEL_LIST;
        let Some(list) = self.value(key).and_then(|r| r.value.as_array()) else {
            return Ok(Vec::new());
        };
        let mut names = std::collections::BTreeSet::new();
        let mut out = Vec::new();
        for (i, m) in list.iter().enumerate() {
            let field = |f: &str| m.get(f).and_then(Value::as_str).map(str::to_owned);
            let (Some(model_name), Some(model)) = (field("model_name"), field("model")) else {
                return Err(
                    self.invalid(key, format!("entry {i} needs \"model_name\" and \"model\" strings"))
                );
            };
            if !names.insert(model_name.clone()) {
                return Err(self.invalid(key, format!("model_name {model_name:?} appears twice")));
            }
            let reference = crate::providers::resolve(&model, field("provider").as_deref()).map_err(|unknown| {
                self.invalid(
                    key,
                    format!(
                        "entry {i} ({model_name:?}) names provider {:?}, which upstream PicoClaw does not know either (e.g. \"openai\", \"openrouter\", \"ollama\")",
                        unknown.0
                    ),
                )
            })?;
            let api_base = field("api_base").unwrap_or_else(|| {
                crate::providers::find(reference.provider)
                    .and_then(|p| p.default_api_base)
                    .unwrap_or_default()
                    .to_owned()
            });
            out.push(ModelEntry {
                model_name,
                model: reference.model_id,
                provider: reference.provider,
                api_base,
            });
        }
        Ok(out)
    }
}
