//! Is a token strong enough to guard a gateway? Catches the values people paste from
//! documentation ("your-secure-token-here"), sentinels ("undefined", "changeme") and
//! short or low-variety strings. The verdict names the problem, never the value.

use std::collections::BTreeSet;

use crate::secret::Secret;

/// Shortest token accepted as strong: 128 bits as hex.
pub const MIN_LEN: usize = 32;

/// Values copied from docs and templates, and sentinels a broken script produces.
/// Compared case-insensitively after trimming; `-`/`_` variations count.
const PLACEHOLDERS: &[&str] = &[
    "your-secure-token-here",
    "your-token",
    "your-token-here",
    "your-fixed-launcher-token",
    "your-gateway-token",
    "change-me",
    "changeme",
    "change-this",
    "replace-me",
    "secret",
    "token",
    "password",
    "test",
    "example",
    "undefined",
    "null",
    "none",
    "xxx",
    "todo",
];

/// Why a token is weak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Weakness {
    /// A documentation placeholder or sentinel value.
    Placeholder,
    /// Shorter than [`MIN_LEN`] characters (the length is not secret-revealing).
    Short(usize),
    /// Too few distinct characters to be random.
    LowVariety,
}

impl std::fmt::Display for Weakness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Weakness::Placeholder => {
                f.write_str("it is a placeholder value from documentation or a template")
            }
            Weakness::Short(n) => write!(f, "it is only {n} characters long (at least {MIN_LEN} expected)"),
            Weakness::LowVariety => f.write_str("it uses too few distinct characters to be random"),
        }
    }
}

/// The first weakness of `secret`, or `None` when it looks like a random token.
pub fn weakness(secret: &Secret) -> Option<Weakness> {
    let value = secret.expose().trim().to_ascii_lowercase();
    let normalized = value.replace('_', "-");
    let templated = [
        "your-",
        "replace-with",
        "replace-me",
        "change-me",
        "changeme",
        "placeholder",
        "openssl-rand",
        "example",
    ]
    .iter()
    .any(|p| normalized.contains(p));
    if templated || PLACEHOLDERS.contains(&normalized.as_str()) {
        return Some(Weakness::Placeholder);
    }
    let len = value.chars().count();
    if len < MIN_LEN {
        return Some(Weakness::Short(len));
    }
    let distinct: BTreeSet<char> = value.chars().collect();
    if distinct.len() < 8 {
        return Some(Weakness::LowVariety);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let w = |s: &str| weakness(&Secret::new(s));
        assert_eq!(w("your-secure-token-here"), Some(Weakness::Placeholder));
        assert_eq!(w("CHANGE_ME"), Some(Weakness::Placeholder));
        assert_eq!(w("abc123"), Some(Weakness::Short(6)));
        assert_eq!(w(&"ab".repeat(20)), Some(Weakness::LowVariety));
        assert_eq!(w("REPLACE_WITH_THE_OUTPUT_OF_openssl_rand_hex_32"), Some(Weakness::Placeholder));
        assert_eq!(w(Secret::generate().unwrap().expose()), None);
    }
}
