//! Finding picoclaw secrets copied into service definitions — systemd units, the files
//! their `EnvironmentFile=` lines reference, and launchd plists — and moving them into
//! `.security.yml`.
//!
//! A token copied into a unit is a second source of truth: it is read once at service
//! start, shadows `.security.yml` (environment beats files), and silently goes stale when
//! the token is rotated (seed 004). This module only *reads* such values so that
//! `service audit` can name them by fingerprint and `doctor --fix` can preserve them in
//! `.security.yml` before the unit is rewritten without them.

use std::path::{Path, PathBuf};

use picoclaw_config::files::{SECRET_MODE, write_atomic};
use picoclaw_config::schema::{self, Home, Key};
use serde_json::Value;

use crate::error::CredentialError;
use crate::secret::{Fingerprint, Secret};
use crate::store::{get_path, read_security_tree, set_path, write_security_tree};

/// Largest unit, drop-in or environment file read (larger files are skipped).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// Where in a service definition a secret was found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Place {
    /// An `Environment=` assignment (1-based line).
    Environment {
        /// Line number in the unit.
        line: usize,
    },
    /// A line of a file named by `EnvironmentFile=`.
    EnvironmentFile {
        /// The environment file.
        file: PathBuf,
        /// Line number in that file.
        line: usize,
    },
    /// An argument of `ExecStart=` (or another `Exec*=` line).
    ExecArgument {
        /// Line number in the unit.
        line: usize,
    },
    /// `EnvironmentVariables` of a launchd plist.
    PlistEnvironment,
    /// `ProgramArguments` of a launchd plist.
    PlistArgument,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Environment { line } => write!(f, "Environment= (line {line})"),
            Place::EnvironmentFile { file, line } => {
                write!(f, "EnvironmentFile {} (line {line})", file.display())
            }
            Place::ExecArgument { line } => write!(f, "ExecStart argument (line {line})"),
            Place::PlistEnvironment => f.write_str("EnvironmentVariables"),
            Place::PlistArgument => f.write_str("ProgramArguments"),
        }
    }
}

/// One secret found in a service definition.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// The configuration key it sets (`gateway.token`, ...).
    pub key: &'static Key,
    /// The variable or flag that carries it (`PICOCLAW_GATEWAY_TOKEN`, `--token`).
    pub name: String,
    /// Where it is.
    pub place: Place,
    /// The value.
    pub secret: Secret,
}

impl Embedded {
    /// Public name of the value.
    pub fn fingerprint(&self) -> Fingerprint {
        self.secret.fingerprint()
    }
}

/// The secret key an environment variable sets, if it is one of picoclaw's secrets.
pub fn secret_var(name: &str) -> Option<&'static Key> {
    schema::by_env(name).filter(|k| k.is_secret())
}

/// Splits a systemd value into words: whitespace separated, honouring single and double
/// quotes and backslash escapes (the subset of `systemd.syntax(7)` units use in practice).
pub fn split_words(value: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (_, '\\') => {
                if let Some(next) = chars.next() {
                    current.push(match next {
                        'n' => '\n',
                        't' => '\t',
                        other => other,
                    });
                }
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            (None, c) => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// Quotes one `KEY=VALUE` word for an `Environment=` line when it needs it.
fn quote_word(word: &str) -> String {
    if word.chars().any(|c| c.is_whitespace() || c == '"' || c == '\'' || c == '\\') {
        let escaped = word.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{escaped}\"")
    } else {
        word.to_owned()
    }
}

/// One logical line of a unit: its 1-based line number, key and value (continuations
/// joined). Comments and section headers are skipped.
struct UnitLine {
    number: usize,
    key: String,
    value: String,
}

fn unit_lines(text: &str) -> Vec<UnitLine> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let (number, mut line) = match pending.take() {
            Some((n, mut acc)) => {
                acc.push(' ');
                acc.push_str(raw.trim());
                (n, acc)
            }
            None => (i + 1, raw.trim().to_owned()),
        };
        if line.ends_with('\\') {
            line.pop();
            pending = Some((number, line));
            continue;
        }
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') || line.starts_with('[') {
            continue;
        }
        if let Some((key, value)) = line.split_once('=') {
            out.push(UnitLine { number, key: key.trim().to_owned(), value: value.trim().to_owned() });
        }
    }
    out
}

/// Finds `NAME=value` for every secret variable name inside free text (an `ExecStart=`
/// command line, possibly a `sh -c "..."` script), plus `--token value` / `--token=value`.
fn find_in_command(command: &str, line: usize, out: &mut Vec<Embedded>) {
    let words = split_words(command);
    // `sh -c "A=b exec picoclaw"` arrives as one word: look at its words too.
    let mut all: Vec<String> = Vec::new();
    for w in &words {
        if w.contains(char::is_whitespace) {
            all.extend(split_words(w));
        } else {
            all.push(w.clone());
        }
    }
    let mut iter = all.iter().peekable();
    while let Some(word) = iter.next() {
        let word = word.trim_matches(|c| c == ';' || c == '&');
        if let Some((name, value)) = word.split_once('=') {
            let name = name.trim_start_matches("export ").trim();
            if let Some(key) = secret_var(name)
                && !value.trim().is_empty()
            {
                out.push(Embedded {
                    key,
                    name: name.to_owned(),
                    place: Place::ExecArgument { line },
                    secret: Secret::new(value.trim()),
                });
                continue;
            }
            if (name == "--token" || name == "--gateway-token")
                && !value.is_empty()
                && let Some(key) = schema::lookup("gateway.token")
            {
                out.push(Embedded {
                    key,
                    name: name.to_owned(),
                    place: Place::ExecArgument { line },
                    secret: Secret::new(value),
                });
            }
        } else if (word == "--token" || word == "--gateway-token")
            && let Some(value) = iter.peek()
            && let Some(key) = schema::lookup("gateway.token")
        {
            out.push(Embedded {
                key,
                name: word.to_owned(),
                place: Place::ExecArgument { line },
                secret: Secret::new(value.as_str()),
            });
            iter.next();
        }
    }
}

/// Expands the specifiers a user unit's `EnvironmentFile=` commonly uses: `%h` (home) and
/// `%%`. Returns `None` for any other specifier (the path cannot be known here).
fn expand_specifiers(path: &str, user_home: &Path) -> Option<PathBuf> {
    let mut out = String::new();
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(&user_home.to_string_lossy()),
            Some('%') => out.push('%'),
            _ => return None,
        }
    }
    Some(PathBuf::from(out))
}

/// The files a unit's `EnvironmentFile=` lines name (specifiers expanded; `-` prefix
/// dropped), in order. Relative or unexpandable paths are skipped.
pub fn environment_files(unit_text: &str, user_home: &Path) -> Vec<PathBuf> {
    unit_lines(unit_text)
        .into_iter()
        .filter(|l| l.key == "EnvironmentFile")
        .flat_map(|l| split_words(&l.value))
        .filter_map(|w| expand_specifiers(w.trim_start_matches('-'), user_home))
        .filter(|p| p.is_absolute())
        .collect()
}

fn read_bounded(path: &Path) -> Option<zeroize::Zeroizing<String>> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return None;
    }
    std::fs::read_to_string(path).ok().map(zeroize::Zeroizing::new)
}

/// Secrets in a systemd unit (or drop-in): `Environment=` assignments, `Exec*=` command
/// lines, and every file named by `EnvironmentFile=` (`%h` = `user_home`).
pub fn scan_systemd(unit_text: &str, user_home: &Path) -> Vec<Embedded> {
    let mut out = Vec::new();
    for line in unit_lines(unit_text) {
        match line.key.as_str() {
            "Environment" => {
                for word in split_words(&line.value) {
                    if let Some((name, value)) = word.split_once('=')
                        && let Some(key) = secret_var(name)
                        && !value.trim().is_empty()
                    {
                        out.push(Embedded {
                            key,
                            name: name.to_owned(),
                            place: Place::Environment { line: line.number },
                            secret: Secret::new(value.trim()),
                        });
                    }
                }
            }
            "ExecStart" | "ExecStartPre" | "ExecStartPost" | "ExecReload" => {
                find_in_command(&line.value, line.number, &mut out);
            }
            _ => {}
        }
    }
    for file in environment_files(unit_text, user_home) {
        out.extend(scan_env_file(&file));
    }
    out
}

/// Secrets in an environment file (`KEY=VALUE` lines, as systemd and docker read them).
pub fn scan_env_file(path: &Path) -> Vec<Embedded> {
    let Some(text) = read_bounded(path) else { return Vec::new() };
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if let Some((name, value)) = env_assignment(raw)
            && let Some(key) = secret_var(name)
            && !value.is_empty()
        {
            out.push(Embedded {
                key,
                name: name.to_owned(),
                place: Place::EnvironmentFile { file: path.to_owned(), line: i + 1 },
                secret: Secret::new(value),
            });
        }
    }
    out
}

/// `NAME` and the unquoted value of an env-file line, or `None` for comments and blanks.
fn env_assignment(raw: &str) -> Option<(&str, String)> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
        return None;
    }
    let line = line.strip_prefix("export ").unwrap_or(line);
    let (name, value) = line.split_once('=')?;
    let value = value.trim();
    let unquoted = split_words(value).join(" ");
    Some((name.trim(), unquoted.trim().to_owned()))
}

/// The unit text without any `Environment=` assignment of a secret variable. Lines left
/// with no assignment are dropped; lines without secrets are kept byte for byte.
/// `Exec*=` lines are not changed (a command line cannot be edited safely): re-scan the
/// result to see whether secrets remain.
pub fn strip_systemd(unit_text: &str) -> String {
    let mut out = String::with_capacity(unit_text.len());
    for raw in unit_text.split_inclusive('\n') {
        let line = raw.trim();
        let Some(value) = line.strip_prefix("Environment=") else {
            out.push_str(raw);
            continue;
        };
        let words = split_words(value);
        let kept: Vec<&String> = words
            .iter()
            .filter(|w| w.split_once('=').is_none_or(|(name, _)| secret_var(name).is_none()))
            .collect();
        if kept.len() == words.len() {
            out.push_str(raw);
        } else if !kept.is_empty() {
            let joined: Vec<String> = kept.iter().map(|w| quote_word(w)).collect();
            out.push_str("Environment=");
            out.push_str(&joined.join(" "));
            out.push('\n');
        }
    }
    out
}

/// Removes the secret assignments from an environment file, atomically, keeping its mode.
/// Returns whether the file changed.
pub fn strip_env_file(path: &Path) -> Result<bool, CredentialError> {
    let Some(text) = read_bounded(path) else { return Ok(false) };
    let mut out = zeroize::Zeroizing::new(String::with_capacity(text.len()));
    let mut changed = false;
    for raw in text.split_inclusive('\n') {
        if env_assignment(raw).is_some_and(|(name, _)| secret_var(name).is_some()) {
            changed = true;
            continue;
        }
        out.push_str(raw);
    }
    if changed {
        write_atomic(path, out.as_bytes(), file_mode(path))?;
    }
    Ok(changed)
}

fn file_mode(path: &Path) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).map_or(SECRET_MODE, |m| m.permissions().mode() & 0o777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        SECRET_MODE
    }
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The `<key>`/value pairs of the plist dict that follows `<key>{name}</key>`, as
/// (key, string value, byte range of the pair in `text`).
fn plist_dict_pairs(text: &str, name: &str) -> Vec<(String, String, std::ops::Range<usize>)> {
    let marker = format!("<key>{name}</key>");
    let Some(start) = text.find(&marker) else { return Vec::new() };
    let after = start + marker.len();
    let Some(open) = text[after..].find("<dict>").map(|i| after + i + "<dict>".len()) else {
        return Vec::new();
    };
    let Some(close) = text[open..].find("</dict>").map(|i| open + i) else { return Vec::new() };
    let mut out = Vec::new();
    let mut pos = open;
    while let Some(k) = text[pos..close].find("<key>").map(|i| pos + i) {
        let Some(k_end) = text[k..close].find("</key>").map(|i| k + i) else { break };
        let key = xml_unescape(&text[k + "<key>".len()..k_end]);
        let v_start = k_end + "</key>".len();
        let rest = &text[v_start..close];
        let trimmed = rest.trim_start();
        let skip = rest.len() - trimmed.len();
        if let Some(body) = trimmed.strip_prefix("<string>")
            && let Some(end) = body.find("</string>")
        {
            let value = xml_unescape(&body[..end]);
            let pair_end = v_start + skip + "<string>".len() + end + "</string>".len();
            out.push((key, value, k..pair_end));
            pos = pair_end;
        } else {
            pos = v_start;
        }
    }
    out
}

fn plist_array_strings(text: &str, name: &str) -> Vec<String> {
    let marker = format!("<key>{name}</key>");
    let Some(start) = text.find(&marker) else { return Vec::new() };
    let after = start + marker.len();
    let Some(open) = text[after..].find("<array>").map(|i| after + i) else { return Vec::new() };
    let Some(close) = text[open..].find("</array>").map(|i| open + i) else { return Vec::new() };
    let mut out = Vec::new();
    let mut rest = &text[open..close];
    while let Some(s) = rest.find("<string>") {
        let body = &rest[s + "<string>".len()..];
        let Some(e) = body.find("</string>") else { break };
        out.push(xml_unescape(&body[..e]));
        rest = &body[e..];
    }
    out
}

/// Secrets in a launchd plist: `EnvironmentVariables` entries and `ProgramArguments`.
pub fn scan_plist(text: &str) -> Vec<Embedded> {
    let mut out = Vec::new();
    for (name, value, _) in plist_dict_pairs(text, "EnvironmentVariables") {
        if let Some(key) = secret_var(&name)
            && !value.trim().is_empty()
        {
            out.push(Embedded {
                key,
                name,
                place: Place::PlistEnvironment,
                secret: Secret::new(value.trim()),
            });
        }
    }
    let args = plist_array_strings(text, "ProgramArguments");
    let mut found = Vec::new();
    find_in_command(&args.iter().map(|a| quote_word(a)).collect::<Vec<_>>().join(" "), 0, &mut found);
    out.extend(found.into_iter().map(|mut e| {
        e.place = Place::PlistArgument;
        e
    }));
    out
}

/// The plist text without secret `EnvironmentVariables` entries.
pub fn strip_plist(text: &str) -> String {
    let mut ranges: Vec<_> = plist_dict_pairs(text, "EnvironmentVariables")
        .into_iter()
        .filter(|(name, _, _)| secret_var(name).is_some())
        .map(|(_, _, range)| range)
        .collect();
    ranges.sort_by_key(|r| std::cmp::Reverse(r.start));
    let mut out = text.to_owned();
    for range in ranges {
        // Also drop the indentation and newline around the pair.
        let line_start = out[..range.start].rfind('\n').map_or(range.start, |i| i + 1);
        let start = if out[line_start..range.start].trim().is_empty() { line_start } else { range.start };
        let end = if out[range.end..].starts_with('\n') { range.end + 1 } else { range.end };
        out.replace_range(start..end, "");
    }
    out
}

/// What happened to one embedded secret when it was moved into the picoclaw files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Adoption {
    /// It was written to the file (it was not set there).
    Stored {
        /// File and key, e.g. `.security.yml:gateway.token`.
        destination: String,
    },
    /// The file already holds the same value.
    AlreadyThere {
        /// File and key.
        destination: String,
    },
    /// The file holds a different value; it was kept, the embedded one was not written.
    Conflict {
        /// File and key.
        destination: String,
        /// Fingerprint of the value the file holds.
        file_fingerprint: Fingerprint,
    },
    /// The definition sets the key twice with different values; nothing was written.
    Ambiguous,
}

/// Moves embedded secrets into `.security.yml` (launcher token: `launcher-config.json`)
/// at the same key, so a client holding the value keeps working once the unit no longer
/// carries it. A value already in the file is never overwritten. Files that do not parse
/// are left untouched (error).
pub fn adopt(paths: &picoclaw_config::Paths, found: &[Embedded]) -> Result<Vec<Adoption>, CredentialError> {
    let security_path = paths.security_file();
    let mut tree: Option<Value> = None;
    let mut dirty = false;
    let mut outcomes = Vec::with_capacity(found.len());
    for e in found {
        let ambiguous = found.iter().any(|o| o.key.path == e.key.path && o.secret != e.secret);
        if ambiguous {
            outcomes.push(Adoption::Ambiguous);
            continue;
        }
        match e.key.home {
            Home::Config => {
                if tree.is_none() {
                    tree = Some(read_security_tree(&security_path)?);
                }
                let Some(t) = tree.as_mut() else { continue };
                let destination = format!(".security.yml:{}", e.key.file_key);
                let existing = get_path(t, e.key.file_key)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty());
                match existing {
                    None => {
                        set_path(t, e.key.file_key, Value::from(e.secret.expose()));
                        dirty = true;
                        outcomes.push(Adoption::Stored { destination });
                    }
                    Some(v) if e.secret.matches(v) => outcomes.push(Adoption::AlreadyThere { destination }),
                    Some(v) => outcomes.push(Adoption::Conflict {
                        destination,
                        file_fingerprint: Secret::new(v).fingerprint(),
                    }),
                }
            }
            Home::Launcher => {
                let path = paths.launcher_file();
                let destination = format!("launcher-config.json:{}", e.key.file_key);
                let existing = read_bounded(&path)
                    .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                    .and_then(|v| v.get(e.key.file_key).and_then(Value::as_str).map(Secret::new))
                    .filter(|s| !s.is_empty());
                match existing {
                    None => {
                        crate::launcher::store(&path, &e.secret)?;
                        outcomes.push(Adoption::Stored { destination });
                    }
                    Some(v) if v == e.secret => outcomes.push(Adoption::AlreadyThere { destination }),
                    Some(v) => {
                        outcomes.push(Adoption::Conflict { destination, file_fingerprint: v.fingerprint() })
                    }
                }
            }
        }
    }
    if dirty && let Some(t) = &tree {
        write_security_tree(&security_path, t)?;
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIT: &str = "[Service]\n\
        ExecStart=/usr/bin/picoclaw gateway --token=argtok\n\
        Environment=PICOCLAW_HOME=/h \"PICOCLAW_GATEWAY_TOKEN=envtok\"\n\
        Environment=PICOCLAW_CHANNELS_PICO_TOKEN=picotok\n\
        Environment=OTHER=1\n";

    #[test]
    fn finds_environment_and_exec_tokens() {
        let found = scan_systemd(UNIT, Path::new("/nonexistent"));
        let names: Vec<_> = found.iter().map(|e| (e.name.as_str(), e.key.path)).collect();
        assert_eq!(
            names,
            [
                ("--token", "gateway.token"),
                ("PICOCLAW_GATEWAY_TOKEN", "gateway.token"),
                ("PICOCLAW_CHANNELS_PICO_TOKEN", "channels.pico.token")
            ]
        );
        assert!(found[1].secret.matches("envtok"));
    }

    #[test]
    fn strip_removes_only_secret_assignments() {
        let stripped = strip_systemd(UNIT);
        assert!(stripped.contains("Environment=PICOCLAW_HOME=/h\n"), "{stripped}");
        assert!(!stripped.contains("envtok") && !stripped.contains("picotok"), "{stripped}");
        assert!(stripped.contains("Environment=OTHER=1\n"));
        // The ExecStart argument cannot be edited safely and remains visible to a re-scan.
        assert_eq!(scan_systemd(&stripped, Path::new("/")).len(), 1);
    }

    #[test]
    fn sh_c_scripts_are_searched() {
        let unit = "[Service]\nExecStart=/bin/sh -c \"PICOCLAW_GATEWAY_TOKEN=abc exec picoclaw gateway\"\n";
        let found = scan_systemd(unit, Path::new("/"));
        assert_eq!(found.len(), 1);
        assert!(found[0].secret.matches("abc"));
    }

    #[test]
    fn environment_files_are_read_and_stripped() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("gw.env");
        std::fs::write(&env, "# c\nPICOCLAW_GATEWAY_TOKEN=\"fromfile\"\nKEEP=1\n").unwrap();
        let unit = "[Service]\nEnvironmentFile=-%h/gw.env\n";
        let found = scan_systemd(unit, dir.path());
        assert_eq!(found.len(), 1);
        assert!(found[0].secret.matches("fromfile"));
        assert!(strip_env_file(&env).unwrap());
        assert_eq!(std::fs::read_to_string(&env).unwrap(), "# c\nKEEP=1\n");
        assert!(!strip_env_file(&env).unwrap());
    }

    #[test]
    fn plist_environment_is_found_and_stripped() {
        let plist = "<dict>\n<key>EnvironmentVariables</key>\n<dict>\n  <key>PICOCLAW_HOME</key>\n  <string>/h</string>\n  <key>PICOCLAW_GATEWAY_TOKEN</key>\n  <string>a&amp;b</string>\n</dict>\n<key>ProgramArguments</key>\n<array><string>/bin/picoclaw</string><string>gateway</string></array>\n</dict>\n";
        let found = scan_plist(plist);
        assert_eq!(found.len(), 1);
        assert!(found[0].secret.matches("a&b"));
        let stripped = strip_plist(plist);
        assert!(scan_plist(&stripped).is_empty(), "{stripped}");
        assert!(stripped.contains("<key>PICOCLAW_HOME</key>"));
    }

    #[test]
    fn adopt_stores_keeps_and_reports_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let paths = picoclaw_config::Paths::at(dir.path());
        let found = scan_systemd(
            "[Service]\nEnvironment=PICOCLAW_GATEWAY_TOKEN=unit-gw PICOCLAW_CHANNELS_PICO_TOKEN=unit-pico\n",
            dir.path(),
        );
        std::fs::write(paths.security_file(), "channels:\n  pico:\n    token: other\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(paths.security_file(), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let outcomes = adopt(&paths, &found).unwrap();
        assert!(
            matches!(&outcomes[0], Adoption::Stored { destination } if destination == ".security.yml:gateway.token")
        );
        assert!(matches!(&outcomes[1], Adoption::Conflict { .. }));
        let tree = read_security_tree(&paths.security_file()).unwrap();
        assert_eq!(get_path(&tree, "gateway.token").and_then(Value::as_str), Some("unit-gw"));
        assert_eq!(get_path(&tree, "channels.pico.token").and_then(Value::as_str), Some("other"));
        assert!(matches!(adopt(&paths, &found[..1]).unwrap()[0], Adoption::AlreadyThere { .. }));
    }
}
