//! launchd property lists, read with the `plist` crate (XML or binary): the secrets in
//! `EnvironmentVariables` and `ProgramArguments`, plain variables, the binary started.

use std::io::Cursor;
use std::path::PathBuf;

use picoclaw_credentials::Secret;

use super::systemd::{Escape, find_in_command, quote};
use super::{Embedded, Place, secret_var};

const ENVIRONMENT: &str = "EnvironmentVariables";
const ARGUMENTS: &str = "ProgramArguments";

/// The top-level dictionary of a plist, or `None` when `text` is not one.
fn parse(text: &str) -> Option<plist::Dictionary> {
    plist::Value::from_reader(Cursor::new(text.as_bytes())).ok()?.into_dictionary()
}

/// The string entries of `EnvironmentVariables`, in file order.
fn environment(dict: &plist::Dictionary) -> Vec<(&str, &str)> {
    let Some(env) = dict.get(ENVIRONMENT).and_then(plist::Value::as_dictionary) else { return Vec::new() };
    env.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_string()?))).collect()
}

/// The string entries of `ProgramArguments`.
fn arguments(dict: &plist::Dictionary) -> Vec<&str> {
    dict.get(ARGUMENTS)
        .and_then(plist::Value::as_array)
        .map(|a| a.iter().filter_map(plist::Value::as_string).collect())
        .unwrap_or_default()
}

/// Secrets in a launchd plist: `EnvironmentVariables` entries and `ProgramArguments`
/// (including a `sh -c` script among them).
pub fn scan(text: &str) -> Vec<Embedded> {
    let Some(dict) = parse(text) else { return Vec::new() };
    let mut out = Vec::new();
    for (name, value) in environment(&dict) {
        if let Some(key) = secret_var(name)
            && !value.trim().is_empty()
        {
            out.push(Embedded {
                key,
                name: name.to_owned(),
                place: Place::PlistEnvironment,
                secret: Secret::new(value.trim()),
            });
        }
    }
    let command: Vec<String> = arguments(&dict).iter().map(|a| quote(a, Escape::Quotes)).collect();
    find_in_command(&command.join(" "), &Place::PlistArgument, &mut out);
    out
}

/// The plist without secret `EnvironmentVariables` entries, written as XML; `text`
/// unchanged when it has none (or is not a plist). `ProgramArguments` are not changed
/// (a command line cannot be edited safely): re-scan the result to see what remains.
pub fn strip(text: &str) -> String {
    let Some(mut dict) = parse(text) else { return text.to_owned() };
    let Some(env) = dict.get_mut(ENVIRONMENT).and_then(plist::Value::as_dictionary_mut) else {
        return text.to_owned();
    };
    let secret: Vec<String> = env.keys().filter(|k| secret_var(k).is_some()).cloned().collect();
    if secret.is_empty() {
        return text.to_owned();
    }
    for key in &secret {
        env.remove(key);
    }
    let mut out = Vec::new();
    if plist::Value::Dictionary(dict).to_writer_xml(&mut out).is_err() {
        return text.to_owned();
    }
    let mut out = String::from_utf8(out).unwrap_or_else(|_| text.to_owned());
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// The value `EnvironmentVariables` gives `name`.
pub fn environment_value(text: &str, name: &str) -> Option<String> {
    let dict = parse(text)?;
    environment(&dict).into_iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_owned())
}

/// The binary it starts: the first of `ProgramArguments`.
pub fn program(text: &str) -> Option<PathBuf> {
    let dict = parse(text)?;
    arguments(&dict).first().map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLIST: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict>\n<key>EnvironmentVariables</key>\n<dict>\n  <key>PICOCLAW_HOME</key>\n  <string>/h</string>\n  <key>PICOCLAW_GATEWAY_TOKEN</key>\n  <string>a&amp;b</string>\n</dict>\n<key>ProgramArguments</key>\n<array><string>/bin/picoclaw</string><string>gateway</string></array>\n</dict>\n</plist>\n";

    #[test]
    fn environment_is_found_and_stripped() {
        let found = scan(PLIST);
        assert_eq!(found.len(), 1);
        assert!(found[0].secret.matches("a&b"));
        let stripped = strip(PLIST);
        assert!(scan(&stripped).is_empty(), "{stripped}");
        assert!(stripped.contains("<key>PICOCLAW_HOME</key>"), "{stripped}");
        assert!(stripped.starts_with("<?xml") && stripped.ends_with("</plist>\n"), "{stripped}");
        assert_eq!(environment_value(&stripped, "PICOCLAW_HOME").as_deref(), Some("/h"));
        assert_eq!(program(&stripped), Some(PathBuf::from("/bin/picoclaw")));
        assert_eq!(strip(&stripped), stripped, "nothing left to strip: unchanged");
    }

    #[test]
    fn tokens_in_program_arguments_are_found_not_stripped() {
        let plist = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict><key>ProgramArguments</key><array><string>/bin/sh</string><string>-c</string><string>PICOCLAW_GATEWAY_TOKEN=abc exec picoclaw gateway</string></array></dict></plist>\n";
        let found = scan(plist);
        assert_eq!(found.len(), 1);
        assert!(found[0].secret.matches("abc"));
        assert_eq!(found[0].place, Place::PlistArgument);
        assert_eq!(strip(plist), plist);
    }

    #[test]
    fn text_that_is_not_a_plist_has_nothing() {
        assert!(scan("<plist><dict><key>x</key>").is_empty());
        assert_eq!(strip("not a plist"), "not a plist");
        assert_eq!(program("[Service]\n"), None);
    }
}
