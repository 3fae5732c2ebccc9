//! Resolution of the gateway, pico, pico_client and model credentials.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use picoclaw_config::schema::{self, Key};
use picoclaw_config::{Candidate, Layers, Settings, Source, resolve, split_userinfo};
use serde_json::Value;

use crate::error::CredentialError;
use crate::secret::Secret;

/// A resolved secret with its provenance.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The value.
    pub secret: Secret,
    /// The source that won.
    pub source: Source,
    /// Lower sources that hold a *different* value (names only).
    pub shadowed: Vec<Source>,
}

/// The API key(s) of one model. The first key is used; the others are fallbacks a
/// provider may rotate to when the first is rejected.
#[derive(Debug, Clone)]
pub struct ModelCredential {
    /// Keys in order of preference (never empty).
    pub keys: Vec<Secret>,
    /// Where they came from.
    pub source: Source,
    /// Lower sources with different keys.
    pub shadowed: Vec<Source>,
}

/// "A higher source shadows a lower one with a different value": names only, no values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShadowWarning {
    /// The credential (`gateway.token`, `channels.pico.token`, ...).
    pub key: String,
    /// The source in effect.
    pub winner: Source,
    /// The source whose different value is ignored.
    pub shadowed: Source,
}

impl fmt::Display for ShadowWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} overrides a different value in {}; the {} value is ignored",
            self.key,
            self.winner,
            self.shadowed,
            self.shadowed.kind()
        )
    }
}

/// Every secret of the gateway side, resolved once with one precedence.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    gateway: Option<Resolved>,
    pico: Option<Resolved>,
    pico_client: Option<Resolved>,
    pico_client_basic: Option<Resolved>,
    storage_password: Option<Resolved>,
    models: BTreeMap<String, ModelCredential>,
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Credentials {
    /// Resolves every secret from `layers` (environment > `.security.yml` > `config.json`).
    /// `settings` supplies the model list. Empty values count as unset.
    pub fn resolve(layers: &Layers, settings: &Settings) -> Result<Credentials, CredentialError> {
        let mut files = Vec::new();
        let mut models = BTreeMap::new();
        for model in &settings.models {
            if let Some(cred) = model_credential(layers, settings, &model.model_name, &mut files)? {
                models.insert(model.model_name.clone(), cred);
            }
        }
        Ok(Credentials {
            gateway: secret_key(layers, &schema::GATEWAY_TOKEN, &mut files)?,
            pico: secret_key(layers, &schema::CHANNELS_PICO_TOKEN, &mut files)?,
            pico_client: secret_key(layers, &schema::CHANNELS_PICO_CLIENT_TOKEN, &mut files)?,
            pico_client_basic: url_userinfo(layers, &schema::CHANNELS_PICO_CLIENT_URL),
            storage_password: secret_key(layers, &schema::STORAGE_PASSWORD, &mut files)?,
            models,
            files,
            dirs: layers.secret_dirs().to_vec(),
        })
    }

    /// The secret files in effect (`PICOCLAW_<NAME>_FILE`, `$CREDENTIALS_DIRECTORY/<name>`):
    /// the gateway watches them (and their directories, for Kubernetes' `..data` swap).
    pub fn secret_files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Every directory to watch for secret files: those of the files in effect, plus
    /// `$CREDENTIALS_DIRECTORY` and each `PICOCLAW_<NAME>_FILE`'s directory even when no
    /// file there is in effect yet (a credential added later is then seen too).
    pub fn secret_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self
            .files
            .iter()
            .filter_map(|f| f.parent().map(ToOwned::to_owned))
            .chain(self.dirs.iter().cloned())
            .collect();
        dirs.sort();
        dirs.dedup();
        dirs
    }

    /// The gateway token (`PICOCLAW_GATEWAY_TOKEN` > `.security.yml` > `config.json`).
    pub fn gateway(&self) -> Option<&Resolved> {
        self.gateway.as_ref()
    }

    /// The pico token (`PICOCLAW_CHANNELS_PICO_TOKEN` > `.security.yml` > `config.json`).
    pub fn pico(&self) -> Option<&Resolved> {
        self.pico.as_ref()
    }

    /// The token `pico_client` presents to its remote server.
    pub fn pico_client(&self) -> Option<&Resolved> {
        self.pico_client.as_ref()
    }

    /// `user:password` from the userinfo of `channels.pico_client.url` (percent-decoded),
    /// which `pico_client` presents as HTTP Basic auth when no `channels.pico_client.token`
    /// is set. Its source is the URL's; the settings hold the URL without it.
    pub fn pico_client_basic(&self) -> Option<&Resolved> {
        self.pico_client_basic.as_ref()
    }

    /// The password of the `storage.url` database user (`PICOCLAW_STORAGE_PASSWORD` >
    /// `PICOCLAW_STORAGE_PASSWORD_FILE` > `.security.yml` > `config.json`).
    pub fn storage_password(&self) -> Option<&Resolved> {
        self.storage_password.as_ref()
    }

    /// The API key(s) of a model by `model_name`.
    pub fn model(&self, model_name: &str) -> Option<&ModelCredential> {
        self.models.get(model_name)
    }

    /// Every credential's shadowing, for the startup warning and `doctor`.
    pub fn shadow_warnings(&self) -> Vec<ShadowWarning> {
        let singles = [
            (schema::GATEWAY_TOKEN.path, &self.gateway),
            (schema::CHANNELS_PICO_TOKEN.path, &self.pico),
            (schema::CHANNELS_PICO_CLIENT_TOKEN.path, &self.pico_client),
            (schema::STORAGE_PASSWORD.path, &self.storage_password),
        ];
        let mut out = Vec::new();
        for (key, resolved) in singles {
            if let Some(r) = resolved {
                out.extend(r.shadowed.iter().map(|s| ShadowWarning {
                    key: key.to_owned(),
                    winner: r.source.clone(),
                    shadowed: s.clone(),
                }));
            }
        }
        for (name, m) in &self.models {
            out.extend(m.shadowed.iter().map(|s| ShadowWarning {
                key: format!("model_list.{name}.api_keys"),
                winner: m.source.clone(),
                shadowed: s.clone(),
            }));
        }
        out
    }
}

fn secret_key(
    layers: &Layers,
    key: &Key,
    files: &mut Vec<PathBuf>,
) -> Result<Option<Resolved>, CredentialError> {
    let mut candidates = layers.candidates(key).into_iter();
    let Some(winner) = candidates.next() else { return Ok(None) };
    let Some(secret) = value_of(layers, &winner, Some(files))? else { return Ok(None) };
    // A lower source that cannot be read is shown as shadowing too (it is not in effect).
    let shadowed = candidates
        .filter(|c| c.source != Source::Default)
        .filter(|c| !matches!(value_of(layers, c, None), Ok(Some(other)) if other.matches(secret.expose())))
        .map(|c| c.source)
        .collect();
    Ok(Some(Resolved { secret, source: winner.source, shadowed }))
}

/// The secret of one candidate: a secret file's content, an upstream reference followed, or
/// the value itself. `None` for a blank value. A file read is recorded in `files`.
fn value_of(
    layers: &Layers,
    candidate: &Candidate<'_>,
    files: Option<&mut Vec<PathBuf>>,
) -> Result<Option<Secret>, CredentialError> {
    let Some(value) = candidate.value.as_str().map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if candidate.source.is_secret_file() {
        let path = PathBuf::from(value);
        let secret = crate::secret_file::read(&candidate.source, &path)?;
        if let Some(files) = files {
            files.push(path);
        }
        return Ok(Some(secret));
    }
    Ok(Some(match reference(layers, value, &candidate.source)? {
        Some(followed) => followed,
        None => Secret::new(value),
    }))
}

/// Upstream PicoClaw's secret references, in a file value: `file://name` is the trimmed
/// content of `name` in config.json's directory (it must stay inside it, as upstream
/// requires); `enc://…` (upstream's passphrase + SSH-key encryption) is refused with an
/// error naming the key, never taken as the token itself. `None` for a plain value.
fn reference(layers: &Layers, value: &str, source: &Source) -> Result<Option<Secret>, CredentialError> {
    if !source.is_file() {
        return Ok(None);
    }
    let err = |message: String| CredentialError::SecretReference { origin: source.to_string(), message };
    if value.starts_with("enc://") {
        return Err(err(
            "an upstream PicoClaw enc:// (encrypted) value, which picoclaw cannot decrypt: put the plain secret in .security.yml (mode 0600) instead"
                .into(),
        ));
    }
    let Some(name) = value.strip_prefix("file://").map(str::trim) else { return Ok(None) };
    if name.is_empty() {
        return Err(err("a file:// reference without a file name".into()));
    }
    let dir = layers.paths().config_file().parent().map(std::path::Path::to_path_buf).unwrap_or_default();
    let dir =
        std::fs::canonicalize(if dir.as_os_str().is_empty() { std::path::Path::new(".") } else { &dir })
            .map_err(|e| err(format!("cannot resolve the directory of config.json: {e}")))?;
    let path = std::fs::canonicalize(dir.join(name))
        .map_err(|e| err(format!("cannot read the file:// reference {name:?}: {e}")))?;
    if !path.starts_with(&dir) {
        return Err(err(format!("the file:// reference {name:?} leaves the directory of config.json")));
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(&path)
            .map_err(|e| err(format!("cannot read the file:// reference {name:?}: {e}")))?,
    );
    let secret = text.trim();
    if secret.is_empty() {
        return Err(err(format!("the file:// reference {name:?} names an empty file")));
    }
    Ok(Some(Secret::new(secret)))
}

/// The userinfo of the URL at `path` as an HTTP Basic credential `user:password`.
fn url_userinfo(layers: &Layers, key: &Key) -> Option<Resolved> {
    let r = resolve(layers, key)?;
    let (userinfo, _) = split_userinfo(r.value.as_str()?)?;
    if userinfo.is_empty() {
        return None;
    }
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let mut basic = percent_decode(user);
    basic.push(':');
    basic.push_str(&percent_decode(password));
    // The URL's own shadowing is reported with the setting (names only); not twice.
    Some(Resolved { secret: Secret::new(basic), source: r.source, shadowed: Vec::new() })
}

/// RFC 3986 percent-decoding; a `%` not followed by two hex digits stays as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = zeroize::Zeroizing::new(Vec::with_capacity(bytes.len()));
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                // Two hex digits: at most 0xff.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn keys_of(entry: &Value) -> Vec<Secret> {
    let mut keys = Vec::new();
    if let Some(list) = entry.get("api_keys").and_then(Value::as_array) {
        keys.extend(list.iter().filter_map(Value::as_str).filter(|s| !s.trim().is_empty()).map(Secret::new));
    }
    if let Some(one) = entry.get("api_key").and_then(Value::as_str).filter(|s| !s.trim().is_empty()) {
        keys.insert(0, Secret::new(one));
    }
    keys
}

/// Model key precedence: `PICOCLAW_AGENTS_DEFAULTS_API_KEY` (default model only) >
/// `PICOCLAW_AGENTS_DEFAULTS_API_KEY_FILE` > `$CREDENTIALS_DIRECTORY/picoclaw-api-key` >
/// `.security.yml model_list.<name>` > `config.json model_list[].api_key(s)`.
fn model_credential(
    layers: &Layers,
    settings: &Settings,
    name: &str,
    files: &mut Vec<PathBuf>,
) -> Result<Option<ModelCredential>, CredentialError> {
    let mut found: Vec<(Source, Vec<Secret>)> = Vec::new();
    if settings.agents.default_model.as_deref() == Some(name)
        && let Some(candidate) = layers.candidates(&schema::AGENTS_DEFAULTS_API_KEY).into_iter().next()
        && let Some(secret) = value_of(layers, &candidate, Some(files))?
    {
        found.push((candidate.source, vec![secret]));
    }
    if let Some(entry) = layers.security_models().and_then(|m| m.get(name)) {
        let keys = keys_of(entry);
        if !keys.is_empty() {
            found.push((Source::SecurityFile(format!("model_list.{name}.api_keys")), keys));
        }
    }
    if let Some(entry) = layers
        .config_tree()
        .and_then(|c| c.get(schema::MODEL_LIST.file_key))
        .and_then(Value::as_array)
        .and_then(|list| list.iter().find(|m| m.get("model_name").and_then(Value::as_str) == Some(name)))
    {
        let keys = keys_of(entry);
        if !keys.is_empty() {
            found.push((Source::ConfigFile(format!("model_list[{name}].api_key")), keys));
        }
    }
    let mut found = found.into_iter();
    let Some((source, keys)) = found.next() else { return Ok(None) };
    let shadowed = found.filter(|(_, other)| other != &keys).map(|(s, _)| s).collect();
    Ok(Some(ModelCredential { keys, source, shadowed }))
}

#[cfg(test)]
mod tests {
    use picoclaw_config::{Flags, MapEnv, Paths};

    use super::*;

    #[test]
    fn upstream_file_references_are_followed_and_enc_is_refused() {
        use picoclaw_config::{Flags, MapEnv, Paths};
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        std::fs::write(dir.path().join("pico.key"), "from-a-file-9f2c4e6a8b0d1f3e\n").unwrap();
        let settings_for = |yaml: &str| {
            std::fs::write(paths.security_file(), yaml).unwrap();
            let layers = Layers::load(&paths, &MapEnv::new(), &Flags::new()).unwrap();
            let settings = Settings::resolve(&layers).unwrap();
            Credentials::resolve(&layers, &settings)
        };
        let creds =
            settings_for("channel_list:\n  pico:\n    settings:\n      token: file://pico.key\n").unwrap();
        assert!(creds.pico().unwrap().secret.matches("from-a-file-9f2c4e6a8b0d1f3e"));
        let err = settings_for("channels:\n  pico:\n    token: enc://AAAA\n").unwrap_err().to_string();
        assert!(err.contains(".security.yml:channels.pico.token") && err.contains("enc://"), "{err}");
        assert!(!err.contains("AAAA"), "{err}");
        let err = settings_for("channels:\n  pico:\n    token: file://../outside\n").unwrap_err().to_string();
        assert!(err.contains(".security.yml:channels.pico.token"), "{err}");
    }

    #[test]
    fn url_userinfo_is_a_basic_credential_and_never_a_setting() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"channels":{"pico_client":{"enabled":true,"url":"ws://al%69ce:s3cr%40t@127.0.0.1:9/pico"}}}"#,
        )
        .unwrap();
        let layers = Layers::load(&Paths::at(dir.path()), &MapEnv::default(), &Flags::new()).unwrap();
        let settings = Settings::resolve(&layers).unwrap();
        let creds = Credentials::resolve(&layers, &settings).unwrap();
        let basic = creds.pico_client_basic().unwrap();
        assert!(basic.secret.matches("alice:s3cr@t"));
        assert_eq!(basic.source.kind(), "config.json");
        let url = settings.pico_client.url.as_ref().unwrap();
        assert_eq!(url.dial(), "ws://127.0.0.1:9/pico");
        let everything = format!("{settings:?} {creds:?} {:?}", settings.entries().collect::<Vec<_>>());
        assert!(!everything.contains("s3cr"), "{everything}");
        assert!(everything.contains("ws://al%69ce:***@127.0.0.1:9/pico"), "{everything}");
    }

    #[test]
    fn secret_files_sit_between_env_and_security_yml_with_provenance() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path());
        std::fs::write(paths.security_file(), "channels:\n  pico:\n    token: from-yml-5e1d7c3b9a2f4e68\n")
            .unwrap();
        let creds_dir = dir.path().join("creds");
        std::fs::create_dir(&creds_dir).unwrap();
        std::fs::write(creds_dir.join("picoclaw-pico-token"), "from-credential-7a9c1e3f5b2d4e60\n").unwrap();
        let file = dir.path().join("pico.file");
        std::fs::write(&file, "from-env-file-2c4e6a8b0d1f3e5a\n").unwrap();
        let resolve_with = |env: MapEnv| {
            let layers = Layers::load(&paths, &env, &Flags::new()).map_err(|e| e.to_string())?;
            let settings = Settings::resolve(&layers).map_err(|e| e.to_string())?;
            Credentials::resolve(&layers, &settings).map_err(|e| e.to_string())
        };
        let dir_env = MapEnv::new().with("CREDENTIALS_DIRECTORY", creds_dir.to_str().unwrap());
        let creds = resolve_with(dir_env.clone()).unwrap();
        let pico = creds.pico().unwrap();
        assert!(pico.secret.matches("from-credential-7a9c1e3f5b2d4e60"));
        assert_eq!(pico.source.to_string(), "credential:picoclaw-pico-token");
        assert_eq!(pico.shadowed.len(), 1);
        assert_eq!(creds.secret_files(), [creds_dir.join("picoclaw-pico-token")]);
        let with_file = dir_env.with("PICOCLAW_CHANNELS_PICO_TOKEN_FILE", file.to_str().unwrap());
        let creds = resolve_with(with_file.clone()).unwrap();
        let pico = creds.pico().unwrap();
        assert!(pico.secret.matches("from-env-file-2c4e6a8b0d1f3e5a"));
        assert_eq!(pico.source.to_string(), "file:$PICOCLAW_CHANNELS_PICO_TOKEN_FILE");
        assert_eq!(pico.shadowed.len(), 2);
        let both =
            resolve_with(with_file.with("PICOCLAW_CHANNELS_PICO_TOKEN", "x-9f8e7d6c5b4a3210")).unwrap_err();
        assert!(
            both.contains("PICOCLAW_CHANNELS_PICO_TOKEN and PICOCLAW_CHANNELS_PICO_TOKEN_FILE"),
            "{both}"
        );
        let relative = resolve_with(MapEnv::new().with("PICOCLAW_GATEWAY_TOKEN_FILE", "token")).unwrap_err();
        assert!(relative.contains("PICOCLAW_GATEWAY_TOKEN_FILE: expected an absolute path"), "{relative}");
        // Same value in the file and in .security.yml: not a shadowing.
        std::fs::write(&file, "from-yml-5e1d7c3b9a2f4e68").unwrap();
        let env = MapEnv::new().with("PICOCLAW_CHANNELS_PICO_TOKEN_FILE", file.to_str().unwrap());
        assert!(resolve_with(env).unwrap().pico().unwrap().shadowed.is_empty());
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("a%2fb%zz%4"), "a/b%zz%4");
    }
}
