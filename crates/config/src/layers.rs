//! The parsed sources and the precedence between them.
//!
//! For every key the order is **flag > environment > `.security.yml` > `config.json` >
//! default** (launcher keys: flag > environment > `launcher-config.json` > default). Each
//! reader — gateway, CLI, launcher, doctor — goes through [`Layers::candidates`], so they
//! cannot disagree about which source wins.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use serde::de::DeserializeSeed;
use serde_json::{Map, Value};

use crate::env::EnvSource;
use crate::error::{ConfigError, ConfigWarning};
use crate::paths::Paths;
use crate::schema::{self, Home, Key, Kind};
use crate::seed::{Ctx, FileKind, ObjectSeed};
use crate::source::Source;
use crate::upstream::{self, UpstreamValue};

/// Values given on the command line, already typed by the argument parser.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    values: Vec<(&'static str, &'static str, Value)>,
}

impl Flags {
    /// No flags.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` from its command-line flag (`key.flag`, e.g. `--port`). Keys without a
    /// flag are ignored: no secret has one, because argv is visible to every user.
    pub fn set(&mut self, key: &Key, value: impl Into<Value>) {
        let Some(flag) = key.flag else { return };
        self.values.retain(|(k, _, _)| *k != key.path);
        self.values.push((key.path, flag, value.into()));
    }

    /// Builder form of [`Flags::set`] for optional values.
    pub fn with(mut self, key: &Key, value: Option<impl Into<Value>>) -> Self {
        if let Some(value) = value {
            self.set(key, value);
        }
        self
    }

    fn find(&self, key: &str) -> Option<(&'static str, &Value)> {
        self.values.iter().find(|(k, _, _)| *k == key).map(|(_, flag, v)| (*flag, v))
    }
}

/// One source's value for a key.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// Where it comes from.
    pub source: Source,
    /// The value (a JSON string for secrets — hand it straight to the credentials crate).
    pub value: &'a Value,
}

struct FileLayer {
    path: PathBuf,
    root: Value,
    /// Values read from upstream PicoClaw's shapes (`channel_list.pico.settings.token`).
    upstream: Vec<UpstreamValue>,
}

impl FileLayer {
    /// The value of `key` in this file and the path it was read from: our shape first,
    /// then upstream's.
    fn find(&self, key: &Key) -> Option<(&Value, String)> {
        let ours =
            lookup(&self.root, key.file_key).filter(|v| !v.is_null()).map(|v| (v, key.file_key.to_owned()));
        ours.or_else(|| {
            let found = self.upstream.iter().find(|u| u.key.path == key.path)?;
            Some((&found.value, found.path.clone()))
        })
    }
}

/// Every source, parsed and validated, ready to answer "which value wins, and from where".
pub struct Layers {
    paths: Paths,
    flags: Vec<(&'static str, Source, Value)>,
    env: Vec<(&'static str, Source, Value)>,
    security: Option<FileLayer>,
    config: Option<FileLayer>,
    launcher: Option<FileLayer>,
    defaults: Vec<(&'static str, Value)>,
    warnings: Vec<ConfigWarning>,
    /// Directories a secret file may appear in or change in: `$CREDENTIALS_DIRECTORY` and
    /// the directory of every `PICOCLAW_<NAME>_FILE` path.
    secret_dirs: Vec<PathBuf>,
}

impl std::fmt::Debug for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately prints no values: layers hold secrets.
        f.debug_struct("Layers").field("paths", &self.paths).finish_non_exhaustive()
    }
}

impl Layers {
    /// Reads and validates every source. A file that does not parse, a value of the wrong
    /// type or a bad environment variable is an error naming the file/variable and key.
    /// Missing files are simply absent layers.
    pub fn load(paths: &Paths, env: &dyn EnvSource, flags: &Flags) -> Result<Layers, ConfigError> {
        let mut warnings = Vec::new();
        let config = load_file(paths.config_file(), FileKind::ConfigJson, &mut warnings)?;
        let security = load_file(&paths.security_file(), FileKind::SecurityYml, &mut warnings)?;
        let launcher = load_file(&paths.launcher_file(), FileKind::LauncherJson, &mut warnings)?;

        let mut env_values = Vec::new();
        let credentials_dir = absolute_var(env, schema::CREDENTIALS_DIRECTORY)?;
        let mut secret_dirs: Vec<PathBuf> = credentials_dir.iter().cloned().collect();
        for key in schema::KEYS {
            let Some(name) = key.env else { continue };
            let value = match env.var(name) {
                Some(raw) => parse_env(key, name, &raw)?,
                None => None,
            };
            let file = match key.env_file {
                Some(file_var) => absolute_var(env, file_var)?.map(|path| (file_var, path)),
                None => None,
            };
            if let (Some(_), Some((file_var, _))) = (&value, &file) {
                return Err(ConfigError::EnvConflict { value: name, file: file_var });
            }
            if let Some(value) = value {
                env_values.push((key.path, Source::Env(name), value));
            }
            // File references: the value is the file's path; the credentials crate reads it.
            if let Some((file_var, path)) = file {
                secret_dirs.extend(path.parent().map(ToOwned::to_owned));
                env_values.push((key.path, Source::EnvFile(file_var), path_value(&path)));
            }
            if let (Some(dir), Some(credential)) = (&credentials_dir, key.credential) {
                let path = dir.join(credential);
                // Present while the name exists (a dangling symlink counts: reading it is
                // then an error, never a silent fall back to a lower source).
                if std::fs::symlink_metadata(&path).is_ok() {
                    env_values.push((key.path, Source::Credential(credential), path_value(&path)));
                }
            }
        }
        let flag_values = schema::KEYS
            .iter()
            .filter_map(|key| {
                let (flag, value) = flags.find(key.path)?;
                Some((key.path, Source::Flag(flag), value.clone()))
            })
            .collect();
        let defaults = schema::KEYS.iter().filter_map(|k| Some((k.path, k.default.to_value()?))).collect();
        Ok(Layers {
            paths: paths.clone(),
            flags: flag_values,
            env: env_values,
            security,
            config,
            launcher,
            defaults,
            warnings,
            secret_dirs: {
                secret_dirs.sort();
                secret_dirs.dedup();
                secret_dirs
            },
        })
    }

    /// The paths these layers were read from.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    /// Unknown keys and other non-fatal findings.
    pub fn warnings(&self) -> &[ConfigWarning] {
        &self.warnings
    }

    /// Every source that sets `key`, highest precedence first; the first one wins.
    /// Null file values, and empty secrets anywhere, count as unset.
    pub fn candidates(&self, key: &Key) -> Vec<Candidate<'_>> {
        let mut out = Vec::new();
        let layered = self.flags.iter().chain(&self.env);
        for (k, source, value) in layered {
            if *k == key.path {
                out.push(Candidate { source: source.clone(), value });
            }
        }
        type SourceOf = fn(String) -> Source;
        let files: &[(&Option<FileLayer>, SourceOf)] = match key.home {
            Home::Config => &[(&self.security, Source::SecurityFile), (&self.config, Source::ConfigFile)],
            Home::Launcher => &[(&self.launcher, Source::LauncherFile)],
        };
        for (layer, source) in files {
            let Some(layer) = layer else { continue };
            match layer.find(key) {
                // Null, and an empty secret, count as unset so a lower source can apply.
                Some((value, at)) if !value.is_null() && (!key.is_secret() || !is_blank(value)) => {
                    out.push(Candidate { source: source(at), value });
                }
                _ => {}
            }
        }
        if let Some((_, value)) = self.defaults.iter().find(|(k, _)| *k == key.path) {
            out.push(Candidate { source: Source::Default, value });
        }
        out
    }

    /// The directories a secret file may appear or change in (`$CREDENTIALS_DIRECTORY`,
    /// the directory of each `PICOCLAW_<NAME>_FILE`), for the gateway's file watcher.
    pub fn secret_dirs(&self) -> &[PathBuf] {
        &self.secret_dirs
    }

    /// `.security.yml` `model_list`: model_name → `{api_keys: [...]}`. For the credentials
    /// crate only.
    pub fn security_models(&self) -> Option<&Map<String, Value>> {
        self.security.as_ref()?.root.get(schema::MODEL_LIST.file_key)?.as_object()
    }

    /// `.security.yml` `tokens`: the named-token records (hashes only). For the
    /// credentials crate only.
    pub fn security_tokens(&self) -> Option<&Value> {
        self.security.as_ref()?.root.get("tokens")
    }

    /// The parsed `.security.yml` tree, for tools that rewrite it (onboard, token commands).
    pub fn security_tree(&self) -> Option<&Value> {
        self.security.as_ref().map(|l| &l.root)
    }

    /// The parsed `config.json` tree, for `doctor` (which looks for secrets in it).
    pub fn config_tree(&self) -> Option<&Value> {
        self.config.as_ref().map(|l| &l.root)
    }

    /// Whether `config.json` or `.security.yml` is in upstream PicoClaw's version-3 shape
    /// (see [`upstream`](crate::upstream)); `doctor` reports it and `--fix` rewrites it.
    pub fn upstream_shaped(&self) -> Vec<&Path> {
        [&self.config, &self.security]
            .into_iter()
            .flatten()
            .filter(|l| upstream::is_upstream_shaped(&l.root))
            .map(|l| l.path.as_path())
            .collect()
    }

    /// The parsed `launcher-config.json` tree, for the launcher (which rewrites it).
    pub fn launcher_tree(&self) -> Option<&Value> {
        self.launcher.as_ref().map(|l| &l.root)
    }

    /// The file each loaded layer came from.
    pub fn loaded_files(&self) -> Vec<&Path> {
        [&self.config, &self.security, &self.launcher]
            .into_iter()
            .flatten()
            .map(|l| l.path.as_path())
            .collect()
    }
}

fn is_blank(value: &Value) -> bool {
    value.as_str().is_some_and(|s| s.trim().is_empty())
}

/// Follows a dotted path into a JSON tree.
pub(crate) fn lookup<'v>(root: &'v Value, dotted: &str) -> Option<&'v Value> {
    dotted.split('.').try_fold(root, |node, part| node.get(part))
}

thread_local! {
    static YAML_FILE: Cell<FileKind> = const { Cell::new(FileKind::SecurityYml) };
}

struct YamlDoc(Value, Vec<ConfigWarning>);

impl<'de> serde::Deserialize<'de> for YamlDoc {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let ctx = Ctx::new(YAML_FILE.with(Cell::get));
        let value = ObjectSeed { ctx: &ctx, path: String::new() }.deserialize(d)?;
        Ok(YamlDoc(value, ctx.warnings.into_inner()))
    }
}

/// Parses `text` as the given file kind. Public within the crate for tests and for tools
/// that validate an edit before writing it.
pub(crate) fn parse_text(
    path: &Path,
    text: &str,
    kind: FileKind,
) -> Result<(Value, Vec<ConfigWarning>), ConfigError> {
    let parse_err =
        |line, column, message: String| ConfigError::Parse { path: path.to_owned(), line, column, message };
    match kind {
        FileKind::ConfigJson | FileKind::LauncherJson => {
            if text.trim().is_empty() {
                return Ok((Value::Object(Map::new()), Vec::new()));
            }
            let ctx = Ctx::new(kind);
            let mut de = serde_json::Deserializer::from_str(text);
            let value = ObjectSeed { ctx: &ctx, path: String::new() }
                .deserialize(&mut de)
                .and_then(|v| de.end().map(|()| v))
                .map_err(|e| {
                    let message = strip_location(&e.to_string());
                    let what = if e.is_syntax() || e.is_eof() {
                        format!("not valid JSON: {message}")
                    } else {
                        message
                    };
                    parse_err(Some(e.line()), Some(e.column()), what)
                })?;
            Ok((value, ctx.warnings.into_inner()))
        }
        FileKind::SecurityYml => {
            let only_comments = text
                .lines()
                .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---");
            if only_comments {
                return Ok((Value::Object(Map::new()), Vec::new()));
            }
            YAML_FILE.with(|f| f.set(kind));
            match serde_saphyr::from_str::<YamlDoc>(text) {
                Ok(YamlDoc(value, warnings)) => Ok((value, warnings)),
                Err(e) => {
                    let location = e.location();
                    let message = strip_location(&e.without_snippet().render());
                    Err(parse_err(
                        location.map(|l| l.line() as usize),
                        location.map(|l| l.column() as usize),
                        message,
                    ))
                }
            }
        }
    }
}

/// Removes a trailing " at line X column Y" (the location is printed separately).
fn strip_location(message: &str) -> String {
    let cut = message.find(" at line ").unwrap_or(message.len());
    message[..cut].trim_end_matches(',').to_owned()
}

fn load_file(
    path: &Path,
    kind: FileKind,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Option<FileLayer>, ConfigError> {
    let text = match std::fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            line: None,
            column: None,
            message: format!("not valid UTF-8 (byte offset {})", e.utf8_error().valid_up_to()),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ConfigError::Read { path: path.to_owned(), source }),
    };
    let (root, found) = parse_text(path, &text, kind)?;
    warnings.extend(found);
    let (upstream, found) = upstream::collect(&root, kind, path)?;
    warnings.extend(found);
    Ok(Some(FileLayer { path: path.to_owned(), root, upstream }))
}

/// Validates `text` as the content of `.security.yml` without loading anything else.
/// Tools call this before replacing the file, so a bad edit is never written.
pub fn validate_security_text(path: &Path, text: &str) -> Result<Vec<ConfigWarning>, ConfigError> {
    validate(path, text, FileKind::SecurityYml)
}

/// Validates `text` as the content of `config.json`.
pub fn validate_config_text(path: &Path, text: &str) -> Result<Vec<ConfigWarning>, ConfigError> {
    validate(path, text, FileKind::ConfigJson)
}

/// Validates `text` as the content of `launcher-config.json`.
pub fn validate_launcher_text(path: &Path, text: &str) -> Result<Vec<ConfigWarning>, ConfigError> {
    validate(path, text, FileKind::LauncherJson)
}

fn validate(path: &Path, text: &str, kind: FileKind) -> Result<Vec<ConfigWarning>, ConfigError> {
    let (root, mut warnings) = parse_text(path, text, kind)?;
    warnings.extend(upstream::collect(&root, kind, path)?.1);
    Ok(warnings)
}

/// A variable holding an absolute path; unset or empty is `None`.
fn absolute_var(env: &dyn EnvSource, name: &'static str) -> Result<Option<PathBuf>, ConfigError> {
    let Some(raw) = env.var(name).filter(|v| !v.trim().is_empty()) else { return Ok(None) };
    let path = PathBuf::from(raw.trim());
    if !path.is_absolute() {
        return Err(ConfigError::NotAbsolute { name, value: raw });
    }
    Ok(Some(path))
}

fn path_value(path: &Path) -> Value {
    Value::from(path.to_string_lossy().into_owned())
}

fn parse_env(key: &Key, name: &'static str, raw: &str) -> Result<Option<Value>, ConfigError> {
    let raw = raw.trim();
    if raw.is_empty() {
        // `PICOCLAW_X=` (common in compose files and unit templates) means "unset".
        return Ok(None);
    }
    let shown = (!key.is_secret()).then(|| raw.to_owned());
    let bad = || ConfigError::Env { name, expected: key.kind.expected(), value: shown.clone() };
    let value = match key.kind {
        Kind::Bool => match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Value::Bool(true),
            "false" | "0" | "no" | "off" => Value::Bool(false),
            _ => return Err(bad()),
        },
        Kind::Port | Kind::Seconds | Kind::Count | Kind::Bytes => {
            let n: u64 = raw.parse().map_err(|_| bad())?;
            let ok = match key.kind {
                Kind::Port => n <= u64::from(u16::MAX),
                Kind::Seconds => (1..=86_400).contains(&n),
                Kind::Bytes => (1..=1 << 50).contains(&n),
                _ => (1..=1 << 30).contains(&n),
            };
            if !ok {
                return Err(bad());
            }
            Value::from(n)
        }
        Kind::Str | Kind::Secret => Value::from(raw),
        Kind::Host | Kind::LogLevel | Kind::WsUrl | Kind::BasePath => {
            if !key.kind.check_str(raw) {
                // A URL may carry a password: never echo one.
                return Err(ConfigError::Env {
                    name,
                    expected: key.kind.expected(),
                    value: (key.kind != Kind::WsUrl).then(|| raw.to_owned()),
                });
            }
            Value::from(raw)
        }
        Kind::StrList | Kind::Cidrs => {
            let items: Vec<&str> = raw.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
            if items.iter().any(|i| !key.kind.check_str(i)) {
                return Err(bad());
            }
            Value::Array(items.into_iter().map(Value::from).collect())
        }
        Kind::ModelList => return Err(bad()),
    };
    Ok(Some(value))
}

#[cfg(test)]
mod tests;
