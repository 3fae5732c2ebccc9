//! Known-good reverse-proxy configurations (`picoclaw proxy-config nginx|caddy|traefik`):
//! the dashboard under `launcher.base_path`, optionally the gateway's Pico socket under
//! `<base>/gateway/pico/ws` and its OpenAI-compatible API under `<base>/gateway/v1/`, with what every proxy needs for picoclaw: the WebSocket
//! upgrade, `X-Forwarded-For` overwritten with the peer address (never appended to what
//! the client sent), `X-Forwarded-Proto` and `X-Forwarded-Host`, no response buffering,
//! and idle timeouts above `channels.pico.read_timeout`, so the gateway's own timeout
//! closes an idle socket first. Every value put into a configuration is parsed first
//! ([`PublicUrl`], [`BasePath`]): nothing a user types can add a directive.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use picoclaw_config::{BasePath, Host};

/// The proxies a configuration can be printed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyKind {
    /// nginx: a file for `/etc/nginx/conf.d/` (http context).
    Nginx,
    /// Caddy: a Caddyfile.
    Caddy,
    /// Traefik: a dynamic configuration file (YAML, file provider).
    Traefik,
}

/// Where users reach the proxy: `http(s)://host[:port]`, nothing else (no path, query or
/// user info).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    /// `https`.
    pub https: bool,
    /// The host as written in a URL (`chat.example.org`, `127.0.0.1`, `[::1]`).
    pub host: String,
    /// Whether the host is an IP address (the proxy then listens on that address only).
    pub ip: Option<IpAddr>,
    /// The port (80 or 443 when not given).
    pub port: u16,
}

/// A `--public-url` that is not `http(s)://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--public-url: {0}; expected http://HOST[:PORT] or https://HOST[:PORT] (no path, query or user)")]
pub struct PublicUrlError(&'static str);

impl PublicUrl {
    /// Parses `http(s)://host[:port]` (a trailing `/` is allowed).
    pub fn parse(text: &str) -> Result<PublicUrl, PublicUrlError> {
        let (https, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(PublicUrlError("it must start with http:// or https://"));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(PublicUrlError("only a host and a port may follow the scheme"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or(PublicUrlError("an IPv6 address needs its ]"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(PublicUrlError("junk after the IPv6 address"))?),
            };
            let ip: IpAddr = addr.parse().map_err(|_| PublicUrlError("not an IPv6 address"))?;
            (format!("[{ip}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        let port = match port {
            None => {
                if https {
                    443
                } else {
                    80
                }
            }
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(PublicUrlError("the port must be a number from 1 to 65535")),
            },
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let parsed =
            Host::parse(bare).map_err(|_| PublicUrlError("the host is not a host name or IP address"))?;
        let ip = match parsed {
            Host::Ip(ip) if !ip.is_unspecified() => Some(ip),
            Host::Ip(_) | Host::Any => {
                return Err(PublicUrlError("the host must be the name or address users open"));
            }
            Host::Localhost | Host::Name(_) => None,
        };
        let host = host.to_ascii_lowercase();
        if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)) {
            return Err(PublicUrlError("the host is not a host name or IP address"));
        }
        Ok(PublicUrl { https, host, ip, port })
    }

    /// `host` or `host:port` when the port is not the scheme's default.
    pub fn authority(&self) -> String {
        if self.port == if self.https { 443 } else { 80 } {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// `http(s)://authority`.
    pub fn origin(&self) -> String {
        format!("{}://{}", if self.https { "https" } else { "http" }, self.authority())
    }
}

/// What a configuration is made from.
#[derive(Debug, Clone)]
pub struct ProxyPlan {
    /// Which proxy.
    pub kind: ProxyKind,
    /// The prefix the dashboard is served under (`launcher.base_path`).
    pub base: BasePath,
    /// Where users reach the proxy; `None`: any host name, port 80.
    pub public: Option<PublicUrl>,
    /// The launcher's address (upstream of `<base>/`).
    pub launcher: SocketAddr,
    /// The gateway's address, when its Pico socket is exposed at `<base>/gateway/pico/ws`
    /// and its OpenAI-compatible API at `<base>/gateway/v1/`.
    pub gateway: Option<SocketAddr>,
    /// `channels.pico.read_timeout`: the proxy's idle timeouts are set above it.
    pub read_timeout: Duration,
}

/// How much longer than `read_timeout` the proxy waits on an idle connection.
pub const IDLE_MARGIN: Duration = Duration::from_secs(30);

impl ProxyPlan {
    /// The proxy's idle timeout in seconds: `read_timeout` plus [`IDLE_MARGIN`].
    pub fn idle_secs(&self) -> u64 {
        (self.read_timeout + IDLE_MARGIN).as_secs()
    }

    /// The path the gateway's Pico socket is exposed at (`<base>/gateway/pico/ws`).
    pub fn gateway_socket_path(&self) -> String {
        self.base.join("/gateway/pico/ws")
    }

    /// The prefix the gateway's OpenAI-compatible API is exposed under (`<base>/gateway/v1`).
    pub fn gateway_api_path(&self) -> String {
        self.base.join("/gateway/v1")
    }

    /// The picoclaw settings the configuration relies on, one `key = value` line each.
    pub fn settings(&self) -> Vec<String> {
        let proxy = proxy_network(self);
        let mut lines = vec![
            format!("launcher.base_path = {:?} (launcher-config.json \"base_path\")", self.base.as_str()),
            format!("launcher.trusted_proxies = [\"{proxy}\"] (launcher-config.json \"trusted_proxies\")"),
        ];
        if self.gateway.is_some() {
            lines.push(format!("gateway.trusted_proxies = [\"{proxy}\"] (config.json)"));
        }
        lines
    }

    /// The configuration text.
    pub fn render(&self) -> String {
        match self.kind {
            ProxyKind::Nginx => nginx(self),
            ProxyKind::Caddy => caddy(self),
            ProxyKind::Traefik => traefik(self),
        }
    }
}

/// The network the proxy connects from: loopback when both sides run on one host (the
/// upstream addresses are loopback), else a placeholder the user must fill in.
fn proxy_network(plan: &ProxyPlan) -> &'static str {
    if plan.launcher.ip().is_loopback() { "127.0.0.1/32" } else { "<the proxy's address>" }
}

fn header(out: &mut String, plan: &ProxyPlan, comment: &str, what: &str) {
    let _ = writeln!(out, "{comment} picoclaw behind {what}: generated by `picoclaw proxy-config`.");
    let _ = writeln!(
        out,
        "{comment} The dashboard is under {}/ and needs these picoclaw settings:",
        plan.base.as_str()
    );
    for line in plan.settings() {
        let _ = writeln!(out, "{comment}   {line}");
    }
    let _ = writeln!(
        out,
        "{comment} Idle sockets: {} s here, above channels.pico.read_timeout ({} s), so picoclaw closes first.",
        plan.idle_secs(),
        plan.read_timeout.as_secs()
    );
}

fn nginx_proxy_block(out: &mut String, upstream: String, idle: u64) {
    let _ = writeln!(out, "        proxy_pass {upstream};");
    for line in [
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $picoclaw_connection_upgrade;",
        "proxy_set_header Host $http_host;",
        "# Overwritten, never appended: a client cannot choose its own address.",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $http_host;",
        "proxy_buffering off;",
        "proxy_request_buffering off;",
    ] {
        let _ = writeln!(out, "        {line}");
    }
    let _ = writeln!(out, "        proxy_read_timeout {idle}s;");
    let _ = writeln!(out, "        proxy_send_timeout {idle}s;");
}

fn nginx(plan: &ProxyPlan) -> String {
    let mut out = String::new();
    header(&mut out, plan, "#", "nginx (put this file in /etc/nginx/conf.d/)");
    let idle = plan.idle_secs();
    // Its own name: many nginx.conf files already map `$connection_upgrade`, and nginx
    // takes a second `map` of one variable without a word, so one would replace the other.
    out.push_str(
        "map $http_upgrade $picoclaw_connection_upgrade {\n    default upgrade;\n    ''      close;\n}\n\n",
    );
    out.push_str("server {\n");
    match &plan.public {
        Some(p) => {
            let listen = match p.ip {
                Some(_) => format!("{}:{}", p.host, p.port),
                None => p.port.to_string(),
            };
            let ssl = if p.https { " ssl" } else { "" };
            let _ = writeln!(out, "    listen {listen}{ssl};");
            let _ =
                writeln!(out, "    server_name {};", p.host.trim_start_matches('[').trim_end_matches(']'));
            if p.https {
                let name = p.host.trim_start_matches('[').trim_end_matches(']');
                let _ = writeln!(out, "    ssl_certificate /etc/letsencrypt/live/{name}/fullchain.pem;");
                let _ = writeln!(out, "    ssl_certificate_key /etc/letsencrypt/live/{name}/privkey.pem;");
            }
        }
        None => out.push_str("    listen 80;\n    server_name _;\n"),
    }
    out.push_str("    # The launcher's own limit is 16 KiB per request; chat messages go over the socket.\n");
    out.push_str("    client_max_body_size 64k;\n\n");
    let launcher = format!("http://{}", plan.launcher);
    if plan.base.is_root() {
        out.push_str("    location / {\n");
    } else {
        // The bare prefix goes to the launcher, which redirects to `<base>/` (nginx's own
        // redirect would copy a `?token=` into the Location).
        let _ = writeln!(out, "    location = {} {{", plan.base.as_str());
        nginx_proxy_block(&mut out, launcher.clone(), idle);
        out.push_str("    }\n\n");
        let _ = writeln!(out, "    location {}/ {{", plan.base.as_str());
    }
    nginx_proxy_block(&mut out, launcher, idle);
    out.push_str("    }\n");
    if let Some(gateway) = plan.gateway {
        out.push_str("\n    # The gateway's Pico socket, for clients with a pico or named token.\n");
        let _ = writeln!(out, "    location = {} {{", plan.gateway_socket_path());
        nginx_proxy_block(&mut out, format!("http://{gateway}/pico/ws"), idle);
        out.push_str("    }\n");
        out.push_str("\n    # The gateway's OpenAI-compatible API (its own limit: 4 MiB per request).\n");
        let _ = writeln!(out, "    location {}/ {{", plan.gateway_api_path());
        out.push_str("        client_max_body_size 4m;\n");
        nginx_proxy_block(&mut out, format!("http://{gateway}/v1/"), idle);
        out.push_str("    }\n");
    }
    out.push_str("}\n");
    out
}

fn caddy_proxy_block(out: &mut String, upstream: SocketAddr) {
    let _ = writeln!(out, "\t\treverse_proxy {upstream} {{");
    for line in [
        "# Overwritten, never appended: a client cannot choose its own address.",
        "header_up X-Forwarded-For {remote_host}",
        "# No buffering: socket frames and streamed answers pass at once.",
        "flush_interval -1",
    ] {
        let _ = writeln!(out, "\t\t\t{line}");
    }
    out.push_str("\t\t}\n");
}

fn caddy(plan: &ProxyPlan) -> String {
    let mut out = String::new();
    header(&mut out, plan, "#", "Caddy");
    out.push_str(
        "# Caddy keeps upgraded sockets open without an idle limit of its own and sets\n\
         # X-Forwarded-Proto itself.\n",
    );
    let site = match &plan.public {
        Some(p) => p.origin(),
        None => ":80".to_owned(),
    };
    let _ = writeln!(out, "{site} {{");
    if let Some(gateway) = plan.gateway {
        let path = plan.gateway_socket_path();
        let _ = writeln!(out, "\t# The gateway's Pico socket, for clients with a pico or named token.");
        let _ = writeln!(out, "\thandle {path} {{");
        let _ = writeln!(out, "\t\trewrite * /pico/ws?{{query}}");
        caddy_proxy_block(&mut out, gateway);
        out.push_str("\t}\n");
        let api = plan.gateway_api_path();
        let _ = writeln!(out, "\t# The gateway's OpenAI-compatible API.");
        let _ = writeln!(out, "\thandle {api}/* {{");
        let _ = writeln!(out, "\t\turi strip_prefix {}", plan.base.join("/gateway"));
        caddy_proxy_block(&mut out, gateway);
        out.push_str("\t}\n");
    }
    if plan.base.is_root() {
        out.push_str("\thandle {\n");
        caddy_proxy_block(&mut out, plan.launcher);
        out.push_str("\t}\n");
    } else {
        let base = plan.base.as_str();
        let _ = writeln!(out, "\t@picoclaw path {base} {base}/*");
        out.push_str("\thandle @picoclaw {\n");
        caddy_proxy_block(&mut out, plan.launcher);
        out.push_str("\t}\n");
        out.push_str("\thandle {\n\t\trespond 404\n\t}\n");
    }
    out.push_str("}\n");
    out
}

fn traefik(plan: &ProxyPlan) -> String {
    let mut out = String::new();
    header(&mut out, plan, "#", "Traefik (dynamic configuration, file provider)");
    let idle = plan.idle_secs();
    let _ = writeln!(
        out,
        "# Traefik drops X-Forwarded-* from clients outside entryPoints.<name>.forwardedHeaders.trustedIPs\n\
         # (leave it unset) and sets X-Forwarded-For to the peer. In the static configuration,\n\
         # keep sockets open longer than picoclaw's read timeout:\n\
         #   entryPoints:\n\
         #     web:\n\
         #       transport:\n\
         #         respondingTimeouts:\n\
         #           readTimeout: {idle}s\n\
         #           idleTimeout: {idle}s"
    );
    let host_rule = plan
        .public
        .as_ref()
        .map(|p| format!("Host(`{}`) && ", p.host.trim_start_matches('[').trim_end_matches(']')));
    let host_rule = host_rule.unwrap_or_default();
    let tls = plan.public.as_ref().is_some_and(|p| p.https);
    let dashboard_rule = if plan.base.is_root() {
        format!("{host_rule}PathPrefix(`/`)")
    } else {
        let base = plan.base.as_str();
        format!("{host_rule}(Path(`{base}`) || PathPrefix(`{base}/`))")
    };
    // Traefik tries longer rules first; the gateway's routers are set above the
    // dashboard's, whose prefix contains theirs.
    out.push_str("http:\n  routers:\n");
    let _ = writeln!(
        out,
        "    picoclaw-dashboard:\n      rule: \"{dashboard_rule}\"\n      service: picoclaw-launcher"
    );
    if tls {
        out.push_str("      tls: {}\n");
    }
    if plan.gateway.is_some() {
        let path = plan.gateway_socket_path();
        let _ = writeln!(
            out,
            "    picoclaw-gateway:\n      rule: \"{host_rule}Path(`{path}`)\"\n      priority: 1000\n      service: picoclaw-gateway\n      \
             middlewares:\n        - picoclaw-gateway-path"
        );
        if tls {
            out.push_str("      tls: {}\n");
        }
        let api = plan.gateway_api_path();
        let _ = writeln!(
            out,
            "    picoclaw-gateway-api:\n      rule: \"{host_rule}PathPrefix(`{api}/`)\"\n      priority: 1000\n      service: picoclaw-gateway\n      \
             middlewares:\n        - picoclaw-gateway-api-path"
        );
        if tls {
            out.push_str("      tls: {}\n");
        }
        out.push_str(
            "  middlewares:\n    picoclaw-gateway-path:\n      replacePath:\n        path: /pico/ws\n",
        );
        let _ = writeln!(
            out,
            "    picoclaw-gateway-api-path:\n      stripPrefix:\n        prefixes:\n          - \"{}\"",
            plan.base.join("/gateway")
        );
    }
    out.push_str("  services:\n");
    let service = |out: &mut String, name: &str, addr: SocketAddr| {
        let _ = writeln!(
            out,
            "    {name}:\n      loadBalancer:\n        passHostHeader: true\n        responseForwarding:\n          \
             flushInterval: \"-1s\"\n        servers:\n          - url: \"http://{addr}\""
        );
    };
    service(&mut out, "picoclaw-launcher", plan.launcher);
    if let Some(gateway) = plan.gateway {
        service(&mut out, "picoclaw-gateway", gateway);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(kind: ProxyKind, base: &str, public: Option<&str>) -> ProxyPlan {
        ProxyPlan {
            kind,
            base: BasePath::parse(base).unwrap(),
            public: public.map(|p| PublicUrl::parse(p).unwrap()),
            launcher: "127.0.0.1:18800".parse().unwrap(),
            gateway: Some("127.0.0.1:18790".parse().unwrap()),
            read_timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn public_urls_are_parsed_strictly() {
        let p = PublicUrl::parse("https://Chat.Example.org/").unwrap();
        assert_eq!((p.https, p.host.as_str(), p.port, p.ip), (true, "chat.example.org", 443, None));
        assert_eq!(p.origin(), "https://chat.example.org");
        let p = PublicUrl::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((p.port, p.ip.is_some(), p.authority().as_str()), (8080, true, "127.0.0.1:8080"));
        assert_eq!(PublicUrl::parse("http://[::1]:81").unwrap().authority(), "[::1]:81");
        for bad in [
            "chat.example.org",
            "ftp://x",
            "http://x/path",
            "http://x?a",
            "http://u@x",
            "http://x:0",
            "http://x:99999",
            "http://x;y",
            "http://x y",
            "http://0.0.0.0",
            "http://",
            "http://[::1",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_config_has_upgrade_forwarding_no_buffering_and_idle_above_read_timeout() {
        let n = plan(ProxyKind::Nginx, "/picoclaw", Some("http://127.0.0.1:8080")).render();
        for want in [
            "proxy_set_header Upgrade $http_upgrade;",
            "proxy_set_header X-Forwarded-For $remote_addr;",
            "proxy_buffering off;",
            "proxy_read_timeout 90s;",
            "location /picoclaw/ {",
            "location = /picoclaw {",
            "location = /picoclaw/gateway/pico/ws {",
            "proxy_pass http://127.0.0.1:18790/pico/ws;",
            "location /picoclaw/gateway/v1/ {",
            "proxy_pass http://127.0.0.1:18790/v1/;",
            "listen 127.0.0.1:8080;",
        ] {
            assert!(n.contains(want), "nginx lacks {want:?}:\n{n}");
        }
        assert!(!n.contains("$proxy_add_x_forwarded_for"), "never appended");
        let c = plan(ProxyKind::Caddy, "/picoclaw", None).render();
        for want in [
            "header_up X-Forwarded-For {remote_host}",
            "flush_interval -1",
            ":80 {",
            "@picoclaw path /picoclaw /picoclaw/*",
        ] {
            assert!(c.contains(want), "caddy lacks {want:?}:\n{c}");
        }
        let t = plan(ProxyKind::Traefik, "/picoclaw", Some("https://chat.example.org")).render();
        for want in [
            "Host(`chat.example.org`) && (Path(`/picoclaw`) || PathPrefix(`/picoclaw/`))",
            "tls: {}",
            "readTimeout: 90s",
            "path: /pico/ws",
        ] {
            assert!(t.contains(want), "traefik lacks {want:?}:\n{t}");
        }
        let root = plan(ProxyKind::Nginx, "", None).render();
        assert!(root.contains("location / {") && !root.contains("location = / {"));
    }
}
