//! The secret type.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A token or API key.
///
/// It has no way to be printed: `Debug` and `Display` write `[redacted]`. The value is
/// read only through [`Secret::expose`], which every call site uses for one reason:
/// sending it to its server, hashing it, or storing it in a 0600 file. The memory is
/// zeroed on drop.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// A fresh random token: 256 bits from the OS CSPRNG, as 64 lowercase hex characters.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut())?;
        Ok(Secret::new(hex::encode(bytes.as_ref())))
    }

    /// The value. Call only to present the secret to its server, to hash it, or to write
    /// it to a private file — never to log or display it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the value.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// The public name of this secret: the first 8 hex characters of its SHA-256.
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_digest(&self.digest())
    }

    /// Constant-time equality: both sides are hashed, then the fixed-length digests are
    /// compared, so neither length nor a common prefix leaks through timing.
    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest().ct_eq(&presented).into()
    }

    /// Length in bytes (for weak-token checks; reveals nothing useful).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for an empty value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.digest().ct_eq(&other.digest()).into()
    }
}

impl Eq for Secret {}

/// The first 8 hex characters of a secret's SHA-256: enough to tell two tokens apart,
/// useless for recovering either.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 4]);

impl Fingerprint {
    /// From a full SHA-256 digest.
    pub fn of_digest(digest: &[u8; 32]) -> Self {
        Fingerprint([digest[0], digest[1], digest[2], digest[3]])
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("canary-value-123");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{:?}", Some(&s)), "Some(Secret([redacted]))");
    }

    #[test]
    fn fingerprint_is_first_8_hex_of_sha256() {
        // sha256("abc") = ba7816bf...
        assert_eq!(Secret::new("abc").fingerprint().to_string(), "ba7816bf");
    }

    #[test]
    fn matches_is_exact() {
        let s = Secret::new("token-a");
        assert!(s.matches("token-a"));
        assert!(!s.matches("token-a "));
        assert!(!s.matches("pico-token-a"));
        assert!(!s.matches(""));
    }

    #[test]
    fn generated_tokens_are_256_bit_hex_and_distinct() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.expose().chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
