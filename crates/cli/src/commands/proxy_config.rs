//! `picoclaw proxy-config nginx|caddy|traefik`: prints a reverse-proxy configuration made
//! from the resolved settings (ports, base path, read timeout) on stdout, and the picoclaw
//! settings it relies on on stderr.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use picoclaw_config::{BasePath, Flags, Host};
use picoclaw_lifecycle::proxy::{ProxyKind, ProxyPlan, PublicUrl};

use crate::cli::{ProxyArg, ProxyConfigArgs};
use crate::context::Context;

/// Where the proxy reaches a server bound to `host:port` on this machine.
fn upstream(host: &Host, port: u16) -> SocketAddr {
    let ip = match host {
        Host::Ip(ip) if !ip.is_unspecified() => *ip,
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    SocketAddr::new(ip, port)
}

pub fn run(args: &ProxyConfigArgs) -> Result<ExitCode> {
    let ctx = Context::load(&Flags::new())?;
    ctx.print_warnings();
    let configured = &ctx.settings.launcher.base_path;
    let base = match &args.base_path {
        Some(text) => {
            BasePath::parse(text).with_context(|| format!("--base-path: expected {}", BasePath::EXPECTED))?
        }
        None => configured.clone(),
    };
    let public = args.public_url.as_deref().map(PublicUrl::parse).transpose()?;
    let launcher = &ctx.settings.launcher;
    let gateway = &ctx.settings.gateway;
    // A proxy needs to know where to send requests: a port picked at each start will not do.
    if launcher.port == 0 {
        anyhow::bail!(
            "launcher.port is 0 (a free port at each start): set a fixed port for the proxy to reach"
        );
    }
    if args.gateway && gateway.port == 0 {
        anyhow::bail!(
            "gateway.port is 0 (a free port at each start): set a fixed port for the proxy to reach"
        );
    }
    let plan = ProxyPlan {
        kind: match args.proxy {
            ProxyArg::Nginx => ProxyKind::Nginx,
            ProxyArg::Caddy => ProxyKind::Caddy,
            ProxyArg::Traefik => ProxyKind::Traefik,
        },
        base,
        public,
        launcher: upstream(&launcher.host, launcher.port),
        gateway: args.gateway.then(|| upstream(&gateway.host, gateway.port)),
        read_timeout: ctx.settings.pico.read_timeout,
    };
    crate::output::emit(&plan.render())?;
    eprintln!("picoclaw settings this configuration relies on:");
    for line in plan.settings() {
        eprintln!("  {line}");
    }
    // The proxy connects from loopback when it reaches picoclaw on loopback.
    let proxy_ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    if plan.launcher.ip().is_loopback() && !launcher.trusted_proxies.contains(proxy_ip) {
        eprintln!(
            "note: launcher.trusted_proxies does not list 127.0.0.1: the launcher would see every user as the \
             proxy and refuse requests for the public host name"
        );
    }
    if plan.gateway.is_some_and(|g| g.ip().is_loopback()) && !gateway.trusted_proxies.contains(proxy_ip) {
        eprintln!(
            "note: gateway.trusted_proxies does not list 127.0.0.1: failed logins through the proxy would all \
             count against one client"
        );
    }
    if plan.base != *configured {
        eprintln!(
            "note: launcher.base_path is {:?} now; set it to {:?} before starting the launcher",
            configured.as_str(),
            plan.base.as_str()
        );
    }
    Ok(ExitCode::SUCCESS)
}
