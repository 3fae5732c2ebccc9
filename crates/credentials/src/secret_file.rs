//! Reading one secret from a file someone else owns: a `PICOCLAW_<NAME>_FILE` path or a
//! file of the systemd credentials directory (`$CREDENTIALS_DIRECTORY`, `LoadCredential=`),
//! including a Kubernetes Secret volume's `..data` symlinks.
//!
//! The file holds the secret and nothing else. Surrounding whitespace (the trailing newline
//! of `echo … > file` or `kubectl create secret --from-file`) is trimmed; an empty file, a
//! file larger than [`SECRET_FILE_MAX_BYTES`] or one that is not UTF-8 is an error naming the
//! source and the path, never the content.

use std::io::Read;
use std::path::Path;

use picoclaw_config::Source;
use picoclaw_config::schema::SECRET_FILE_MAX_BYTES;

use crate::error::CredentialError;
use crate::secret::Secret;

/// Reads the secret at `path`, found through `source`.
pub(crate) fn read(source: &Source, path: &Path) -> Result<Secret, CredentialError> {
    let err = |message: String| CredentialError::SecretFile {
        origin: source.to_string(),
        path: path.display().to_string(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| err(format!("cannot open it: {e}")))?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(err("it is a directory; expected a file holding only the secret".into()));
    }
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    file.take(SECRET_FILE_MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(format!("cannot read it: {e}")))?;
    if bytes.len() as u64 > SECRET_FILE_MAX_BYTES {
        return Err(err(format!(
            "it is larger than {SECRET_FILE_MAX_BYTES} bytes; expected a file holding only the secret"
        )));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| err("it is not UTF-8 text".into()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(err("it is empty; expected the secret (a trailing newline is trimmed)".into()));
    }
    if secret.contains(['\n', '\r']) {
        return Err(err("it holds more than one line; expected only the secret".into()));
    }
    Ok(Secret::new(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_text(content: &[u8]) -> Result<Secret, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, content).unwrap();
        read(&Source::EnvFile("PICOCLAW_GATEWAY_TOKEN_FILE"), &path).map_err(|e| e.to_string())
    }

    #[test]
    fn trims_one_secret_and_refuses_what_is_not_one() {
        assert!(read_text(b"tok-3b7e1c9a5d2f4e60\n").unwrap().matches("tok-3b7e1c9a5d2f4e60"));
        let empty = read_text(b" \n").unwrap_err();
        assert!(empty.contains("file:$PICOCLAW_GATEWAY_TOKEN_FILE") && empty.contains("empty"), "{empty}");
        let big = read_text(&vec![b'a'; 20_000]).unwrap_err();
        assert!(big.contains("larger than 16384 bytes"), "{big}");
        assert!(!big.contains("aaaa"), "{big}");
        let two = read_text(b"line-one-secret\nline-two-secret\n").unwrap_err();
        assert!(two.contains("more than one line") && !two.contains("line-one-secret"), "{two}");
        let missing = read(&Source::Credential("picoclaw-pico-token"), Path::new("/nonexistent/picoclaw-x"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("credential:picoclaw-pico-token") && missing.contains("/nonexistent"),
            "{missing}"
        );
    }
}
