//! A token handed to one client command outside the configuration, for a server that is
//! not this home's (`picoclaw conformance --token-env NAME | --token-stdin`): the value
//! of a named environment variable, or the first line of standard input. Never argv,
//! which every user of the machine can read.

use std::io::BufRead;

use picoclaw_config::EnvSource;
use zeroize::Zeroizing;

use crate::secret::Secret;

/// Longest token accepted from either place (a token is at most a few hundred bytes).
pub const MAX_TOKEN_BYTES: usize = 4096;

/// Why no token could be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandedError {
    /// The variable is not set.
    #[error("the environment variable {0} is not set (it should hold the token)")]
    Unset(String),
    /// The variable or the line is empty (after trimming the line ending).
    #[error("{0} is empty: expected the token")]
    Empty(String),
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("{0} is longer than {MAX_TOKEN_BYTES} bytes: expected one token")]
    TooLong(String),
    /// Not a token that can travel in an HTTP header (control characters, spaces, non-ASCII).
    #[error("{0} contains whitespace, control or non-ASCII characters: expected one token")]
    NotAToken(String),
    /// Reading standard input failed.
    #[error("cannot read the token from standard input: {0}")]
    Read(#[from] std::io::Error),
}

/// The token in the environment variable `name`.
pub fn from_env_variable(env: &dyn EnvSource, name: &str) -> Result<Secret, HandedError> {
    let value = Zeroizing::new(env.var(name).ok_or_else(|| HandedError::Unset(name.to_owned()))?);
    checked(value.as_str(), &format!("the environment variable {name}"))
}

/// The token on the first line of `input` (standard input), its line ending removed.
pub fn from_first_line(input: impl BufRead) -> Result<Secret, HandedError> {
    let mut line = Zeroizing::new(String::new());
    // One byte more than allowed, plus a CRLF, tells "too long" from "exactly the limit".
    input.take(MAX_TOKEN_BYTES as u64 + 3).read_line(&mut line)?;
    let token = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line);
    checked(token, "the first line of standard input")
}

fn checked(value: &str, what: &str) -> Result<Secret, HandedError> {
    if value.is_empty() {
        return Err(HandedError::Empty(what.to_owned()));
    }
    if value.len() > MAX_TOKEN_BYTES {
        return Err(HandedError::TooLong(what.to_owned()));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(HandedError::NotAToken(what.to_owned()));
    }
    Ok(Secret::new(value))
}

#[cfg(test)]
mod tests {
    use picoclaw_config::MapEnv;

    use super::*;

    #[test]
    fn a_variable_is_taken_as_is_and_named_in_errors() {
        let env = MapEnv::new().with("PICO_T", "abc123").with("EMPTY", "").with("SPACE", "a b");
        assert_eq!(from_env_variable(&env, "PICO_T").unwrap().expose(), "abc123");
        let unset = from_env_variable(&env, "NOPE").unwrap_err().to_string();
        assert!(unset.contains("NOPE") && unset.contains("not set"), "{unset}");
        assert!(from_env_variable(&env, "EMPTY").unwrap_err().to_string().contains("EMPTY is empty"));
        let space = from_env_variable(&env, "SPACE").unwrap_err().to_string();
        assert!(space.contains("SPACE") && !space.contains("a b"), "never the value: {space}");
    }

    #[test]
    fn stdin_gives_its_first_line_without_the_line_ending() {
        assert_eq!(from_first_line(&b"tok\nsecond"[..]).unwrap().expose(), "tok");
        assert_eq!(from_first_line(&b"tok\r\n"[..]).unwrap().expose(), "tok");
        assert_eq!(from_first_line(&b"tok"[..]).unwrap().expose(), "tok");
        assert!(matches!(from_first_line(&b"\n"[..]), Err(HandedError::Empty(_))));
        assert!(matches!(from_first_line(&b""[..]), Err(HandedError::Empty(_))));
        let exact = "a".repeat(MAX_TOKEN_BYTES) + "\n";
        assert_eq!(from_first_line(exact.as_bytes()).unwrap().len(), MAX_TOKEN_BYTES);
        let long = "a".repeat(MAX_TOKEN_BYTES + 1) + "\n";
        assert!(matches!(from_first_line(long.as_bytes()), Err(HandedError::TooLong(_))));
    }
}
