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
    /// A shorter block repeated.
    Repeated,
    /// Too short for its alphabet to hold 128 random bits.
    LowEntropy,
}

impl std::fmt::Display for Weakness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Weakness::Placeholder => {
                f.write_str("it is a placeholder value from documentation or a template")
            }
            Weakness::Short(n) => write!(f, "it is only {n} characters long (at least {MIN_LEN} expected)"),
            Weakness::LowVariety => f.write_str("it uses too few distinct characters to be random"),
            Weakness::Repeated => f.write_str("it repeats a shorter block"),
            Weakness::LowEntropy => f.write_str("it is too short for its characters to hold 128 random bits"),
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
    let chars: Vec<char> = value.chars().collect();
    let distinct: BTreeSet<char> = chars.iter().copied().collect();
    if distinct.len() < 8 {
        return Some(Weakness::LowVariety);
    }
    if repeats(&chars) {
        return Some(Weakness::Repeated);
    }
    if estimated_bits(&chars) < 128.0 {
        return Some(Weakness::LowEntropy);
    }
    None
}

/// True when the text is a shorter block repeated (`abcdefgh` four times), or one half
/// equal to the other.
fn repeats(chars: &[char]) -> bool {
    (1..=chars.len() / 2).any(|period| chars.iter().skip(period).zip(chars).all(|(a, b)| a == b))
}

/// A generous estimate of the bits a random token of this length and alphabet would
/// carry: length × log2 of the alphabet its character classes span (hex digits: 16;
/// lower case: 26; mixed case: 52; with digits: 62; with anything else: 94). A value
/// below 128 cannot be 128 random bits, however it was made.
fn estimated_bits(chars: &[char]) -> f64 {
    let hex = chars.iter().all(|c| c.is_ascii_hexdigit());
    let lower = chars.iter().any(char::is_ascii_lowercase);
    let upper = chars.iter().any(char::is_ascii_uppercase);
    let digit = chars.iter().any(char::is_ascii_digit);
    let other = chars.iter().any(|c| !c.is_ascii_alphanumeric());
    let alphabet: f64 = if hex {
        16.0
    } else if other {
        94.0
    } else {
        (if lower { 26.0 } else { 0.0 }) + (if upper { 26.0 } else { 0.0 }) + (if digit { 10.0 } else { 0.0 })
    };
    chars.len() as f64 * alphabet.max(2.0).log2()
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
        assert_eq!(w(&"abcdefgh".repeat(4)), Some(Weakness::Repeated));
        assert_eq!(w(&"0123456789abcdef".repeat(2)), Some(Weakness::Repeated));
        assert_eq!(w("3f9a0c21d4e5b6a7980f1e2d3c4b5a69"), None, "exactly 128 bits of hex");
        assert_eq!(w("pico-token-for-security-tests-0123456789abcdef"), None);
    }
}
