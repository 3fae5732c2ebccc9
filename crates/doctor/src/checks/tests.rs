//! Unit tests of the checks: each builds a temporary home and a map environment, runs
//! [`diagnose`] (no gateway is running) and looks at the findings.

use std::path::Path;

use picoclaw_config::MapEnv;

use super::diagnose;
use crate::{Action, Code, Finding, Options, Severity};

const STRONG: &str = "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c";
const OTHER: &str = "1a3c5e7b9d0f2e4a6c8b0d2f4e6a8c0b";

struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn env(&self) -> MapEnv {
        let home = self.path().display().to_string();
        MapEnv::new().with("HOME", home.clone()).with("PICOCLAW_HOME", home)
    }

    fn write(&self, name: &str, text: &str, mode: u32) {
        let path = self.path().join(name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&path, text).unwrap();
        set_mode(&path, mode);
    }

    fn security(&self, yaml: &str) {
        self.write(".security.yml", yaml, 0o600);
    }

    fn config(&self, json: &str) {
        self.write("config.json", json, 0o600);
    }
}

fn set_mode(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

fn codes(findings: &[Finding]) -> Vec<Code> {
    let mut codes: Vec<Code> = findings.iter().map(|f| f.code).collect();
    codes.sort_by_key(|c| c.as_str());
    codes
}

fn one(findings: &[Finding], code: Code) -> &Finding {
    let found: Vec<&Finding> = findings.iter().filter(|f| f.code == code).collect();
    assert_eq!(found.len(), 1, "one {code} in {findings:#?}");
    found[0]
}

/// No finding shows a secret, and every finding says its fix.
fn assert_clean(findings: &[Finding], secrets: &[&str]) {
    for f in findings {
        for s in secrets {
            assert!(!format!("{f:?}").contains(s), "a finding shows a secret: {f:#?}");
        }
        assert!(!f.fix.is_empty(), "every finding says its fix: {f:#?}");
    }
}

#[test]
fn an_empty_home_only_says_no_gateway_runs() {
    let home = Home::new();
    let found = diagnose(&home.env());
    assert_eq!(codes(&found), [Code::GatewayNotRunning], "{found:#?}");
    assert_eq!(found[0].severity, Severity::Info);
    assert!(!found[0].fixable());
}

#[test]
fn a_config_that_does_not_parse_is_reported_and_never_fixed() {
    let home = Home::new();
    home.config("{ \"gateway\": ");
    let found = diagnose(&home.env());
    let f = one(&found, Code::ConfigInvalid);
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.subject, "config");
    assert!(!f.fixable(), "picoclaw never rewrites a file it cannot parse");
}

#[test]
fn unknown_keys_are_config_warnings() {
    let home = Home::new();
    home.config(r#"{"gateway": {"no_such_key": 1}}"#);
    let found = diagnose(&home.env());
    let f = one(&found, Code::ConfigWarning);
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.subject.contains("no_such_key"), "{f:#?}");
}

#[test]
fn weak_tokens_are_named_by_key_and_fingerprint_never_by_value() {
    let home = Home::new();
    home.security("gateway:\n  token: \"change-me\"\n");
    let found = diagnose(&home.env());
    let f = one(&found, Code::WeakToken);
    assert_eq!((f.severity, f.subject.as_str()), (Severity::Error, "gateway.token"));
    assert!(f.message.contains("fingerprint"), "{}", f.message);
    assert_clean(&found, &["change-me"]);
}

#[test]
fn a_strong_token_is_not_weak() {
    let home = Home::new();
    home.security(&format!("gateway:\n  token: \"{STRONG}\"\n"));
    let found = diagnose(&home.env());
    assert_eq!(codes(&found), [Code::GatewayNotRunning], "{found:#?}");
}

#[test]
fn readable_secret_files_are_chmodded() {
    let home = Home::new();
    home.security(&format!("gateway:\n  token: \"{STRONG}\"\n"));
    set_mode(&home.path().join(".security.yml"), 0o644);
    let found = diagnose(&home.env());
    let f = one(&found, Code::InsecurePermissions);
    assert_eq!(f.action, Some(Action::Chmod(home.path().join(".security.yml"), 0o600)));
    assert_clean(&found, &[STRONG]);
}

#[test]
fn a_group_writable_home_is_reported_with_a_chmod_700() {
    let home = Home::new();
    set_mode(home.path(), 0o775);
    let found = diagnose(&home.env());
    let f = one(&found, Code::InsecureHomePermissions);
    assert_eq!(f.action, Some(Action::Chmod(home.path().to_owned(), 0o700)));
    set_mode(home.path(), 0o700);
}

#[test]
fn a_secret_in_config_json_is_moved() {
    let home = Home::new();
    home.config(&format!(r#"{{"gateway": {{"token": "{STRONG}"}}}}"#));
    let found = diagnose(&home.env());
    let f = one(&found, Code::SecretInConfigJson);
    assert_eq!((f.severity, f.subject.as_str()), (Severity::Error, "gateway.token"));
    assert_eq!(f.action, Some(Action::MoveConfigSecrets));
    assert_clean(&found, &[STRONG]);
}

#[test]
fn an_environment_variable_shadowing_a_file_is_a_warning() {
    let home = Home::new();
    home.security(&format!("gateway:\n  token: \"{STRONG}\"\n"));
    let env = home.env().with("PICOCLAW_GATEWAY_TOKEN", OTHER);
    let found = diagnose(&env);
    let f = one(&found, Code::EnvShadowsFile);
    assert_eq!(f.severity, Severity::Warning);
    assert!(f.fix.contains("PICOCLAW_GATEWAY_TOKEN"), "{}", f.fix);
    assert_clean(&found, &[STRONG, OTHER]);
}

#[test]
fn a_pico_token_equal_to_the_gateway_token_is_an_error() {
    let home = Home::new();
    home.security(&format!("gateway:\n  token: \"{STRONG}\"\nchannels:\n  pico:\n    token: \"{STRONG}\"\n"));
    let found = diagnose(&home.env());
    let f = one(&found, Code::PicoTokenEqualsGatewayToken);
    assert!(f.message.contains("the Pico channel is off now"), "{}", f.message);
    assert_clean(&found, &[STRONG]);
}

#[test]
fn token_query_and_a_public_bind_without_origins_are_exposure_warnings() {
    let home = Home::new();
    home.config(r#"{"gateway": {"host": "0.0.0.0"}, "channels": {"pico": {"enabled": true, "allow_token_query": true}}}"#);
    home.security(&format!("channels:\n  pico:\n    token: \"{STRONG}\"\n"));
    let found = diagnose(&home.env());
    assert_eq!(one(&found, Code::QueryTokenEnabled).severity, Severity::Warning);
    assert_eq!(one(&found, Code::PublicBindWithoutOrigins).severity, Severity::Warning);

    // Origins listed and the query off: neither.
    home.config(r#"{"gateway": {"host": "0.0.0.0"}, "channels": {"pico": {"enabled": true, "allow_origins": ["https://a.example"]}}}"#);
    let found = diagnose(&home.env());
    assert_eq!(codes(&found), [Code::GatewayNotRunning], "{found:#?}");
}

#[test]
fn a_record_nobody_holds_the_lock_for_is_stale() {
    let home = Home::new();
    home.write(
        ".picoclaw.pid",
        r#"{"pid": 4000000, "version": "0", "host": "127.0.0.1", "port": 1, "started_at": 0, "token": "x"}"#,
        0o600,
    );
    let found = diagnose(&home.env());
    let f = one(&found, Code::StalePidFile);
    assert_eq!(f.action, Some(Action::RemoveStalePid));
    assert!(f.message.contains("4000000"), "{}", f.message);
}

#[test]
fn a_token_in_a_systemd_unit_is_migrated_for_this_home_only() {
    let home = Home::new();
    let unit = format!(
        "[Unit]\nDescription=picoclaw\n[Service]\nExecStart=/nonexistent/picoclaw gateway\nEnvironment=PICOCLAW_HOME={} PICOCLAW_GATEWAY_TOKEN={STRONG}\n[Install]\nWantedBy=default.target\n",
        home.path().display()
    );
    home.write(".config/systemd/user/mine.service", &unit, 0o644);
    let found = diagnose(&home.env());
    let f = one(&found, Code::TokenEmbeddedInUnit);
    let path = home.path().join(".config/systemd/user/mine.service");
    assert_eq!(f.action, Some(Action::MigrateUnit(path)));
    assert!(f.message.contains("gateway.token"), "{}", f.message);
    assert_clean(&found, &[STRONG]);

    // A unit for another home is reported, with the command to run there, and not fixed.
    let unit = unit.replace(&home.path().display().to_string(), "/elsewhere");
    home.write(".config/systemd/user/mine.service", &unit, 0o644);
    let found = diagnose(&home.env());
    let f = one(&found, Code::TokenEmbeddedInUnit);
    assert!(!f.fixable());
    assert!(f.fix.contains("PICOCLAW_HOME=/elsewhere"), "{}", f.fix);
}

#[test]
fn fix_applies_the_safe_fixes_and_checks_again() {
    let home = Home::new();
    home.security("gateway:\n  token: \"change-me\"\n");
    set_mode(&home.path().join(".security.yml"), 0o644);
    let env = home.env();
    let report = crate::run(&Options { env: &env, fix: true, current_exe: None });
    let permissions = one(&report.findings, Code::InsecurePermissions);
    assert!(permissions.fixed);
    let weak = one(&report.findings, Code::WeakToken);
    assert!(!weak.fixed, "a weak token needs the user");
    assert_eq!(report.problems_remaining, 1);
    assert!(report.render().contains("1 problem(s) remain\n"), "{}", report.render());

    let again = crate::run(&Options { env: &env, fix: true, current_exe: None });
    assert!(again.findings.iter().all(|f| !f.fixed), "a second --fix changes nothing");
    assert_eq!(again.problems_remaining, 1);
}

#[test]
fn an_upstream_v3_config_is_reported_and_fixed_into_our_shape() {
    let home = Home::new();
    home.config(r#"{"version": 3, "channel_list": {"pico": {"enabled": true, "type": "pico", "settings": {"token": "9f2c4e6a8b0d1f3e5a7c9b1d3f5e7a9c"}}}}"#);
    let found = diagnose(&home.env());
    let f = one(&found, Code::UpstreamConfigShape);
    assert_eq!(f.severity, Severity::Warning);
    assert_eq!(f.action, Some(Action::RewriteUpstream));
    assert_clean(&found, &[STRONG]);
    let fixed = crate::run(&Options { env: &home.env(), fix: true, current_exe: None }).findings;
    let f = one(&fixed, Code::UpstreamConfigShape);
    assert!(f.fixed, "{f:#?}");
    assert!(!codes(&fixed).contains(&Code::SecretInConfigJson), "{fixed:#?}");
    let config = std::fs::read_to_string(home.path().join("config.json")).unwrap();
    assert!(!config.contains(STRONG) && !config.contains("channel_list"), "{config}");
    assert!(home.path().join("config.json.upstream.bak").exists());
    let security = std::fs::read_to_string(home.path().join(".security.yml")).unwrap();
    assert!(security.contains(STRONG), "the token moved to .security.yml");
    let again = diagnose(&home.env());
    assert!(!codes(&again).contains(&Code::UpstreamConfigShape), "{again:#?}");
}

#[test]
fn subpath_secret_mounts_and_a_read_only_security_file_are_reported() {
    use picoclaw_config::{Flags, Paths};
    let home = Home::new();
    let secrets = home.path().join("secrets");
    std::fs::create_dir_all(secrets.join("..2026_12_03_17_00_00.1")).unwrap();
    std::fs::write(secrets.join("..2026_12_03_17_00_00.1/pico-token"), STRONG).unwrap();
    std::os::unix::fs::symlink("..2026_12_03_17_00_00.1", secrets.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/pico-token", secrets.join("pico-token")).unwrap();
    let file = secrets.join("pico-token");
    let env = home.env().with("PICOCLAW_CHANNELS_PICO_TOKEN_FILE", file.display().to_string());
    let paths = Paths::from_env(&env).unwrap();
    let creds = picoclaw_credentials::load(&paths, &env, &Flags::new()).unwrap().credentials;

    // The Secret's directory mounted: nothing to report.
    let dir_mount = format!("30 25 0:52 / {} ro,relatime - tmpfs tmpfs rw\n", secrets.display());
    let mut out = Vec::new();
    super::secret_mounts(&paths, &creds, &dir_mount, &mut out);
    assert!(codes(&out).is_empty(), "{out:?}");

    // The file itself is a mount point: subPath.
    let file_mount =
        format!("31 25 0:52 /..2026/pico-token {} ro,relatime - tmpfs tmpfs rw\n", file.display());
    let mut out = Vec::new();
    super::secret_mounts(&paths, &creds, &file_mount, &mut out);
    assert_eq!(codes(&out), [Code::SecretMountSubpath]);
    assert!(out[0].message.contains("kubernetes#50345"), "{}", out[0].message);

    // .security.yml as a Secret volume's symlink: the gateway cannot keep its records there.
    std::fs::write(secrets.join("..2026_12_03_17_00_00.1/.security.yml"), "tokens: []\n").unwrap();
    std::os::unix::fs::symlink(secrets.join("..data/.security.yml"), paths.security_file()).unwrap();
    let mut out = Vec::new();
    super::secret_mounts(&paths, &creds, "", &mut out);
    assert_eq!(codes(&out), [Code::SecurityFileReadOnly]);
    assert!(!out[0].message.contains(STRONG));
}

#[test]
fn a_secret_file_shadowing_security_yml_is_a_warning_too() {
    let home = Home::new();
    home.security(&format!("gateway:\n  token: \"{STRONG}\"\n"));
    home.write("outside/gw-token", OTHER, 0o600);
    let file = home.path().join("outside/gw-token");
    let env = home.env().with("PICOCLAW_GATEWAY_TOKEN_FILE", file.display().to_string());
    let found = diagnose(&env);
    let f = one(&found, Code::EnvShadowsFile);
    assert!(f.message.contains("file:$PICOCLAW_GATEWAY_TOKEN_FILE"), "{}", f.message);
    assert!(f.fix.contains("PICOCLAW_GATEWAY_TOKEN_FILE"), "{}", f.fix);
    assert_clean(&found, &[STRONG, OTHER]);
    let creds = home.path().join("creds");
    home.write("creds/picoclaw-gateway-token", OTHER, 0o600);
    let env = home.env().with("CREDENTIALS_DIRECTORY", creds.display().to_string());
    let f = one(&diagnose(&env), Code::EnvShadowsFile).clone();
    assert!(f.message.contains("credential:picoclaw-gateway-token"), "{}", f.message);
}

#[test]
fn two_fresh_gateway_heartbeats_in_one_home_are_an_error() {
    let home = Home::new();
    let paths = picoclaw_config::Paths::at(home.path());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let beat = |host: &str, pid: u32, seen_ms: u64| {
        home.write(
            &format!(".gateways/{host}-{pid}.json"),
            &serde_json::json!({ "host": host, "pid": pid, "seen_ms": seen_ms }).to_string(),
            0o600,
        )
    };
    beat("node-a", 10, now);
    let mut out = Vec::new();
    super::shared_home(&paths, None, &mut out);
    assert!(out.is_empty(), "one gateway is fine");
    // An old beat (a crashed gateway of another machine) is not a writer.
    beat("node-b", 20, now - 120_000);
    super::shared_home(&paths, None, &mut out);
    assert!(out.is_empty(), "a stale heartbeat counts");
    beat("node-b", 20, now);
    super::shared_home(&paths, None, &mut out);
    assert_eq!(codes(&out), [Code::SharedHome]);
    assert_eq!(out[0].severity, Severity::Error);
    assert!(
        out[0].message.contains("pid 10 on node-a") && out[0].message.contains("pid 20 on node-b"),
        "{}",
        out[0].message
    );
    assert!(out[0].message.contains("sessions.db"), "{}", out[0].message);
}
