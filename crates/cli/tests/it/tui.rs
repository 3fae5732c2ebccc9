//! `picoclaw tui` used as a person would: tmux runs it in an 80×24 pane, `send-keys`
//! types, `capture-pane` reads the screen. Start the gateway, chat with it, rotate the
//! pico token (the new value shown once, the old one never), create a named token, quit
//! (q, Ctrl-C, SIGTERM) with the terminal restored; the first screen is a golden file
//! (`goldens/tui-80x24.txt`, re-bless with `PICOCLAW_BLESS=1`).
//!
//! `scripts/test` installs tmux; without it these tests skip, unless
//! PICOCLAW_REQUIRE_TOOLS is set (then they fail).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{self, TestHome};

/// The pico token the homes start with.
const PICO: &str = "tui-pico-token-5d4c3b2a1f0e9d8c7b6a5f4e3d2c1b0a";
/// How long any screen may take to appear (a shared, noisy machine: generous).
const DEADLINE: Duration = Duration::from_secs(90);

/// True when tmux is missing and the run does not require it.
fn skip_without_tmux() -> bool {
    if Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()) {
        return false;
    }
    assert!(
        std::env::var_os("PICOCLAW_REQUIRE_TOOLS").is_none(),
        "tmux is required but not installed (scripts/test installs Debian's tmux)"
    );
    eprintln!("skipping: tmux is not installed");
    true
}

/// An onboarded home whose gateway listens on a free loopback port, with [`PICO`].
fn home() -> TestHome {
    let home = TestHome::onboarded();
    let text = std::fs::read_to_string(home.file("config.json")).unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&text).unwrap();
    config["gateway"]["host"] = "127.0.0.1".into();
    config["gateway"]["port"] = 0.into();
    home.write_config(&config);
    home.write_security(&format!("channels:\n  pico:\n    token: \"{PICO}\"\n"));
    home
}

/// The pico token in the home's `.security.yml` now.
fn pico_token(home: &TestHome) -> String {
    let text = std::fs::read_to_string(home.file(".security.yml")).unwrap();
    let line = text.lines().find(|l| l.trim_start().starts_with("token:")).expect("a token line");
    line.trim_start().trim_start_matches("token:").trim().trim_matches('"').to_owned()
}

/// A tmux server of its own running `picoclaw tui` in one 80×24 pane; killed on drop,
/// with any gateway the TUI left running.
struct Tui<'a> {
    socket: String,
    home: &'a TestHome,
    /// Every screen seen, to check no secret was ever shown.
    seen: Vec<String>,
}

impl<'a> Tui<'a> {
    fn start(home: &'a TestHome) -> Tui<'a> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let socket = format!("picoclaw-tui-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let tui = Tui { socket, home, seen: Vec::new() };
        // After the TUI ends the shell reports its exit code and whether the terminal is
        // back in canonical (cooked) mode, then waits to be read.
        let script = format!(
            "'{}' tui; echo EXIT=$?; stty -a | tr ' ' '\\n' | grep -x -- '-\\?icanon' | sed 's/^/MODE=/'; exec sleep 600",
            support::bin()
        );
        let home_env = format!("PICOCLAW_HOME={}", home.path().display());
        let out = tui.tmux(&[
            "new-session",
            "-d",
            "-x",
            "80",
            "-y",
            "24",
            "-e",
            &home_env,
            "-e",
            "TERM=xterm-256color",
            "sh",
            "-c",
            &script,
        ]);
        assert!(out.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&out.stderr));
        tui
    }

    fn tmux(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket, "-f", "/dev/null"]).args(args).env_clear().stdin(Stdio::null());
        if let Some(path) = std::env::var_os("PATH") {
            cmd.env("PATH", path);
        }
        cmd.env("HOME", self.home.path()).env("PICOCLAW_HOME", self.home.path());
        cmd.output().expect("run tmux")
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "0"];
        args.extend_from_slice(keys);
        let out = self.tmux(&args);
        assert!(out.status.success(), "send-keys: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        self.keys(&["-l", text]);
    }

    fn capture(&mut self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-t", "0"]);
        let screen = String::from_utf8_lossy(&out.stdout).into_owned();
        self.seen.push(screen.clone());
        screen
    }

    /// Polls the screen until `ready` holds (generous deadline, no timing asserted).
    fn wait(&mut self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let screen = self.capture();
            if ready(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "waited for {what}; the screen is:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn format(&self, format: &str) -> String {
        let out = self.tmux(&["display", "-p", "-t", "0", format]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The pid of `picoclaw tui` (the pane's shell's child).
    fn tui_pid(&self) -> u32 {
        let shell: u32 = self.format("#{pane_pid}").parse().expect("pane pid");
        let children = std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap();
        children.split_whitespace().next().and_then(|p| p.parse().ok()).expect("the tui process")
    }

    /// Waits for the TUI to end; asserts it exited 0 with the terminal restored.
    fn assert_exited_restored(&mut self) {
        let screen = self.wait("the shell after the TUI", |s| s.contains("MODE="));
        assert!(screen.contains("EXIT=0"), "the TUI did not exit 0:\n{screen}");
        assert!(screen.contains("MODE=icanon"), "the terminal was left in raw mode:\n{screen}");
        assert!(!screen.contains("gateway:"), "the TUI's screen was left behind:\n{screen}");
        assert_eq!(self.format("#{alternate_on}"), "0", "the alternate screen is still on");
    }
}

impl Drop for Tui<'_> {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
        let _ = self.home.run(&["gateway", "stop"]);
    }
}

fn pid_on(screen: &str) -> Option<u32> {
    let rest = &screen[screen.find("gateway: running  pid ")? + "gateway: running  pid ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// The log pane's text: its rows joined (long lines are wrapped by characters, so a line
/// reads whole again).
fn log_pane(screen: &str) -> String {
    screen
        .lines()
        .skip(2)
        .take(9)
        .filter_map(|l| l.split_once("││").map(|(_, right)| right.trim_end_matches('│').to_owned()))
        .collect()
}

/// The fingerprint in the credentials table's `pico token` row.
fn pico_fingerprint(screen: &str) -> Option<String> {
    let line = screen.lines().find(|l| l.contains("│pico token "))?;
    let cell = line.split('│').nth(1)?;
    cell.split_whitespace().last().map(str::to_owned)
}

#[test]
fn start_chat_rotate_and_quit_as_a_person_would() {
    if skip_without_tmux() {
        return;
    }
    let home = home();
    let mut tui = Tui::start(&home);
    let first =
        tui.wait("the stopped gateway", |s| s.contains("gateway: stopped") && s.contains("│pico token"));
    let old_fp = pico_fingerprint(&first).expect("the pico token's fingerprint");

    // s: the gateway starts and the header shows its pid (the one in .picoclaw.pid).
    tui.keys(&["s"]);
    let screen = tui.wait("the running gateway", |s| pid_on(s).is_some());
    let pid = pid_on(&screen).unwrap();
    let record = support::wait_for_record(home.path(), pid, DEADLINE).expect("the gateway's record");
    assert_eq!(record["pid"], pid);
    assert!(home.run(&["gateway", "status"]).status.success());
    // The log pane follows logs/gateway.log, which the new gateway writes.
    tui.wait("the gateway's log line", |s| log_pane(s).contains("gateway listening on http://127.0.0.1:"));

    // c, a message, Enter: the echo agent's answer appears under it.
    tui.keys(&["c"]);
    tui.type_text("hello from tmux");
    tui.keys(&["Enter"]);
    tui.wait("the echo answer", |s| s.contains("│> hello from tmux") && s.contains("│  hello from tmux"));

    // Tab leaves the chat; t, y rotates the pico token: the new value is shown once, with
    // its fingerprint; the old one is never on screen.
    tui.keys(&["Tab"]);
    tui.keys(&["t"]);
    tui.wait("the rotation prompt", |s| s.contains("Rotate?"));
    tui.keys(&["y"]);
    let shown = tui.wait("the new token", |s| s.contains("new pico token") && s.contains("Shown once"));
    let new = pico_token(&home);
    assert_ne!(new, PICO, "the file still holds the old token");
    assert!(shown.contains(&new), "the new token is not shown once:\n{shown}");
    assert!(shown.contains("reloaded"), "the gateway was not asked to reload:\n{shown}");
    tui.keys(&["Enter"]);
    let after = tui.wait("the dialog closed and the new fingerprint", |s| {
        !s.contains("Shown once") && pico_fingerprint(s).is_some_and(|fp| fp != old_fp)
    });
    assert!(!after.contains(&new), "the new token is still on screen:\n{after}");

    // The chat still works (the TUI uses the runtime token, not the pico token).
    tui.keys(&["c"]);
    tui.type_text("after rotation");
    tui.keys(&["Enter"]);
    tui.wait("the second answer", |s| s.contains("│  after rotation"));
    tui.keys(&["Tab"]);

    // q quits; the terminal is back as it was; the gateway keeps running (docs/tui.md).
    tui.keys(&["q"]);
    tui.assert_exited_restored();
    assert!(home.run(&["gateway", "status"]).status.success(), "the gateway stopped with the TUI");

    // The old token was never on screen; the new one only in the one dialog; neither in
    // the gateway's log.
    let log = std::fs::read_to_string(home.file("logs/gateway.log")).unwrap();
    assert!(!log.contains(PICO) && !log.contains(&new), "a token is in logs/gateway.log");
    for screen in &tui.seen {
        assert!(!screen.contains(PICO), "the old token was shown:\n{screen}");
        if screen.contains(&new) {
            assert!(screen.contains("Shown once"), "the new token outside its dialog:\n{screen}");
        }
    }
    let stop = home.run(&["gateway", "stop"]);
    assert!(stop.status.success());
}

#[test]
fn first_screen_at_80x24_matches_the_golden() {
    if skip_without_tmux() {
        return;
    }
    let home = home();
    let mut tui = Tui::start(&home);
    let screen =
        tui.wait("the first screen", |s| s.contains("gateway: stopped") && s.contains("│pico token"));
    let normalised = screen.replace(&home.path().display().to_string(), "<HOME>");
    assert!(!normalised.contains(PICO), "the first screen shows the pico token");
    crate::golden::assert_golden("tui-80x24.txt", &normalised);
    tui.keys(&["C-c"]);
    tui.assert_exited_restored();
}

#[test]
fn create_shows_the_named_token_once() {
    if skip_without_tmux() {
        return;
    }
    let home = home();
    let mut tui = Tui::start(&home);
    tui.wait("the first screen", |s| s.contains("gateway: stopped") && s.contains("│pico token"));
    tui.keys(&["n"]);
    tui.wait("the name prompt", |s| s.contains("Name ("));
    tui.type_text("ci-bot");
    tui.keys(&["Enter"]);
    tui.wait("the scope prompt", |s| s.contains("r read"));
    tui.keys(&["c"]);
    let shown =
        tui.wait("the new token", |s| s.contains("token `ci-bot` (chat scope)") && s.contains("Shown once"));
    // The value is the line after "Shown once" and a blank line; `token list` knows its
    // fingerprint, which the dialog shows too.
    let list = home.run(&["token", "list", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let fingerprint =
        listed["tokens"][0]["fingerprint"].as_str().expect("the new token is listed").to_owned();
    assert!(shown.contains(&format!("fingerprint {fingerprint}")), "{shown}");
    let value_line = shown
        .lines()
        .skip_while(|l| !l.contains("Shown once"))
        .nth(2)
        .map(|l| l.trim_matches(|c: char| c == '│' || c.is_whitespace()).to_owned())
        .expect("the value line");
    assert!(value_line.len() >= 32, "no token on the value line: {value_line:?}\n{shown}");
    tui.keys(&["Escape"]);
    let after = tui
        .wait("the table with the new token", |s| !s.contains("Shown once") && s.contains("ci-bot (chat)"));
    assert!(!after.contains(&value_line), "the token is still on screen:\n{after}");
    // SIGTERM ends it with the terminal restored, too.
    support::unsafe_free_kill(tui.tui_pid(), "TERM");
    tui.assert_exited_restored();
}

#[test]
fn a_missing_home_file_is_not_needed_to_quit_with_ctrl_c() {
    if skip_without_tmux() {
        return;
    }
    // An empty home (not onboarded): the screen still comes up, and Ctrl-C restores the
    // terminal.
    let home = TestHome::new();
    let mut tui = Tui::start(&home);
    tui.wait("the first screen", |s| s.contains("gateway: stopped"));
    tui.keys(&["C-c"]);
    tui.assert_exited_restored();
    assert!(!Path::new(&home.file(".picoclaw.pid")).exists());
}

#[test]
fn without_a_terminal_it_says_so_and_changes_nothing() {
    // No tmux needed: stdin and stdout are pipes here.
    let home = home();
    let out = home.run(&["tui"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("picoclaw tui needs a terminal"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "escape codes were written to a pipe");
    assert!(!home.file(".picoclaw.pid").exists());
}
