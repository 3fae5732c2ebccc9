//! Typed, non-secret settings, each value with the source that won.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::error::ConfigError;
use crate::layers::Layers;
use crate::schema::{self, Key};
use crate::secret_url::PicoClientUrl;
use crate::source::Source;

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

/// Gateway server settings.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewaySettings {
    /// Bind address (`localhost` = loopback).
    pub host: String,
    /// Port (0 = any free port; the real one is recorded in `.picoclaw.pid`).
    pub port: u16,
    /// Log level.
    pub log_level: String,
    /// Watch files and apply valid changes.
    pub hot_reload: bool,
    /// Drain bound on shutdown.
    pub shutdown_timeout: Duration,
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
}

/// The outbound Pico client (`channels.pico_client`).
#[derive(Debug, Clone, PartialEq)]
pub struct PicoClientSettings {
    /// Channel on.
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
    /// `model_name` of the model answering chats; `None` = built-in echo agent.
    pub default_model: Option<String>,
    /// Most recent messages per session kept in memory and sent to the model.
    pub history_messages: usize,
    /// Upper bound on the bytes of that history (fixed: 256 KiB).
    pub history_bytes: usize,
    /// First-byte and idle-gap limit for the model provider.
    pub provider_timeout: Duration,
}

/// One `model_list` entry (its API key is resolved by the credentials crate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    /// The name other keys refer to.
    pub model_name: String,
    /// The provider's model id.
    pub model: String,
    /// Base URL of the OpenAI-compatible API (default `https://api.openai.com/v1`).
    pub api_base: String,
}

/// The dashboard (`launcher-config.json`).
#[derive(Debug, Clone, PartialEq)]
pub struct LauncherSettings {
    /// Bind address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Bind all interfaces.
    pub public: bool,
    /// Allowed client networks; empty = any.
    pub allowed_cidrs: Vec<String>,
    /// Proxies whose forwarding headers are trusted.
    pub trusted_proxies: Vec<String>,
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
    resolved: BTreeMap<&'static str, Resolution>,
}

const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

impl Settings {
    /// Resolves every non-secret key and checks the combinations that cannot work.
    pub fn resolve(layers: &Layers) -> Result<Settings, ConfigError> {
        let mut resolved: BTreeMap<_, _> = schema::KEYS
            .iter()
            .filter(|k| !k.is_secret())
            .filter_map(|k| Some((k.path, resolve(layers, k)?)))
            .collect();
        // model_list entries may carry api_key(s) in config.json; those are secrets and are
        // resolved by the credentials crate only, so they never enter the settings.
        if let Some(Value::Array(models)) = resolved.get_mut("model_list").map(|r| &mut r.value) {
            for entry in models.iter_mut().filter_map(Value::as_object_mut) {
                entry.remove("api_key");
                entry.remove("api_keys");
            }
        }
        // A password in channels.pico_client.url is a secret: the settings keep the URL
        // without it, and every display of the resolved value shows it as `***`.
        let pico_client_url =
            resolved.get("channels.pico_client.url").and_then(|r| r.value.as_str()).map(PicoClientUrl::parse);
        if let Some(url) = pico_client_url.as_ref().filter(|u| u.has_userinfo())
            && let Some(r) = resolved.get_mut("channels.pico_client.url")
        {
            r.value = Value::from(url.shown());
        }
        let r = Reader { resolved: &resolved };
        let settings = Settings {
            gateway: GatewaySettings {
                host: r.string("gateway.host").unwrap_or_default(),
                port: r.port("gateway.port"),
                log_level: r.string("gateway.log_level").unwrap_or_default(),
                hot_reload: r.bool("gateway.hot_reload"),
                shutdown_timeout: r.secs("gateway.shutdown_timeout"),
            },
            pico: PicoSettings {
                enabled: r.bool("channels.pico.enabled"),
                allow_token_query: r.bool("channels.pico.allow_token_query"),
                allow_origins: r.list("channels.pico.allow_origins"),
                ping_interval: r.secs("channels.pico.ping_interval"),
                read_timeout: r.secs("channels.pico.read_timeout"),
                write_timeout: r.secs("channels.pico.write_timeout"),
                max_connections: r.count("channels.pico.max_connections"),
                max_frame_bytes: r.count("channels.pico.max_frame_bytes"),
                send_queue: r.count("channels.pico.send_queue"),
            },
            pico_client: PicoClientSettings {
                enabled: r.bool("channels.pico_client.enabled"),
                url: pico_client_url,
                session_id: r.string("channels.pico_client.session_id"),
                ping_interval: r.secs("channels.pico_client.ping_interval"),
                read_timeout: r.secs("channels.pico_client.read_timeout"),
            },
            agents: AgentSettings {
                default_model: r.string("agents.defaults.model"),
                history_messages: r.count("agents.defaults.history_messages"),
                history_bytes: 256 * 1024,
                provider_timeout: r.secs("agents.defaults.provider_timeout"),
            },
            models: r.models(),
            launcher: LauncherSettings {
                host: r.string("launcher.host").unwrap_or_default(),
                port: r.port("launcher.port"),
                public: r.bool("launcher.public"),
                allowed_cidrs: r.list("launcher.allowed_cidrs"),
                trusted_proxies: r.list("launcher.trusted_proxies"),
            },
            resolved,
        };
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            key,
            origin: self.origin(key).map(ToString::to_string).unwrap_or_default(),
            message,
        };
        if !LOG_LEVELS.contains(&self.gateway.log_level.as_str()) {
            return Err(invalid("gateway.log_level", format!("expected one of {}", LOG_LEVELS.join(", "))));
        }
        if self.gateway.host.trim().is_empty() {
            return Err(invalid(
                "gateway.host",
                "expected a host name or address, found an empty string".into(),
            ));
        }
        if self.pico_client.enabled {
            match &self.pico_client.url {
                None => {
                    return Err(invalid(
                        "channels.pico_client.enabled",
                        "pico_client is enabled but channels.pico_client.url is not set".into(),
                    ));
                }
                Some(url) if !(url.dial().starts_with("ws://") || url.dial().starts_with("wss://")) => {
                    return Err(invalid("channels.pico_client.url", "expected a ws:// or wss:// URL".into()));
                }
                Some(_) => {}
            }
        }
        if let Some(model) = &self.agents.default_model
            && !self.models.iter().any(|m| &m.model_name == model)
        {
            {
                let known: Vec<_> = self.models.iter().map(|m| m.model_name.as_str()).collect();
                return Err(invalid(
                    "agents.defaults.model",
                    format!(
                        "names model {model:?}, which is not in model_list (known: {})",
                        if known.is_empty() { "none".to_owned() } else { known.join(", ") }
                    ),
                ));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for m in &self.models {
            if !names.insert(&m.model_name) {
                return Err(invalid("model_list", format!("model_name {:?} appears twice", m.model_name)));
            }
        }
        Ok(())
    }

    /// Where the value of `key` came from (`None` for unset keys without default).
    pub fn origin(&self, key: &str) -> Option<&Source> {
        self.resolved.get(key).map(|r| &r.source)
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

struct Reader<'a> {
    resolved: &'a BTreeMap<&'static str, Resolution>,
}

// Values were type-checked when parsed (files, env) or typed by clap (flags), so the
// fallbacks below are unreachable in practice; they keep malformed state from panicking.
impl Reader<'_> {
    fn value(&self, key: &str) -> Option<&Value> {
        self.resolved.get(key).map(|r| &r.value)
    }
    fn string(&self, key: &str) -> Option<String> {
        self.value(key)?.as_str().map(str::to_owned)
    }
    fn bool(&self, key: &str) -> bool {
        self.value(key).and_then(Value::as_bool).unwrap_or(false)
    }
    fn u64(&self, key: &str) -> u64 {
        self.value(key).and_then(Value::as_u64).unwrap_or(0)
    }
    fn port(&self, key: &str) -> u16 {
        u16::try_from(self.u64(key)).unwrap_or(0)
    }
    fn secs(&self, key: &str) -> Duration {
        Duration::from_secs(self.u64(key).max(1))
    }
    fn count(&self, key: &str) -> usize {
        usize::try_from(self.u64(key)).unwrap_or(usize::MAX).max(1)
    }
    fn list(&self, key: &str) -> Vec<String> {
        self.value(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
            .unwrap_or_default()
    }
    fn models(&self) -> Vec<ModelEntry> {
        let Some(list) = self.value("model_list").and_then(Value::as_array) else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|m| {
                let field = |f: &str| m.get(f).and_then(Value::as_str).map(str::to_owned);
                Some(ModelEntry {
                    model_name: field("model_name")?,
                    model: field("model")?,
                    api_base: field("api_base").unwrap_or_else(|| "https://api.openai.com/v1".to_owned()),
                })
            })
            .collect()
    }
}
