//! Upstream PicoClaw's file shapes, read at the boundary.
//!
//! Upstream v0.2.7 and later write `config.json` as schema version 3: `"version": 3` and
//! channels under `channel_list.<name> = {enabled, type, allow_from, settings{…}}`, with
//! their secrets in `.security.yml` under `channel_list.<name>.settings.<field>` (upstream
//! also reads `channels.<name>.settings.<field>` there). Versions 1 and 2 use the flat
//! `channels.<name>.<field>` shape, which is ours.
//!
//! This module maps the version-3 paths onto the schema's keys while the files are
//! parsed, so the rest of picoclaw sees one set of keys, and each value keeps the path it
//! was read from (`config.json:channel_list.pico.settings.token`). It also rewrites an
//! upstream-shaped tree into ours for `doctor --fix`.

use serde::de::DeserializeSeed;
use serde_json::{Map, Value};

use crate::error::{ConfigError, ConfigWarning};
use crate::schema::{self, FOREIGN_CHANNELS, Home, Key};
use crate::seed::{FileKind, LeafSeed};

/// Upstream's top-level channel map (schema version 3).
pub const CHANNEL_LIST: &str = "channel_list";
/// Upstream's schema version marker.
pub const VERSION: &str = "version";
/// Our channel section (versions 1 and 2 of upstream use it too).
const CHANNELS: &str = "channels";
/// The sub-object of a version-3 channel entry that holds its own fields.
const SETTINGS: &str = "settings";
/// The field of a version-3 channel entry that names its type.
const TYPE: &str = "type";
/// The entry-level field that maps to `channels.<type>.enabled`.
const ENABLED: &str = "enabled";

/// The channel types picoclaw implements (upstream names them the same).
pub(crate) const OURS: &[&str] = &["pico", "pico_client"];

/// Upstream's common channel fields that mean nothing for the Pico channels (the Pico
/// sender is always the one token's holder); read and ignored without a warning.
const BASE_FIELDS: &[&str] =
    &["type", "allow_from", "reasoning_channel_id", "group_trigger", "typing", "placeholder"];

/// Upstream's names for our keys, per file: launcher-config.json's `trusted_proxy_cidrs`,
/// and config.json's `agents.defaults.model_name` (upstream v0.2.7+; ours is
/// `agents.defaults.model`, which wins when both are set).
const ALIASES: &[(FileKind, &str, &Key)] = &[
    (FileKind::LauncherJson, "trusted_proxy_cidrs", &schema::LAUNCHER_TRUSTED_PROXIES),
    (FileKind::ConfigJson, "agents.defaults.model_name", &schema::AGENTS_DEFAULTS_MODEL),
];

/// The schema key `path` of `file` is upstream's alias of.
fn alias(path: &str, file: FileKind) -> Option<&'static Key> {
    ALIASES.iter().find(|(f, name, _)| *f == file && *name == path).map(|(_, _, key)| *key)
}

/// Where an upstream-shaped value was found, and the key it stands for.
#[derive(Debug, Clone)]
pub struct UpstreamValue {
    /// The key it is read as.
    pub key: &'static Key,
    /// The path it was read from, e.g. `channel_list.pico.settings.token`.
    pub path: String,
    pub(crate) value: Value,
}

/// The schema key of field `field` of channel type `channel` (`enabled` included).
pub(crate) fn our_key(channel: &str, field: &str) -> Option<&'static Key> {
    let wanted = format!("{CHANNELS}.{channel}.{field}");
    schema::keys_in(Home::Config).find(|k| k.file_key == wanted)
}

/// What the parser should do with `path` of an upstream shape; `None` when the path is
/// not upstream-specific.
pub(crate) enum Shape {
    /// An object to descend into.
    Object,
    /// The value of a schema key.
    Leaf(&'static Key),
    /// A value taken as it is (checked after the parse, or ignored).
    Any,
}

/// Classifies `path` (a dotted path inside `file`) as part of an upstream shape.
pub(crate) fn shape(path: &str, file: FileKind) -> Option<Shape> {
    if let Some(key) = alias(path, file) {
        return Some(Shape::Leaf(key));
    }
    if file == FileKind::LauncherJson {
        return None;
    }
    if path == VERSION && file == FileKind::ConfigJson {
        return Some(Shape::Any);
    }
    let mut parts = path.split('.');
    let section = parts.next()?;
    let listed = section == CHANNEL_LIST;
    if !listed && section != CHANNELS {
        return None;
    }
    let Some(name) = parts.next() else {
        return listed.then_some(Shape::Object);
    };
    let ours = OURS.contains(&name);
    let Some(field) = parts.next() else {
        // Entries of other names are checked after the parse (their `type` may be ours).
        return listed.then_some(if ours { Shape::Object } else { Shape::Any });
    };
    if !ours {
        return None;
    }
    let rest = parts.next();
    match (field, rest) {
        (SETTINGS, None) if listed || file == FileKind::SecurityYml => Some(Shape::Object),
        (SETTINGS, Some(f)) if (listed || file == FileKind::SecurityYml) && parts.next().is_none() => {
            our_key(name, f).map(Shape::Leaf)
        }
        (ENABLED, None) if listed => our_key(name, ENABLED).map(Shape::Leaf),
        (f, None) if BASE_FIELDS.contains(&f) => Some(Shape::Any),
        _ => None,
    }
}

/// Collects the upstream-shaped values of a parsed tree (`file` names it in errors and
/// warnings). Entries of `channel_list` whose name is not a channel type of ours are
/// checked here: one whose `type` is ours is read like the named one, a foreign or
/// unknown type is a warning — never an error.
pub(crate) fn collect(
    root: &Value,
    file: FileKind,
    path: &std::path::Path,
) -> Result<(Vec<UpstreamValue>, Vec<ConfigWarning>), ConfigError> {
    let mut values = Vec::new();
    let mut warnings = Vec::new();
    let warn = |warnings: &mut Vec<ConfigWarning>, key: String, message: String| {
        warnings.push(ConfigWarning { file: file.name(), key, message });
    };
    for (_, name, key) in ALIASES.iter().filter(|(f, _, _)| *f == file) {
        let found = name.split('.').try_fold(root, |node, part| node.get(part));
        if let Some(value) = found.filter(|v| !v.is_null()) {
            values.push(UpstreamValue { key, path: (*name).to_owned(), value: value.clone() });
        }
    }
    let mut taken: Vec<&str> = Vec::new();
    let sections: &[&str] = match file {
        FileKind::ConfigJson => &[CHANNEL_LIST],
        FileKind::SecurityYml => &[CHANNEL_LIST, CHANNELS],
        FileKind::LauncherJson => &[],
    };
    for section in sections {
        let Some(list) = root.get(*section).and_then(Value::as_object) else { continue };
        for (name, entry) in list {
            let entry_path = format!("{section}.{name}");
            let named_ours = OURS.iter().copied().find(|c| c == name);
            let declared = entry.get(TYPE).and_then(Value::as_str);
            let channel = match named_ours.or_else(|| OURS.iter().copied().find(|c| Some(*c) == declared)) {
                Some(c) => c,
                None if *section == CHANNELS => continue,
                None => {
                    let ty = declared.unwrap_or(name);
                    let message = if FOREIGN_CHANNELS.contains(&ty) {
                        format!(
                            "channel `{entry_path}` ignored: picoclaw does not implement the {ty} channel"
                        )
                    } else {
                        format!("channel `{entry_path}` ignored: unknown channel type `{ty}`")
                    };
                    warn(&mut warnings, entry_path, message);
                    continue;
                }
            };
            if *section == CHANNEL_LIST && taken.contains(&channel) {
                warn(
                    &mut warnings,
                    entry_path,
                    format!(
                        "channel `{section}.{name}` ignored: another entry already configures the {channel} channel"
                    ),
                );
                continue;
            }
            if *section == CHANNEL_LIST {
                taken.push(channel);
            }
            let check = named_ours.is_none();
            if *section == CHANNEL_LIST
                && let Some(enabled) = entry.get(ENABLED)
                && let Some(key) = our_key(channel, ENABLED)
            {
                let at = format!("{entry_path}.{ENABLED}");
                let value = if check { checked(key, &at, enabled, path)? } else { enabled.clone() };
                values.push(UpstreamValue { key, path: at, value });
            }
            if check {
                for field in entry.as_object().into_iter().flat_map(Map::keys) {
                    if field != ENABLED && field != SETTINGS && !BASE_FIELDS.contains(&field.as_str()) {
                        let at = format!("{entry_path}.{field}");
                        warn(&mut warnings, at.clone(), format!("unknown key `{at}` ignored"));
                    }
                }
            }
            let Some(settings) = entry.get(SETTINGS).and_then(Value::as_object) else { continue };
            for (field, value) in settings {
                let at = format!("{entry_path}.{SETTINGS}.{field}");
                match our_key(channel, field).filter(|_| field != ENABLED) {
                    Some(key) => {
                        let value = if check { checked(key, &at, value, path)? } else { value.clone() };
                        if !value.is_null() {
                            values.push(UpstreamValue { key, path: at, value });
                        }
                    }
                    // Known paths were already warned about by the parser.
                    None if check => warn(&mut warnings, at.clone(), format!("unknown key `{at}` ignored")),
                    None => {}
                }
            }
        }
    }
    Ok((values, warnings))
}

/// Checks a value the parser took as it was (an entry of another name whose type is ours).
fn checked(key: &Key, at: &str, value: &Value, path: &std::path::Path) -> Result<Value, ConfigError> {
    LeafSeed { kind: key.kind, path: at.to_owned() }.deserialize(value.clone()).map_err(|e| {
        ConfigError::Parse { path: path.to_owned(), line: None, column: None, message: e.to_string() }
    })
}

/// Whether a parsed tree is upstream-shaped: a `version` marker, or a `channel_list`
/// entry (or, in `.security.yml`, a `channels.<name>.settings`) for a channel of ours.
pub fn is_upstream_shaped(tree: &Value) -> bool {
    tree.get(VERSION).is_some() || !ours_in(tree).is_empty()
}

/// The (section, name, channel type) of every entry of a channel of ours in upstream's
/// version-3 shape.
fn ours_in(tree: &Value) -> Vec<(&'static str, String, &'static str)> {
    let mut out = Vec::new();
    for section in [CHANNEL_LIST, CHANNELS] {
        let Some(list) = tree.get(section).and_then(Value::as_object) else { continue };
        for (name, entry) in list {
            let declared = entry.get(TYPE).and_then(Value::as_str);
            let found = OURS.iter().copied().find(|c| c == name).or_else(|| {
                if section == CHANNEL_LIST {
                    OURS.iter().copied().find(|c| Some(*c) == declared)
                } else {
                    None
                }
            });
            let Some(channel) = found else { continue };
            if section == CHANNELS && entry.get(SETTINGS).is_none() {
                continue;
            }
            out.push((section, name.clone(), channel));
        }
    }
    out
}

/// Rewrites an upstream-shaped tree into picoclaw's: `version` is dropped, and every
/// entry of a channel of ours moves from `channel_list.<name>` (or a `.security.yml`
/// `channels.<name>.settings`) to flat `channels.<type>.<field>`. A value already present
/// in our shape wins. Everything else (other channels, keys picoclaw does not know) is
/// kept as it was. Returns `None` when there is nothing to rewrite.
pub fn rewrite(tree: &Value) -> Option<Value> {
    if !is_upstream_shaped(tree) {
        return None;
    }
    let mut out = tree.clone();
    let root = out.as_object_mut()?;
    root.remove(VERSION);
    let mut moved: Vec<(&'static str, Map<String, Value>)> = Vec::new();
    for (section, name, channel) in ours_in(tree) {
        let Some(entry) = root.get_mut(section).and_then(Value::as_object_mut).and_then(|l| {
            if section == CHANNEL_LIST {
                l.remove(&name)
            } else {
                l.get_mut(&name)?.as_object_mut()?.remove(SETTINGS)
            }
        }) else {
            continue;
        };
        let mut flat = Map::new();
        if section == CHANNEL_LIST {
            if let Some(enabled) = entry.get(ENABLED) {
                flat.insert(ENABLED.to_owned(), enabled.clone());
            }
            if let Some(settings) = entry.get(SETTINGS).and_then(Value::as_object) {
                flat.extend(settings.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        } else if let Some(settings) = entry.as_object() {
            flat.extend(settings.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        moved.push((channel, flat));
    }
    if root.get(CHANNEL_LIST).and_then(Value::as_object).is_some_and(Map::is_empty) {
        root.remove(CHANNEL_LIST);
    }
    let channels = root.entry(CHANNELS).or_insert_with(|| Value::Object(Map::new()));
    let Some(channels) = channels.as_object_mut() else { return Some(out) };
    for (channel, flat) in moved {
        let target = channels.entry(channel).or_insert_with(|| Value::Object(Map::new()));
        if let Some(target) = target.as_object_mut() {
            for (k, v) in flat {
                target.entry(k).or_insert(v);
            }
        }
    }
    // A `channels.<name>` left empty by moving its settings out says nothing.
    channels.retain(|_, v| !v.as_object().is_some_and(Map::is_empty));
    if channels.is_empty() {
        root.remove(CHANNELS);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn version_3_moves_to_flat_channels_and_keeps_the_rest() {
        let v3 = json!({
            "version": 3,
            "gateway": {"log_level": "fatal"},
            "channel_list": {
                "pico": {"enabled": true, "type": "pico", "allow_from": [], "settings": {"token": "t", "ping_interval": 30}},
                "telegram": {"enabled": false, "type": "telegram", "settings": {"token": "x"}}
            }
        });
        let ours = rewrite(&v3).unwrap();
        assert_eq!(
            ours,
            json!({
                "gateway": {"log_level": "fatal"},
                "channel_list": {"telegram": {"enabled": false, "type": "telegram", "settings": {"token": "x"}}},
                "channels": {"pico": {"enabled": true, "token": "t", "ping_interval": 30}}
            })
        );
        assert!(rewrite(&ours).is_none(), "our shape is left alone");
    }

    #[test]
    fn security_settings_shape_is_flattened() {
        let yml = json!({"channel_list": {"pico": {"settings": {"token": "a"}}}, "channels": {"pico_client": {"settings": {"token": "b"}}}});
        assert_eq!(
            rewrite(&yml).unwrap(),
            json!({"channels": {"pico": {"token": "a"}, "pico_client": {"token": "b"}}})
        );
    }

    #[test]
    fn our_values_win_over_upstream_ones() {
        let both = json!({"channels": {"pico": {"token": "ours"}}, "channel_list": {"pico": {"settings": {"token": "theirs"}}}});
        assert_eq!(rewrite(&both).unwrap(), json!({"channels": {"pico": {"token": "ours"}}}));
    }
}
