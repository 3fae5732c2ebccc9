//! `picoclaw launcher --tray` (issue 21) under Xvfb with a private D-Bus session bus: the
//! StatusNotifierItem registers, its dbusmenu lists the actions, clicking (dbusmenu
//! `Event "clicked"`, as a panel sends it) Copy Console Token puts the launcher token on
//! the X clipboard (read back with `xclip`), or, for a token from the environment, copies
//! nothing and says so; Open dashboard hands the browser a 0600 file with a one-time
//! link (never the link in argv); Stop stops the gateway; Quit ends the launcher.
//!
//! Built with `--features tray` (scripts/test does). Needs Xvfb, dbus-daemon, xclip and
//! busctl (scripts/test installs them); without them it skips unless
//! PICOCLAW_REQUIRE_TOOLS is set. A build without the feature refuses `--tray` (exit 2).

#[cfg(all(feature = "tray", target_os = "linux"))]
mod with_tray {
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use serde_json::{Value, json};

    use crate::launcher_support::{Launcher, alive, eventually, home, post_json, start};
    use crate::support::{self, TestHome};

    const DEADLINE: Duration = Duration::from_secs(60);

    fn missing_tools() -> bool {
        let missing: Vec<&str> = ["Xvfb", "dbus-daemon", "xclip", "busctl"]
            .into_iter()
            .filter(|t| {
                !Command::new("sh")
                    .args(["-c", &format!("command -v {t}")])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .collect();
        if missing.is_empty() {
            return false;
        }
        assert!(
            std::env::var_os("PICOCLAW_REQUIRE_TOOLS").is_none(),
            "the tray test needs {missing:?} (scripts/test installs xvfb, dbus-daemon, xclip, systemd)"
        );
        eprintln!("skipping: {missing:?} not installed");
        true
    }

    /// Xvfb and a session bus, killed on drop.
    struct Desktop {
        xvfb: Child,
        bus: Child,
        display: String,
        address: String,
        _dir: tempfile::TempDir,
    }

    impl Drop for Desktop {
        fn drop(&mut self) {
            support::terminate(&mut self.bus);
            support::terminate(&mut self.xvfb);
        }
    }

    impl Desktop {
        fn start() -> Desktop {
            let dir = tempfile::tempdir().unwrap();
            // A display number nobody uses.
            let n = (90..400)
                .map(|i| i + (std::process::id() % 300))
                .find(|n| {
                    !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                        && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
                })
                .unwrap();
            let xvfb = Command::new("Xvfb")
                .args([&format!(":{n}"), "-nolisten", "tcp", "-screen", "0", "640x480x24"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb");
            let socket = dir.path().join("bus");
            let address = format!("unix:path={}", socket.display());
            let bus = Command::new("dbus-daemon")
                .args(["--session", "--nofork", "--nopidfile", &format!("--address={address}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dbus-daemon");
            let desktop = Desktop { xvfb, bus, display: format!(":{n}"), address, _dir: dir };
            assert!(
                eventually(DEADLINE, || Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                    && socket.exists()),
                "Xvfb :{n} or the bus did not come up"
            );
            desktop
        }

        fn busctl(&self, args: &[&str]) -> Option<String> {
            let out =
                Command::new("busctl").arg(format!("--address={}", self.address)).args(args).output().ok()?;
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
        }

        fn clipboard(&self) -> String {
            Command::new("xclip")
                .args(["-selection", "clipboard", "-o"])
                .env("DISPLAY", &self.display)
                .stderr(Stdio::null())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default()
        }

        /// The tray's bus name, once registered.
        fn item(&self, pid: u32) -> String {
            let name = format!("org.kde.StatusNotifierItem-{pid}-1");
            let mut names = String::new();
            let found = eventually(DEADLINE, || {
                names = self.busctl(&["list", "--no-pager", "--no-legend"]).unwrap_or_default();
                names.lines().any(|l| l.split_whitespace().next() == Some(name.as_str()))
            });
            assert!(found, "{name} never appeared on the bus:\n{names}");
            name
        }

        /// (id, label, enabled) of every menu item, from dbusmenu GetLayout.
        fn menu(&self, item: &str) -> Vec<(i64, String, bool)> {
            let out = self
                .busctl(&[
                    "--json=short",
                    "--",
                    "call",
                    item,
                    "/MenuBar",
                    "com.canonical.dbusmenu",
                    "GetLayout",
                    "iias",
                    "0",
                    "-1",
                    "0",
                ])
                .expect("GetLayout");
            let layout: Value = serde_json::from_str(&out).unwrap();
            let mut items = Vec::new();
            collect(&layout, &mut items);
            items
        }

        fn click(&self, item: &str, id: i64) {
            let id = id.to_string();
            self.busctl(&[
                "--",
                "call",
                item,
                "/MenuBar",
                "com.canonical.dbusmenu",
                "Event",
                "isvu",
                &id,
                "clicked",
                "s",
                "",
                "0",
            ])
            .expect("Event clicked");
        }

        fn click_label(&self, item: &str, label: &str) {
            let menu = self.menu(item);
            let id = menu
                .iter()
                .find(|(_, l, _)| l == label)
                .unwrap_or_else(|| panic!("no {label} in {menu:?}"))
                .0;
            self.click(item, id);
        }

        fn menu_text(&self, item: &str) -> String {
            self.menu(item).into_iter().map(|(_, l, _)| l).collect::<Vec<_>>().join("\n")
        }
    }

    /// Walks GetLayout's JSON: an item is `[id, {props}, [children]]`.
    fn collect(v: &Value, out: &mut Vec<(i64, String, bool)>) {
        match v {
            Value::Array(a) => {
                if let [Value::Number(id), Value::Object(props), Value::Array(_)] = a.as_slice()
                    && let Some(label) = props.get("label").and_then(|l| l["data"].as_str())
                {
                    let enabled = props.get("enabled").and_then(|e| e["data"].as_bool()).unwrap_or(true);
                    out.push((id.as_i64().unwrap_or(-1), label.to_owned(), enabled));
                }
                a.iter().for_each(|x| collect(x, out));
            }
            Value::Object(o) => o.values().for_each(|x| collect(x, out)),
            _ => {}
        }
    }

    /// A fake `xdg-open` that records its arguments, first on PATH.
    fn fake_opener(home: &TestHome) -> (PathBuf, String) {
        let bin = home.file("fake-bin");
        std::fs::create_dir_all(&bin).unwrap();
        let record = home.file("opened.txt");
        let script = bin.join("xdg-open");
        std::fs::write(&script, format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n", record.display()))
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        (record, path)
    }

    fn tray_home(desktop: &Desktop) -> (TestHome, PathBuf) {
        let home = home();
        let (record, path) = fake_opener(&home);
        let home = home
            .env("DISPLAY", &desktop.display)
            .env("DBUS_SESSION_BUS_ADDRESS", &desktop.address)
            .env("PATH", &path);
        (home, record)
    }

    fn wait_exit(l: &mut Launcher) -> std::process::ExitStatus {
        let mut status = None;
        assert!(
            eventually(DEADLINE, || {
                status = l.child.try_wait().ok().flatten();
                status.is_some()
            }),
            "the launcher did not exit after Quit"
        );
        status.unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_tray_registers_copies_the_token_opens_a_one_time_link_stops_the_gateway_and_quits() {
        if missing_tools() {
            return;
        }
        let desktop = Desktop::start();
        let (home, opened) = tray_home(&desktop);
        let mut l = start(&home, &["--tray"]);
        let token = l.token();
        let gateway_pid = l.gateway_record()["pid"].as_u64().unwrap();
        let item = desktop.item(l.child.id());

        // The menu lists the actions; the state line says the gateway runs.
        let mut text = String::new();
        assert!(
            eventually(DEADLINE, || {
                text = desktop.menu_text(&item);
                text.contains("Gateway running")
            }),
            "{text}"
        );
        let labels: Vec<String> =
            desktop.menu(&item).into_iter().filter(|(_, _, on)| *on).map(|(_, l, _)| l).collect();
        for action in ["Start", "Stop", "Restart", "Open dashboard", "Copy Console Token", "Quit"] {
            assert!(labels.iter().any(|l| l == action), "{action} missing from {labels:?}");
        }
        // The tooltip and title carry the state, never the token.
        let tooltip = desktop
            .busctl(&[
                "--json=short",
                "--",
                "get-property",
                &item,
                "/StatusNotifierItem",
                "org.kde.StatusNotifierItem",
                "ToolTip",
                "Title",
            ])
            .unwrap();
        assert!(tooltip.contains("Gateway running") && !tooltip.contains(&token), "{tooltip}");

        // Copy Console Token: the launcher token on the X clipboard.
        desktop.click_label(&item, "Copy Console Token");
        let mut clip = String::new();
        assert!(
            eventually(DEADLINE, || {
                clip = desktop.clipboard();
                clip == token
            }),
            "the clipboard holds {clip:?}"
        );
        assert!(eventually(DEADLINE, || desktop.menu_text(&item).contains("copied to the clipboard")));

        // Open dashboard: the opener gets a private file, never the link; the file's link
        // logs in once.
        desktop.click_label(&item, "Open dashboard");
        let mut args = String::new();
        assert!(
            eventually(DEADLINE, || {
                args = std::fs::read_to_string(&opened).unwrap_or_default();
                !args.is_empty()
            }),
            "the opener never ran"
        );
        assert!(!args.contains("code=") && !args.contains(&token), "a credential in argv: {args}");
        let file = PathBuf::from(args.trim());
        assert_eq!(crate::launcher_support::mode(&file), 0o600, "{}", file.display());
        let page = std::fs::read_to_string(&file).unwrap();
        let code: String = page
            .split("#code=")
            .nth(1)
            .expect("a login link in the page")
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        assert!(page.contains(&format!("{}login#code={code}", l.url)), "{page}");
        let a = post_json(&l, "/login/code", None, json!({ "code": code })).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(post_json(&l, "/login/code", None, json!({ "code": code })).await.status, 401);

        // Stop: the gateway (through the dashboard's control code) stops.
        desktop.click_label(&item, "Stop");
        assert!(eventually(DEADLINE, || !alive(gateway_pid)), "the gateway still runs");
        assert!(eventually(DEADLINE, || desktop.menu_text(&item).contains("Gateway stopped")));
        assert!(!home.file(".picoclaw.pid").exists());

        // Quit: the launcher exits cleanly.
        desktop.click_label(&item, "Quit");
        let status = wait_exit(&mut l);
        assert!(status.success(), "{status}: {}", l.stderr());
        assert!(!file.exists(), "the page with the (used) code is removed at exit");
        let log = std::fs::read_to_string(home.file("logs/launcher.log")).unwrap_or_default();
        assert!(!log.contains(&token) && !log.contains(&code), "a credential in launcher.log:\n{log}");
        assert!(log.contains("tray icon registered"), "{log}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_token_from_the_environment_is_not_copied_and_the_menu_says_where_it_is() {
        if missing_tools() {
            return;
        }
        let desktop = Desktop::start();
        let secret = "launcher-token-from-env-for-the-tray-0123";
        let (home, _) = tray_home(&desktop);
        let home = home.env("PICOCLAW_LAUNCHER_TOKEN", secret);
        let mut l = start(&home, &["--tray"]);
        let item = desktop.item(l.child.id());
        desktop.click_label(&item, "Copy Console Token");
        let mut text = String::new();
        assert!(
            eventually(DEADLINE, || {
                text = desktop.menu_text(&item);
                text.contains("Not copied: the token is set by env PICOCLAW_LAUNCHER_TOKEN")
            }),
            "{text}"
        );
        assert_ne!(desktop.clipboard(), secret, "nothing copied");
        assert!(!text.contains(secret));
        desktop.click_label(&item, "Quit");
        assert!(wait_exit(&mut l).success());
    }

    #[test]
    fn without_a_session_bus_the_tray_fails_with_a_clear_error() {
        let home = home().env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/picoclaw-test-bus");
        let out = home.run(&["launcher", "--tray", "--no-browser", "--port", "0"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("cannot show the tray icon") && stderr.contains("D-Bus"), "{stderr}");
    }
}

/// The headless build (no `tray` feature): `--tray` is refused, naming the feature.
#[cfg(not(all(feature = "tray", target_os = "linux")))]
#[test]
fn a_build_without_the_tray_feature_refuses_tray_with_exit_2() {
    let home = crate::launcher_support::home();
    let out = home.run(&["launcher", "--tray", "--no-browser", "--port", "0"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the `tray` feature"), "{stderr}");
}
