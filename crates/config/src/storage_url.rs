//! `storage.url`: where a server database keeps the sessions of several gateway replicas
//! (`postgres://user@host[:port]/database`). The password never goes in it: a URL with one
//! is refused, and the password is the credential `storage.password`
//! (`PICOCLAW_STORAGE_PASSWORD`, `PICOCLAW_STORAGE_PASSWORD_FILE`, `.security.yml`).

use std::fmt;

/// A parsed `postgres://` URL without a password.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageUrl {
    /// The role to log in as.
    pub user: String,
    /// Host name or address (an IPv6 address without brackets).
    pub host: String,
    /// TCP port (5432 when the URL has none).
    pub port: u16,
    /// Database name.
    pub database: String,
}

/// Why a `storage.url` was refused (never holds the value: it may carry a password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageUrlError(pub String);

impl fmt::Display for StorageUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest accepted URL.
const MAX_LEN: usize = 512;

fn name_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

impl StorageUrl {
    /// What a value must look like.
    pub const EXPECTED: &'static str = "postgres://user@host[:port]/database (the password goes in PICOCLAW_STORAGE_PASSWORD, PICOCLAW_STORAGE_PASSWORD_FILE or storage.password in .security.yml)";

    /// Parses `postgres://user@host[:port]/database` (or `postgresql://`).
    pub fn parse(raw: &str) -> Result<StorageUrl, StorageUrlError> {
        let bad = |why: &str| Err(StorageUrlError(format!("{why}; expected {}", StorageUrl::EXPECTED)));
        if raw.len() > MAX_LEN {
            return bad("longer than 512 bytes");
        }
        let Some(rest) = raw.strip_prefix("postgres://").or_else(|| raw.strip_prefix("postgresql://")) else {
            return bad("only postgres:// URLs are supported");
        };
        if rest.contains(['?', '#']) {
            return bad("connection options (?…) are not supported");
        }
        let Some((userinfo, rest)) = rest.rsplit_once('@') else {
            return bad("the user is missing");
        };
        if userinfo.contains(':') {
            return Err(StorageUrlError(
                "a password inside storage.url is refused (it would show in config show and logs): \
                 put it in PICOCLAW_STORAGE_PASSWORD, PICOCLAW_STORAGE_PASSWORD_FILE or storage.password in .security.yml"
                    .into(),
            ));
        }
        if !name_ok(userinfo) {
            return bad("the user must be 1-63 letters, digits, _ - or .");
        }
        let Some((authority, database)) = rest.split_once('/') else {
            return bad("the database is missing");
        };
        if !name_ok(database) {
            return bad("the database must be 1-63 letters, digits, _ - or .");
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else { return bad("an unclosed [ in the host") };
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty()
            || host.len() > 253
            || !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:".contains(&b))
        {
            return bad("the host must be a name or an address");
        }
        let port = match port {
            None => 5432,
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return bad("the port must be between 1 and 65535"),
            },
        };
        Ok(StorageUrl {
            user: userinfo.to_owned(),
            host: host.to_owned(),
            port,
            database: database.to_owned(),
        })
    }
}

impl fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        write!(f, "postgres://{}@{host}:{}/{}", self.user, self.port, self.database)
    }
}

impl fmt::Debug for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StorageUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_supported_forms() {
        let u = StorageUrl::parse("postgres://pico@db.internal:6543/picoclaw").unwrap();
        assert_eq!(
            (u.user.as_str(), u.host.as_str(), u.port, u.database.as_str()),
            ("pico", "db.internal", 6543, "picoclaw")
        );
        assert_eq!(StorageUrl::parse("postgresql://a@h/d").unwrap().port, 5432);
        let v6 = StorageUrl::parse("postgres://a@[::1]:5/d").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 5));
        assert_eq!(v6.to_string(), "postgres://a@[::1]:5/d");
    }

    #[test]
    fn a_password_is_refused_and_never_echoed() {
        let e = StorageUrl::parse("postgres://pico:HUNTER2CANARY@h/d").unwrap_err();
        assert!(e.0.contains("PICOCLAW_STORAGE_PASSWORD"), "{e}");
        assert!(!e.0.contains("HUNTER2CANARY"), "{e}");
    }

    #[test]
    fn malformed_urls_say_what_is_expected() {
        for bad in [
            "mysql://a@h/d",
            "postgres://h/d",
            "postgres://a@h",
            "postgres://a@h:0/d",
            "postgres://a@h:99999/d",
            "postgres://a@h/d?sslmode=require",
            "postgres://a@/d",
            "postgres://a b@h/d",
        ] {
            let e = StorageUrl::parse(bad).unwrap_err();
            assert!(e.0.contains("expected postgres://"), "{bad}: {e}");
        }
    }
}
