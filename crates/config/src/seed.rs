//! Schema-driven parsing of config.json, .security.yml and launcher-config.json.
//!
//! The files are parsed by their real parsers (serde_json, serde-saphyr) through a
//! [`DeserializeSeed`] that knows the schema, so a wrong type is reported *with the
//! parser's line and column* and with our own message, which names the key and what was
//! expected but never the value found (it may be a secret). Unknown keys are collected as
//! warnings with a "did you mean" hint; duplicate keys are errors.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::ConfigWarning;
use crate::schema::{self, FOREIGN_CHANNELS, Home, Kind};

/// Which file is being parsed; decides the key set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    ConfigJson,
    SecurityYml,
    LauncherJson,
}

impl FileKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            FileKind::ConfigJson => "config.json",
            FileKind::SecurityYml => ".security.yml",
            FileKind::LauncherJson => "launcher-config.json",
        }
    }

    fn home(self) -> Home {
        match self {
            FileKind::ConfigJson | FileKind::SecurityYml => Home::Config,
            FileKind::LauncherJson => Home::Launcher,
        }
    }
}

/// Shared state of one parse: the file kind and the warnings found so far.
pub(crate) struct Ctx {
    pub(crate) file: FileKind,
    pub(crate) warnings: RefCell<Vec<ConfigWarning>>,
}

impl Ctx {
    pub(crate) fn new(file: FileKind) -> Self {
        Ctx { file, warnings: RefCell::new(Vec::new()) }
    }

    fn warn_unknown(&self, path: &str) {
        let message = match foreign_channel(path) {
            Some(channel) => {
                format!("unknown key `{path}` ignored: picoclaw does not implement the {channel} channel")
            }
            // An upstream Pico setting picoclaw has no use for (e.g. `streaming`: every
            // answer streams here); a "did you mean" among our keys would mislead.
            None if path.starts_with(crate::upstream::CHANNEL_LIST) => {
                format!("unknown key `{path}` ignored: picoclaw has no such setting of this channel")
            }
            None => match schema::closest(path, self.file.home()) {
                Some(near) => format!("unknown key `{path}` ignored (did you mean `{near}`?)"),
                None => format!("unknown key `{path}` ignored"),
            },
        };
        self.warnings.borrow_mut().push(ConfigWarning {
            file: self.file.name(),
            key: path.to_owned(),
            message,
        });
    }

    /// What lives at `path` in this file.
    fn node(&self, path: &str) -> Node {
        if let Some(shape) = crate::upstream::shape(path, self.file) {
            return match shape {
                crate::upstream::Shape::Object => Node::Object,
                crate::upstream::Shape::Leaf(key) => Node::Leaf(key.kind),
                crate::upstream::Shape::Any => Node::Any,
            };
        }
        if self.file == FileKind::SecurityYml {
            if path == schema::MODEL_LIST.file_key {
                return Node::SecurityModels;
            }
            if path == "tokens" || path == "rotated" {
                return Node::Any;
            }
        }
        let home = self.file.home();
        if let Some(key) = schema::keys_in(home).find(|k| k.file_key == path) {
            if key.kind == Kind::ModelList {
                return Node::Models;
            }
            return Node::Leaf(key.kind);
        }
        let prefix = format!("{path}.");
        if path.is_empty() || schema::keys_in(home).any(|k| k.file_key.starts_with(&prefix)) {
            return Node::Object;
        }
        Node::Unknown
    }
}

fn foreign_channel(path: &str) -> Option<&'static str> {
    let rest = path.strip_prefix("channels.").or_else(|| path.strip_prefix("channel_list."))?;
    let name = rest.split('.').next()?;
    FOREIGN_CHANNELS.iter().copied().find(|c| *c == name)
}

enum Node {
    Object,
    Leaf(Kind),
    Models,
    SecurityModels,
    Any,
    Unknown,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }
}

/// Parses an object node of the schema.
pub(crate) struct ObjectSeed<'c> {
    pub(crate) ctx: &'c Ctx,
    pub(crate) path: String,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ObjectVisitor { ctx: self.ctx, path: self.path })
    }
}

struct ObjectVisitor<'c> {
    ctx: &'c Ctx,
    path: String,
}

impl<'de> Visitor<'de> for ObjectVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Object(Map::new()))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Object(Map::new()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = join(&self.path, &key);
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("key `{path}` appears twice")));
            }
            let value = match self.ctx.node(&path) {
                Node::Object => map.next_value_seed(ObjectSeed { ctx: self.ctx, path })?,
                Node::Leaf(kind) => map.next_value_seed(LeafSeed { kind, path })?,
                Node::Models => map.next_value_seed(ModelListSeed { ctx: self.ctx, path })?,
                Node::SecurityModels => map.next_value_seed(SecurityModelsSeed { ctx: self.ctx, path })?,
                Node::Any => map.next_value::<Value>()?,
                Node::Unknown => {
                    self.ctx.warn_unknown(&path);
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(type_error(&self.path, "an object", "a list"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Value, E> {
        Err(type_error(&self.path, "an object", "a string"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Value, E> {
        Err(type_error(&self.path, "an object", "a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Value, E> {
        Err(type_error(&self.path, "an object", "a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Value, E> {
        Err(type_error(&self.path, "an object", "a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Err(type_error(&self.path, "an object", "a number"))
    }
}

fn type_error<E: de::Error>(path: &str, expected: &str, found: &str) -> E {
    let hint = if expected == "a string" && found == "a number" { " (put the value in quotes)" } else { "" };
    let shown = if path.is_empty() { "the document" } else { path };
    E::custom(format!("key `{shown}`: expected {expected}, found {found}{hint}"))
}

/// Parses one leaf value of a known kind.
pub(crate) struct LeafSeed {
    pub(crate) kind: Kind,
    pub(crate) path: String,
}

impl<'de> DeserializeSeed<'de> for LeafSeed {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(LeafVisitor { kind: self.kind, path: self.path })
    }
}

struct LeafVisitor {
    kind: Kind,
    path: String,
}

impl LeafVisitor {
    fn wrong<E: de::Error>(&self, found: &str) -> E {
        type_error(&self.path, self.kind.expected(), found)
    }

    fn number<E: de::Error>(&self, n: u64) -> Result<Value, E> {
        let ok = match self.kind {
            Kind::Port => n <= u64::from(u16::MAX),
            Kind::Seconds => (1..=86_400).contains(&n),
            Kind::Count => (1..=1 << 30).contains(&n),
            Kind::Bytes => (1..=1 << 50).contains(&n),
            _ => return Err(self.wrong("a number")),
        };
        if ok {
            Ok(Value::from(n))
        } else {
            Err(E::custom(format!(
                "key `{}`: {n} is out of range, expected {}",
                self.path,
                self.kind.expected()
            )))
        }
    }
}

impl<'de> Visitor<'de> for LeafVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.expected())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        match self.kind {
            Kind::Bool => Ok(Value::Bool(b)),
            _ => Err(self.wrong("a boolean")),
        }
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        self.number(n)
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        match u64::try_from(n) {
            Ok(n) => self.number(n),
            Err(_) if matches!(self.kind, Kind::Port | Kind::Seconds | Kind::Count | Kind::Bytes) => {
                Err(E::custom(format!(
                    "key `{}`: expected {}, found a negative number",
                    self.path,
                    self.kind.expected()
                )))
            }
            Err(_) => Err(self.wrong("a number")),
        }
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Err(self.wrong("a fractional number"))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        match self.kind {
            Kind::Str | Kind::Secret => Ok(Value::from(s)),
            Kind::Host | Kind::LogLevel | Kind::WsUrl | Kind::BasePath if self.kind.check_str(s) => {
                Ok(Value::from(s))
            }
            // The value is not shown: a URL may carry a password.
            Kind::Host | Kind::LogLevel | Kind::WsUrl | Kind::BasePath => {
                Err(E::custom(format!("key `{}`: expected {}", self.path, self.kind.expected())))
            }
            _ => Err(self.wrong("a string")),
        }
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        match self.kind {
            Kind::StrList | Kind::Cidrs => {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<ListItem>()? {
                    match item {
                        ListItem::Str(s) if !self.kind.check_str(&s) => {
                            return Err(de::Error::custom(format!(
                                "key `{}`: expected {}, found {s:?}",
                                self.path,
                                self.kind.expected()
                            )));
                        }
                        ListItem::Str(s) => out.push(Value::from(s)),
                        ListItem::Other(found) => {
                            return Err(de::Error::custom(format!(
                                "key `{}`: every entry must be a string, found {found}",
                                self.path
                            )));
                        }
                    }
                }
                Ok(Value::Array(out))
            }
            Kind::ModelList => {
                let mut out = Vec::new();
                let mut index = 0usize;
                while let Some(entry) = seq.next_element_seed(ModelEntrySeed {
                    ctx: None,
                    path: format!("{}[{index}]", self.path),
                })? {
                    out.push(entry);
                    index += 1;
                }
                Ok(Value::Array(out))
            }
            _ => Err(self.wrong("a list")),
        }
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(self.wrong("an object"))
    }
}

/// One entry of a string list: a string, or a description of what it was instead.
enum ListItem {
    Str(String),
    Other(&'static str),
}

impl<'de> de::Deserialize<'de> for ListItem {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ListItem;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ListItem, E> {
                Ok(ListItem::Str(s.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<ListItem, E> {
                Ok(ListItem::Other("a boolean"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<ListItem, E> {
                Ok(ListItem::Other("a number"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<ListItem, E> {
                Ok(ListItem::Other("a number"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<ListItem, E> {
                Ok(ListItem::Other("a number"))
            }
            fn visit_unit<E: de::Error>(self) -> Result<ListItem, E> {
                Ok(ListItem::Other("null"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<ListItem, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ListItem::Other("a list"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<ListItem, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(ListItem::Other("an object"))
            }
        }
        d.deserialize_any(V)
    }
}

/// config.json `model_list`, with a context for warnings.
struct ModelListSeed<'c> {
    ctx: &'c Ctx,
    path: String,
}

impl<'de> DeserializeSeed<'de> for ModelListSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ModelListVisitor { ctx: self.ctx, path: self.path })
    }
}

struct ModelListVisitor<'c> {
    ctx: &'c Ctx,
    path: String,
}

impl<'de> Visitor<'de> for ModelListVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Kind::ModelList.expected())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        let mut index = 0usize;
        while let Some(entry) = seq.next_element_seed(ModelEntrySeed {
            ctx: Some(self.ctx),
            path: format!("{}[{index}]", self.path),
        })? {
            out.push(entry);
            index += 1;
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Value, A::Error> {
        Err(type_error(&self.path, Kind::ModelList.expected(), "an object"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Value, E> {
        Err(type_error(&self.path, Kind::ModelList.expected(), "a string"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Value, E> {
        Err(type_error(&self.path, Kind::ModelList.expected(), "a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Value, E> {
        Err(type_error(&self.path, Kind::ModelList.expected(), "a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Value, E> {
        Err(type_error(&self.path, Kind::ModelList.expected(), "a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Err(type_error(&self.path, Kind::ModelList.expected(), "a number"))
    }
}

/// One `model_list` entry of config.json. With a context, fields picoclaw does not use
/// (upstream's `enabled`, `rpm`, `thinking_level`, a `_comment` …) are warnings, as
/// upstream ignores unknown fields too; without one they are errors.
struct ModelEntrySeed<'c> {
    ctx: Option<&'c Ctx>,
    path: String,
}

const MODEL_FIELDS: &[(&str, Kind)] = &[
    ("model_name", Kind::Str),
    ("model", Kind::Str),
    ("api_base", Kind::Str),
    ("provider", Kind::Str),
    ("api_key", Kind::Secret),
    ("api_keys", Kind::StrList),
];

impl<'de> DeserializeSeed<'de> for ModelEntrySeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_map(ModelEntryVisitor { ctx: self.ctx, path: self.path })
    }
}

struct ModelEntryVisitor<'c> {
    ctx: Option<&'c Ctx>,
    path: String,
}

impl<'de> Visitor<'de> for ModelEntryVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a model entry object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = format!("{}.{key}", self.path);
            let Some((_, kind)) = MODEL_FIELDS.iter().find(|(name, _)| *name == key) else {
                if let Some(ctx) = self.ctx {
                    ctx.warnings.borrow_mut().push(ConfigWarning {
                        file: ctx.file.name(),
                        key: path.clone(),
                        message: format!("model field `{path}` ignored: picoclaw uses model_name, model, provider, api_base and api_keys"),
                    });
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
                return Err(de::Error::custom(format!(
                    "key `{path}` is not a model field; expected one of model_name, model, provider, api_base, api_key"
                )));
            };
            let value = map.next_value_seed(LeafSeed { kind: *kind, path })?;
            out.insert(key, value);
        }
        for required in ["model_name", "model"] {
            if !out.get(required).is_some_and(Value::is_string) {
                return Err(de::Error::custom(format!(
                    "key `{}.{required}` is missing: every model_list entry needs a string `{required}`",
                    self.path
                )));
            }
        }
        Ok(Value::Object(out))
    }
}

/// `.security.yml` `model_list`: a map from model_name to `{api_keys: [..]}` or `{api_key: ..}`.
struct SecurityModelsSeed<'c> {
    ctx: &'c Ctx,
    path: String,
}

impl<'de> DeserializeSeed<'de> for SecurityModelsSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_map(SecurityModelsVisitor { ctx: self.ctx, path: self.path })
    }
}

struct SecurityModelsVisitor<'c> {
    ctx: &'c Ctx,
    path: String,
}

impl<'de> Visitor<'de> for SecurityModelsVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map from model_name to {api_keys: [...]}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let path = format!("{}.{name}", self.path);
            let entry = map.next_value_seed(ModelKeysSeed { ctx: self.ctx, path })?;
            out.insert(name, entry);
        }
        Ok(Value::Object(out))
    }
}

struct ModelKeysSeed<'c> {
    ctx: &'c Ctx,
    path: String,
}

impl<'de> DeserializeSeed<'de> for ModelKeysSeed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_map(ModelKeysVisitor { ctx: self.ctx, path: self.path })
    }
}

struct ModelKeysVisitor<'c> {
    ctx: &'c Ctx,
    path: String,
}

impl<'de> Visitor<'de> for ModelKeysVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with api_keys")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = format!("{}.{key}", self.path);
            let kind = match key.as_str() {
                "api_keys" => Kind::StrList,
                "api_key" => Kind::Secret,
                _ => {
                    self.ctx.warn_unknown(&path);
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            out.insert(key, map.next_value_seed(LeafSeed { kind, path })?);
        }
        Ok(Value::Object(out))
    }
}
