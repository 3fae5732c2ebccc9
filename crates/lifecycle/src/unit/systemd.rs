//! systemd unit syntax: words and quoting (`systemd.syntax(7)`, the subset units use in
//! practice), logical lines, specifiers, and the secrets `Environment=`, `Exec*=` and
//! `EnvironmentFile=` carry.

use std::path::{Path, PathBuf};

use picoclaw_config::files::{SECRET_MODE, write_atomic};
use picoclaw_config::schema;
use picoclaw_credentials::{CredentialError, Secret};

use super::{Embedded, Place, mode_or, read_secret_text, secret_var};

/// What a word written into a unit must escape besides quotes and backslashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// Nothing more: the word was read from a unit and its `%` specifiers are already
    /// escaped (a word kept while rewriting a line).
    Quotes,
    /// `%` (a specifier in every setting): a value for `Environment=`.
    Setting,
    /// `%` and `$` (expanded in command lines): a word of `ExecStart=`.
    Command,
}

/// The one quoter: `word` as a unit word, double-quoted when it holds whitespace, a quote,
/// a backslash or anything `escape` had to escape.
pub fn quote(word: &str, escape: Escape) -> String {
    let mut escaped = word.to_owned();
    if escape != Escape::Quotes {
        escaped = escaped.replace('%', "%%");
    }
    escaped = escaped.replace('\\', "\\\\").replace('"', "\\\"");
    if escape == Escape::Command {
        escaped = escaped.replace('$', "$$");
    }
    if escaped.contains(char::is_whitespace) || escaped.contains('\'') || escaped != word {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

/// Splits a systemd value into words: whitespace separated, honouring single and double
/// quotes and backslash escapes.
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

/// The flags that carry the gateway token on a command line.
fn is_token_flag(word: &str) -> bool {
    word == "--token" || word == "--gateway-token"
}

/// Finds `NAME=value` for every secret variable name inside free text (an `ExecStart=`
/// command line, possibly a `sh -c "..."` script), plus `--token value` / `--token=value`.
pub(super) fn find_in_command(command: &str, place: &Place, out: &mut Vec<Embedded>) {
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
    let found = |key, name: &str, value: &str| Embedded {
        key,
        name: name.to_owned(),
        place: place.clone(),
        secret: Secret::new(value),
    };
    let mut iter = all.iter().peekable();
    while let Some(word) = iter.next() {
        let word = word.trim_matches(|c| c == ';' || c == '&');
        if let Some((name, value)) = word.split_once('=') {
            let name = name.trim_start_matches("export ").trim();
            if let Some(key) = secret_var(name)
                && !value.trim().is_empty()
            {
                out.push(found(key, name, value.trim()));
                continue;
            }
            if is_token_flag(name) && !value.is_empty() {
                out.push(found(&schema::GATEWAY_TOKEN, name, value));
            }
        } else if is_token_flag(word)
            && let Some(value) = iter.peek()
        {
            out.push(found(&schema::GATEWAY_TOKEN, word, value));
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

/// The last non-empty value a plain `Environment=` assignment gives `name` (`%%`
/// unescaped), across `text` (a unit and its drop-ins).
pub fn environment_value(text: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Environment="))
        .flat_map(split_words)
        .filter_map(|w| w.strip_prefix(&prefix).map(|v| v.replace("%%", "%")))
        .rfind(|v| !v.is_empty())
}

/// The `LoadCredential=ID:PATH` lines of a unit, in order (the ID is a credential name,
/// the path the file systemd copies into `$CREDENTIALS_DIRECTORY` at start; no value).
pub fn load_credentials(text: &str) -> Vec<(String, PathBuf)> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("LoadCredential="))
        .flat_map(split_words)
        .filter_map(|w| {
            let (id, path) = w.split_once(':')?;
            Some((id.to_owned(), PathBuf::from(path.replace("%%", "%"))))
        })
        .collect()
}

/// The binary the first `ExecStart=` starts (prefixes `-@:+!` dropped, `$$` and `%%`
/// unescaped).
pub fn exec_binary(text: &str) -> Option<PathBuf> {
    let line = text.lines().find_map(|l| l.trim().strip_prefix("ExecStart="))?;
    let word = split_words(line).into_iter().next()?;
    let word = word.trim_start_matches(['-', '@', ':', '+', '!']);
    Some(PathBuf::from(word.replace("$$", "$").replace("%%", "%")))
}

/// Secrets in a systemd unit (or drop-in): `Environment=` assignments, `Exec*=` command
/// lines, and every file named by `EnvironmentFile=` (`%h` = `user_home`).
pub fn scan(unit_text: &str, user_home: &Path) -> Vec<Embedded> {
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
                find_in_command(&line.value, &Place::ExecArgument { line: line.number }, &mut out);
            }
            // `SetCredential=picoclaw-gateway-token:<value>` puts the value in the unit, as
            // readable as `Environment=` (`SetCredentialEncrypted=` does not).
            "SetCredential" => {
                if let Some((id, value)) = line.value.split_once(':')
                    && let Some((_, _, key)) = schema::secret_files().find(|(_, name, _)| *name == id.trim())
                    && !value.trim().is_empty()
                {
                    out.push(Embedded {
                        key,
                        name: id.trim().to_owned(),
                        place: Place::SetCredential { line: line.number },
                        secret: Secret::new(value.trim()),
                    });
                }
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
    let Some(text) = read_secret_text(path) else { return Vec::new() };
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

/// The unit text without any `Environment=` assignment of a secret variable, nor a
/// `SetCredential=` line of one of picoclaw's credentials. Lines left
/// with no assignment are dropped; lines without secrets are kept byte for byte.
/// `Exec*=` lines are not changed (a command line cannot be edited safely): re-scan the
/// result to see whether secrets remain.
pub fn strip(unit_text: &str) -> String {
    let mut out = String::with_capacity(unit_text.len());
    for raw in unit_text.split_inclusive('\n') {
        let line = raw.trim();
        if let Some(value) = line.strip_prefix("SetCredential=")
            && let Some((id, _)) = value.split_once(':')
            && schema::secret_files().any(|(_, name, _)| name == id.trim())
        {
            continue;
        }
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
            let joined: Vec<String> = kept.iter().map(|w| quote(w, Escape::Quotes)).collect();
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
    let Some(text) = read_secret_text(path) else { return Ok(false) };
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
        write_atomic(path, out.as_bytes(), mode_or(path, SECRET_MODE))?;
    }
    Ok(changed)
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
        let found = scan(UNIT, Path::new("/nonexistent"));
        let names: Vec<_> = found.iter().map(|e| (e.name.as_str(), e.key.path)).collect();
        assert_eq!(
            names,
            [
                ("--token", schema::GATEWAY_TOKEN.path),
                ("PICOCLAW_GATEWAY_TOKEN", schema::GATEWAY_TOKEN.path),
                ("PICOCLAW_CHANNELS_PICO_TOKEN", schema::CHANNELS_PICO_TOKEN.path)
            ]
        );
        assert!(found[1].secret.matches("envtok"));
    }

    #[test]
    fn a_set_credential_value_is_an_embedded_secret() {
        let unit = "[Service]\nLoadCredential=picoclaw-pico-token:/etc/picoclaw/pico\n\
                    SetCredential=picoclaw-gateway-token:inline-secret-value\n\
                    SetCredential=other-app:not-ours\n";
        let found = scan(unit, Path::new("/nonexistent"));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].name, "picoclaw-gateway-token");
        assert_eq!(found[0].place.to_string(), "SetCredential= (line 3)");
        assert_eq!(found[0].secret.expose(), "inline-secret-value");
        let stripped = strip(unit);
        assert!(
            !stripped.contains("inline-secret-value")
                && stripped.contains("SetCredential=other-app:not-ours")
        );
        assert!(stripped.contains("LoadCredential=picoclaw-pico-token:/etc/picoclaw/pico"), "{stripped}");
    }

    #[test]
    fn strip_removes_only_secret_assignments() {
        let stripped = strip(UNIT);
        assert!(stripped.contains("Environment=PICOCLAW_HOME=/h\n"), "{stripped}");
        assert!(!stripped.contains("envtok") && !stripped.contains("picotok"), "{stripped}");
        assert!(stripped.contains("Environment=OTHER=1\n"));
        // The ExecStart argument cannot be edited safely and remains visible to a re-scan.
        assert_eq!(scan(&stripped, Path::new("/")).len(), 1);
    }

    #[test]
    fn sh_c_scripts_are_searched() {
        let unit = "[Service]\nExecStart=/bin/sh -c \"PICOCLAW_GATEWAY_TOKEN=abc exec picoclaw gateway\"\n";
        let found = scan(unit, Path::new("/"));
        assert_eq!(found.len(), 1);
        assert!(found[0].secret.matches("abc"));
    }

    #[test]
    fn environment_files_are_read_and_stripped() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("gw.env");
        std::fs::write(&env, "# c\nPICOCLAW_GATEWAY_TOKEN=\"fromfile\"\nKEEP=1\n").unwrap();
        let unit = "[Service]\nEnvironmentFile=-%h/gw.env\n";
        let found = scan(unit, dir.path());
        assert_eq!(found.len(), 1);
        assert!(found[0].secret.matches("fromfile"));
        assert!(strip_env_file(&env).unwrap());
        assert_eq!(std::fs::read_to_string(&env).unwrap(), "# c\nKEEP=1\n");
        assert!(!strip_env_file(&env).unwrap());
    }

    #[test]
    fn one_quoter_for_read_words_settings_and_commands() {
        // A word read back from a unit keeps its escaped specifiers as they are.
        assert_eq!(quote("A=1", Escape::Quotes), "A=1");
        assert_eq!(quote("A=my 100%%", Escape::Quotes), "\"A=my 100%%\"");
        assert_eq!(quote("A=\"x\"", Escape::Quotes), "\"A=\\\"x\\\"\"");
        // A new value escapes `%`; a command word `$` too.
        assert_eq!(
            quote("PICOCLAW_HOME=/home/u/my 100%", Escape::Setting),
            "\"PICOCLAW_HOME=/home/u/my 100%%\""
        );
        assert_eq!(quote("/opt/bin/picoclaw", Escape::Command), "/opt/bin/picoclaw");
        assert_eq!(quote("/opt/$x/picoclaw", Escape::Command), "\"/opt/$$x/picoclaw\"");
        assert_eq!(quote("/opt/$x", Escape::Setting), "/opt/$x");
        // Quoting round-trips through the reader.
        for word in ["plain", "with space", "q\"uote", "back\\slash", "it's"] {
            assert_eq!(split_words(&quote(word, Escape::Quotes)), [word]);
        }
    }

    #[test]
    fn plain_environment_values_and_the_binary() {
        let unit = "[Service]\nExecStart=-/opt/my$$bin/picoclaw gateway\nEnvironment=\"PICOCLAW_HOME=/h/100%%\"\nEnvironment=PICOCLAW_HOME=\n";
        assert_eq!(environment_value(unit, "PICOCLAW_HOME").as_deref(), Some("/h/100%"));
        assert_eq!(environment_value(unit, "PICOCLAW_CONFIG"), None);
        assert_eq!(exec_binary(unit), Some(PathBuf::from("/opt/my$bin/picoclaw")));
    }
}
