//! `picoclaw service`: units hold no secret, validate with systemd-analyze, and the audit
//! finds tokens in hand-written units.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{self, TestHome};

const CANARY: &str = "c4nary-5e7v1ce-0123456789abcdef0123456789abcdef";

fn unit_path(home: &TestHome) -> PathBuf {
    home.path().join(".config/systemd/user/picoclaw-gateway.service")
}

/// True when a tool is missing and the run does not require it (scripts/test sets
/// PICOCLAW_REQUIRE_TOOLS=1, so there a missing tool fails the test).
fn skip_without(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success());
    if found {
        return false;
    }
    assert!(std::env::var_os("PICOCLAW_REQUIRE_TOOLS").is_none(), "{tool} is required but not installed");
    eprintln!("skipping: {tool} is not installed");
    true
}

fn systemd_verify(home: &TestHome, unit: &Path) -> String {
    let runtime = home.path().join("run");
    std::fs::create_dir_all(&runtime).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--user"])
        .arg(unit)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    assert!(out.status.success(), "systemd-analyze failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn install_writes_a_secret_free_unit_that_systemd_accepts_and_doctor_is_clean() {
    // PATH without an installed picoclaw: the unit then starts the binary under test.
    let home =
        TestHome::new().env("PICOCLAW_GATEWAY_TOKEN", CANARY).env("PATH", "/usr/local/bin:/usr/bin:/bin");
    let out = home.run(&["service", "install", "--systemd"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("daemon-reload"), "tells what to run without a user manager: {stdout}");
    assert!(stdout.contains("this shell sets PICOCLAW_GATEWAY_TOKEN"), "{stdout}");
    assert!(!stdout.contains(CANARY));

    let unit = std::fs::read_to_string(unit_path(&home)).unwrap();
    assert!(!unit.contains(CANARY), "the unit must never hold a secret");
    assert!(!unit.contains("TOKEN"), "{unit}");
    let exe = std::fs::canonicalize(support::bin()).unwrap();
    assert!(unit.contains(&format!("ExecStart={} gateway\n", exe.display())), "{unit}");
    let home_dir = std::fs::canonicalize(home.path()).unwrap();
    assert!(unit.contains(&format!("Environment=PICOCLAW_HOME={}\n", home_dir.display())), "{unit}");
    for line in
        ["Restart=on-failure", "RestartPreventExitStatus=78", "NoNewPrivileges=yes", "ProtectSystem=strict"]
    {
        assert!(unit.lines().any(|l| l == line), "missing {line}: {unit}");
    }
    assert!(unit.contains(&format!("ReadWritePaths={}", home_dir.display())), "{unit}");

    if !skip_without("systemd-analyze") {
        let warnings = systemd_verify(&home, &unit_path(&home));
        assert!(warnings.trim().is_empty(), "systemd-analyze verify warned: {warnings}");
    }

    // Installing again changes nothing.
    let again = home.run(&["service", "install", "--systemd"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("up to date"));

    // A new user's next step: doctor reports no problem.
    let run = |args: &[&str]| home.cmd(args).env_remove("PICOCLAW_GATEWAY_TOKEN").output().unwrap();
    let doctor = run(&["doctor", "--json"]);
    let report: Value = serde_json::from_slice(&doctor.stdout).unwrap();
    assert_eq!(report["problems_remaining"], 0, "{report:#}");
    assert!(doctor.status.success());

    let status = run(&["service", "status", "--systemd", "--json"]);
    assert!(status.status.success());
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["installed"], true);
    assert_eq!(status["embeds_secrets"], false);
    assert_eq!(status["gateway"]["state"], "not-running");

    let gone = run(&["service", "uninstall", "--systemd"]);
    assert!(gone.status.success());
    assert!(!unit_path(&home).exists());
    assert_eq!(run(&["service", "status", "--systemd"]).status.code(), Some(3));
}

#[test]
fn a_unit_that_failed_on_a_config_error_does_not_restart() {
    // The unit relies on the gateway's exit code 78 for configuration errors.
    let home = TestHome::new();
    std::fs::write(home.file("config.json"), "{ not json").unwrap();
    let out = home.run(&["gateway", "--port", "0"]);
    assert_eq!(out.status.code(), Some(78));
    let install = home.run(&["service", "install", "--systemd"]);
    assert!(!install.status.success(), "refuses to install a unit for a config that cannot load");
    assert!(String::from_utf8_lossy(&install.stderr).contains("config.json"));
}

#[test]
fn launchd_plist_is_secret_free_and_well_formed() {
    let home = TestHome::new().env("PICOCLAW_CHANNELS_PICO_TOKEN", CANARY);
    let out = home.run(&["service", "install", "--launchd"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let path = home.path().join("Library/LaunchAgents/io.picoclaw.gateway.plist");
    let plist = std::fs::read_to_string(&path).unwrap();
    assert!(!plist.contains(CANARY) && !plist.contains("TOKEN"), "{plist}");
    if !skip_without("python3") {
        let check = Command::new("python3")
            .args([
                "-c",
                "import plistlib,sys; d=plistlib.load(open(sys.argv[1],'rb')); \
                 assert d['Label']=='io.picoclaw.gateway'; assert d['ProgramArguments'][1]=='gateway'; \
                 assert set(d['EnvironmentVariables'])=={'PICOCLAW_HOME'}, d; print('ok')",
            ])
            .arg(&path)
            .output()
            .unwrap();
        assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    }
}

#[test]
fn audit_flags_hand_written_units_by_fingerprint_only() {
    let home = TestHome::new();
    let dir = home.path().join(".config/systemd/user");
    std::fs::create_dir_all(&dir).unwrap();
    let env_file = home.path().join("gw.env");
    std::fs::write(&env_file, format!("PICOCLAW_CHANNELS_PICO_TOKEN={CANARY}-pico\n")).unwrap();
    std::fs::write(
        dir.join("my-picoclaw.service"),
        format!(
            "[Service]\nExecStart=/usr/local/bin/picoclaw gateway\nEnvironment=PICOCLAW_GATEWAY_TOKEN={CANARY}\nEnvironmentFile=-%h/gw.env\nSetCredential=picoclaw-api-key:{CANARY}-key\n"
        ),
    )
    .unwrap();
    let out = home.run(&["service", "audit"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(!stdout.contains(CANARY), "{stdout}");
    assert!(stdout.contains("my-picoclaw.service") && stdout.contains("hand-written"), "{stdout}");
    assert!(
        stdout.contains("PICOCLAW_GATEWAY_TOKEN") && stdout.contains("PICOCLAW_CHANNELS_PICO_TOKEN"),
        "{stdout}"
    );
    assert!(stdout.contains("SetCredential="), "a SetCredential= value is a secret in the unit: {stdout}");

    let json = home.run(&["service", "audit", "--json"]);
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["embedding_secrets"], 1);
    assert_eq!(v["units"][0]["embedded"].as_array().unwrap().len(), 3);

    // Our own unit at the standard path is not replaced by install without --force if
    // someone else wrote it.
    std::fs::write(dir.join("picoclaw-gateway.service"), "[Service]\nExecStart=/bin/true\n").unwrap();
    let install = home.run(&["service", "install", "--systemd"]);
    assert!(!install.status.success());
    assert!(String::from_utf8_lossy(&install.stderr).contains("--force"));
    assert!(home.run(&["service", "install", "--systemd", "--force"]).status.success());
}

#[test]
fn reinstall_over_a_unit_that_embeds_a_token_keeps_the_token_in_security_yml() {
    let home = TestHome::new();
    assert!(home.run(&["service", "install", "--systemd"]).status.success());
    let path = unit_path(&home);
    let clean = std::fs::read_to_string(&path).unwrap();
    let dirty = clean.replacen(
        "Restart=on-failure",
        &format!("Environment=PICOCLAW_GATEWAY_TOKEN={CANARY}\nRestart=on-failure"),
        1,
    );
    std::fs::write(&path, dirty).unwrap();
    let out = home.run(&["service", "install", "--systemd"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("moved gateway.token") && !stdout.contains(CANARY), "{stdout}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), clean);
    let security = std::fs::read_to_string(home.file(".security.yml")).unwrap();
    assert!(security.contains(CANARY), "the embedded token is preserved for its clients");
}

#[test]
fn install_with_credentials_loads_secret_files_by_path_only() {
    let home = TestHome::new();
    // Without credential files: a clear error naming the directory and the file names.
    let out = home.run(&["service", "install", "--systemd", "--credentials"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("credentials") && err.contains("picoclaw-pico-token"), "{err}");

    let dir = home.path().join("credentials");
    std::fs::create_dir(&dir).unwrap();
    support::write_private(&dir.join("picoclaw-pico-token"), &format!("{CANARY}\n"));
    support::write_private(&dir.join("picoclaw-gateway-token"), &format!("{CANARY}-gw\n"));
    let out = home.run(&["service", "install", "--systemd", "--credentials"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let unit = std::fs::read_to_string(unit_path(&home)).unwrap();
    assert!(!unit.contains(CANARY), "the unit holds paths, never a value");
    let dir = std::fs::canonicalize(&dir).unwrap();
    for name in ["picoclaw-gateway-token", "picoclaw-pico-token"] {
        let line = format!("LoadCredential={name}:{}\n", dir.join(name).display());
        assert!(unit.contains(&line), "missing {line}: {unit}");
    }
    assert!(!unit.contains("picoclaw-api-key"), "only files that exist: {unit}");
    if !skip_without("systemd-analyze") {
        let warnings = systemd_verify(&home, &unit_path(&home));
        assert!(warnings.trim().is_empty(), "systemd-analyze verify warned: {warnings}");
    }
    // The audit sees no embedded secret, and doctor --fix keeps the credentials.
    let audit = home.run(&["service", "audit", "--json"]);
    assert!(audit.status.success(), "{}", String::from_utf8_lossy(&audit.stdout));
    let status: Value =
        serde_json::from_slice(&home.run(&["service", "status", "--systemd", "--json"]).stdout).unwrap();
    assert_eq!(status["embeds_secrets"], false);

    // What the gateway does with it: systemd sets CREDENTIALS_DIRECTORY (simulated here).
    let gw_home = home.env("CREDENTIALS_DIRECTORY", dir.to_str().unwrap());
    let show = gw_home.run(&["config", "show", "--origin"]);
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(text.contains("credential:picoclaw-pico-token"), "{text}");
    assert!(!text.contains(CANARY), "{text}");

    // A credential file readable by others is refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("picoclaw-pico-token"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let out = gw_home.run(&["service", "install", "--systemd", "--credentials"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("chmod 600"), "{err}");
    }
}
