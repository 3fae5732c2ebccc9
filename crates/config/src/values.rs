//! Typed values of settings, parsed once at the boundary (file, environment, flag): a
//! value that does not parse never becomes a setting, and the error names the source, the
//! key and what was expected.
//!
//! - [`Host`]: where a server binds / a client dials: `localhost`, `*`, an IP address or a
//!   DNS name. The one interpreter of host strings (gateway bind, launcher bind, the
//!   address in `.picoclaw.pid`).
//! - [`LogLevel`]: `error`, `warn`, `info`, `debug`, `trace` (and upstream's `fatal`).
//! - [`Cidrs`]: networks (`10.0.0.0/8`, `::1`), with `ipnet`.
//! - [`PicoClientUrl`](crate::PicoClientUrl): a `ws://` / `wss://` URL, its userinfo kept
//!   out.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};

use ipnet::IpNet;

/// Where a server binds or a client dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// `localhost`: the loopback interface (IPv4, plus IPv6 when the system has it).
    Localhost,
    /// `*`: every IPv4 interface.
    Any,
    /// An IP address (`127.0.0.1`, `::1`, `[::1]`, `0.0.0.0`).
    Ip(IpAddr),
    /// A DNS name, resolved when used.
    Name(String),
}

/// Why a host string is not a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected localhost, *, an IP address or a host name")]
pub struct HostError;

impl Host {
    /// What a valid value looks like (for error messages).
    pub const EXPECTED: &'static str = "localhost, *, an IP address or a host name";

    /// Parses a host: `localhost` (any case), `*`, an IPv4 or IPv6 address (IPv6 with or
    /// without brackets), or a DNS name of letters, digits, `-` and `.`.
    pub fn parse(text: &str) -> Result<Host, HostError> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("localhost") {
            return Ok(Host::Localhost);
        }
        if text == "*" {
            return Ok(Host::Any);
        }
        let bare = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')).unwrap_or(text);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        };
        let name = text.strip_suffix('.').unwrap_or(text);
        if !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok) {
            return Ok(Host::Name(name.to_ascii_lowercase()));
        }
        Err(HostError)
    }

    /// True when only this machine can reach it.
    pub fn is_loopback(&self) -> bool {
        match self {
            Host::Localhost => true,
            Host::Ip(ip) => canonical(*ip).is_loopback(),
            Host::Any | Host::Name(_) => false,
        }
    }

    /// True for "every interface" (`*`, `0.0.0.0`, `::`).
    pub fn is_any(&self) -> bool {
        match self {
            Host::Any => true,
            Host::Ip(ip) => ip.is_unspecified(),
            Host::Localhost | Host::Name(_) => false,
        }
    }

    /// The addresses to listen on at `port`: the first is required, the others (IPv6
    /// loopback beside IPv4 loopback) are bound when the system has them. A name is
    /// resolved (its first address).
    pub fn bind_addrs(&self, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(match self {
            Host::Localhost => vec![
                SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
            ],
            Host::Any => vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))],
            Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
            Host::Name(name) => {
                let first = (name.as_str(), port).to_socket_addrs()?.next();
                vec![first.ok_or_else(|| std::io::Error::other("the host name resolves to no address"))?]
            }
        })
    }

    /// The loopback address a local client dials to reach a server bound here
    /// (`127.0.0.1` for `localhost` and "every interface"); `None` for another machine.
    pub fn local_dial(&self) -> Option<IpAddr> {
        match self {
            Host::Localhost | Host::Any => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            Host::Ip(ip) if ip.is_unspecified() => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            Host::Ip(ip) if canonical(*ip).is_loopback() => Some(canonical(*ip)),
            Host::Ip(_) | Host::Name(_) => None,
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Localhost => f.write_str("localhost"),
            Host::Any => f.write_str("*"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// How much the gateway and launcher log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// Lifecycle steps, warnings, errors (the default).
    Info,
    /// Per-request detail.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// What a valid value looks like.
    pub const EXPECTED: &'static str = "one of error, warn, info, debug, trace (or fatal, read as error)";

    /// Parses a level. Upstream PicoClaw also accepts `fatal`; picoclaw reads it as
    /// `error` (the most quiet level it has).
    pub fn parse(text: &str) -> Option<LogLevel> {
        Some(match text.trim().to_ascii_lowercase().as_str() {
            "fatal" | "error" => LogLevel::Error,
            "warn" | "warning" => LogLevel::Warn,
            "info" => LogLevel::Info,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => return None,
        })
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The path prefix a server is hosted under behind a reverse proxy (`/picoclaw`), or the
/// root (empty). Parsed, never validated later: a value always starts with `/`, has no
/// trailing `/`, no empty, `.` or `..` segment, no `?`, `#`, `%`, `\\`, whitespace or control
/// character, and is at most [`BasePath::MAX_LEN`] bytes, so it can be put in a route, a
/// `Location`, a cookie `Path` and a proxy configuration as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BasePath(String);

/// A `base_path` value that is not a valid prefix; the message says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BasePathError(&'static str);

impl BasePath {
    /// What a valid value looks like.
    pub const EXPECTED: &'static str = "empty (the root) or a path such as /picoclaw: starting with /, no trailing /, no . or .. segment, \
         only letters, digits and - _ . ~ / (at most 128 bytes)";
    /// The longest prefix accepted.
    pub const MAX_LEN: usize = 128;

    /// Parses a prefix; `""` and `"/"` are the root.
    pub fn parse(text: &str) -> Result<BasePath, BasePathError> {
        if text.is_empty() || text == "/" {
            return Ok(BasePath::default());
        }
        if text.len() > Self::MAX_LEN {
            return Err(BasePathError("longer than 128 bytes"));
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(BasePathError("it must start with /"));
        };
        if rest.ends_with('/') {
            return Err(BasePathError("it must not end with /"));
        }
        if !text.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~/".contains(&b)) {
            return Err(BasePathError("only letters, digits and - _ . ~ / are allowed"));
        }
        if rest.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
            return Err(BasePathError("it must not have an empty, . or .. segment"));
        }
        Ok(BasePath(text.to_owned()))
    }

    /// The prefix (`""` for the root, else `/a/b`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// `path` (which starts with `/`) under the prefix: `/picoclaw` + `/login`.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0)
    }

    /// The part of `path` below the prefix (`/picoclaw/login` → `/login`, `/picoclaw/` →
    /// `/`), or `None` when `path` is not under it (`/picoclaw` itself, `/picoclawx`).
    pub fn strip<'a>(&self, path: &'a str) -> Option<&'a str> {
        let rest = path.strip_prefix(self.0.as_str())?;
        rest.starts_with('/').then_some(rest)
    }
}

impl fmt::Display for BasePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "/" } else { &self.0 })
    }
}

/// A list of networks. An address without a prefix is that one address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cidrs(Vec<IpNet>);

impl Cidrs {
    /// What a valid entry looks like.
    pub const EXPECTED: &'static str = "a list of networks such as 10.0.0.0/8, 192.168.1.5 or ::1/128";

    /// Parses one entry (`addr` or `addr/prefix`).
    pub fn parse_one(text: &str) -> Option<IpNet> {
        let text = text.trim();
        text.parse::<IpNet>().ok().or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
    }

    /// Parses a list; `Err` carries the first entry that is not a network.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Cidrs, String> {
        let mut nets = Vec::new();
        for e in entries.into_iter().filter(|e| !e.trim().is_empty()) {
            nets.push(Cidrs::parse_one(e).ok_or_else(|| e.trim().to_owned())?);
        }
        Ok(Cidrs(nets))
    }

    /// Whether `ip` lies in one of the networks (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// No network listed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The networks.
    pub fn nets(&self) -> &[IpNet] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(Host::parse("LocalHost"), Ok(Host::Localhost));
        assert_eq!(Host::parse("*"), Ok(Host::Any));
        assert_eq!(Host::parse("[::1]"), Ok(Host::Ip("::1".parse().unwrap())));
        assert_eq!(Host::parse("gw.example.org."), Ok(Host::Name("gw.example.org".into())));
        for bad in ["", " ", "a b", "-x.org", "host:80", "http://x", "[::1"] {
            assert_eq!(Host::parse(bad), Err(HostError), "{bad:?}");
        }
        assert!(Host::Localhost.is_loopback() && Host::parse("127.0.0.2").unwrap().is_loopback());
        assert!(Host::parse("::ffff:127.0.0.1").unwrap().is_loopback());
        assert!(!Host::Any.is_loopback() && Host::Any.is_any() && Host::parse("0.0.0.0").unwrap().is_any());
        assert_eq!(Host::Any.local_dial(), Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(Host::parse("10.1.2.3").unwrap().local_dial(), None);
        assert_eq!(Host::Localhost.bind_addrs(9).unwrap().len(), 2);
    }

    #[test]
    fn base_paths() {
        assert!(BasePath::parse("").unwrap().is_root());
        assert!(BasePath::parse("/").unwrap().is_root());
        let p = BasePath::parse("/picoclaw").unwrap();
        assert_eq!(p.join("/login"), "/picoclaw/login");
        assert_eq!(p.strip("/picoclaw/assets/app.js"), Some("/assets/app.js"));
        assert_eq!(p.strip("/picoclaw/"), Some("/"));
        assert_eq!(p.strip("/picoclaw"), None);
        assert_eq!(p.strip("/picoclawx/"), None);
        assert_eq!(BasePath::default().strip("/login"), Some("/login"));
        assert!(BasePath::parse("/a/b-c_d.e~f").is_ok());
        for bad in
            ["picoclaw", "/picoclaw/", "/a//b", "/a/../b", "/.", "/a?b", "/a#b", "/a%2e", "/a b", "/a\\b"]
        {
            assert!(BasePath::parse(bad).is_err(), "{bad:?}");
        }
        assert!(BasePath::parse(&format!("/{}", "a".repeat(128))).is_err());
    }

    #[test]
    fn log_levels() {
        assert_eq!(LogLevel::parse("fatal"), Some(LogLevel::Error));
        assert_eq!(LogLevel::parse("WARN"), Some(LogLevel::Warn));
        assert_eq!(LogLevel::parse("verbose"), None);
    }

    #[test]
    fn cidrs() {
        let c = Cidrs::parse(["192.168.1.0/24", "::1", " "]).unwrap();
        assert!(c.contains("192.168.1.77".parse().unwrap()));
        assert!(c.contains("::ffff:192.168.1.5".parse().unwrap()));
        assert!(!c.contains("192.168.2.1".parse().unwrap()));
        assert!(c.contains("::1".parse().unwrap()));
        assert_eq!(Cidrs::parse(["10.0.0.0/33"]), Err("10.0.0.0/33".to_owned()));
        assert_eq!(Cidrs::parse(["nonsense"]), Err("nonsense".to_owned()));
    }
}
