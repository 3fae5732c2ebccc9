//! `picoclaw launcher --tray` (Linux, the `tray` cargo feature): a StatusNotifierItem over
//! D-Bus (`ksni`) beside the running launcher. The menu only calls the launcher's own
//! [`Handle`]: gateway Start / Stop / Restart through the dashboard's `GatewayControl`, a
//! fresh one-time login link for "Open dashboard", the launcher token for "Copy Console
//! Token" (seed 001; not copied when it is managed outside picoclaw) and Quit. The tooltip
//! shows the gateway's state, never a token.

use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use ksni::TrayMethods as _;
use picoclaw_credentials::Secret;
use picoclaw_launcher::{ConsoleToken, GatewayState, GatewayStatus, Handle};
use tokio::sync::mpsc;

/// What a menu click asks for; carried out off the D-Bus task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Start,
    Stop,
    Restart,
    Open,
    Copy,
    Quit,
}

/// The item's state: what the menu and tooltip show.
struct Item {
    actions: mpsc::UnboundedSender<Action>,
    gateway: String,
    /// The last message for the user (copied, not copied and why, an error).
    notice: Option<String>,
}

impl Item {
    fn send(&self, action: Action) {
        // The receiver lives as long as the launcher; after Quit nothing is left to do.
        let _ = self.actions.send(action);
    }
}

fn describe(status: &GatewayStatus) -> String {
    let state = match status.state {
        GatewayState::Running => "running",
        GatewayState::Starting => "starting",
        GatewayState::Stopping => "stopping",
        GatewayState::Restarting => "restarting",
        GatewayState::Stopped => "stopped",
        _ => "error",
    };
    match (status.pid, &status.error) {
        (Some(pid), _) => format!("Gateway {state} (pid {pid})"),
        (None, Some(e)) if status.state != GatewayState::Running => format!("Gateway {state}: {e}"),
        _ => format!("Gateway {state}"),
    }
}

impl ksni::Tray for Item {
    fn id(&self) -> String {
        "picoclaw".into()
    }
    fn title(&self) -> String {
        format!("PicoClaw: {}", self.gateway)
    }
    fn icon_name(&self) -> String {
        "network-server".into()
    }
    fn status(&self) -> ksni::Status {
        ksni::Status::Active
    }
    fn tool_tip(&self) -> ksni::ToolTip {
        ksni::ToolTip {
            title: "PicoClaw".into(),
            description: match &self.notice {
                Some(n) => format!("{}\n{n}", self.gateway),
                None => self.gateway.clone(),
            },
            ..Default::default()
        }
    }
    fn menu(&self) -> Vec<ksni::MenuItem<Self>> {
        use ksni::menu::StandardItem;
        let item = |label: &str, action: Action| -> ksni::MenuItem<Self> {
            StandardItem {
                label: label.into(),
                activate: Box::new(move |this: &mut Self| this.send(action)),
                ..Default::default()
            }
            .into()
        };
        let info = |label: String| -> ksni::MenuItem<Self> {
            StandardItem { label, enabled: false, ..Default::default() }.into()
        };
        let mut menu = vec![info(self.gateway.clone())];
        if let Some(notice) = &self.notice {
            menu.push(info(notice.clone()));
        }
        menu.extend([
            ksni::MenuItem::Separator,
            item("Start", Action::Start),
            item("Stop", Action::Stop),
            item("Restart", Action::Restart),
            ksni::MenuItem::Separator,
            item("Open dashboard", Action::Open),
            item("Copy Console Token", Action::Copy),
            ksni::MenuItem::Separator,
            item("Quit", Action::Quit),
        ]);
        menu
    }
}

/// The X clipboard: arboard serves the selection from the process that owns the
/// `Clipboard`, so one lives on this thread for as long as the launcher runs.
fn clipboard_thread() -> std_mpsc::Sender<(Secret, std::sync::mpsc::Sender<Result<(), String>>)> {
    let (tx, rx) = std_mpsc::channel::<(Secret, std_mpsc::Sender<Result<(), String>>)>();
    std::thread::spawn(move || {
        let mut clipboard: Option<arboard::Clipboard> = None;
        for (text, reply) in rx {
            if clipboard.is_none() {
                clipboard = arboard::Clipboard::new().ok();
            }
            let done = match clipboard.as_mut() {
                Some(c) => c.set_text(text.expose().to_owned()).map_err(|e| e.to_string()),
                None => Err("no clipboard (is DISPLAY set?)".to_owned()),
            };
            let _ = reply.send(done);
        }
    });
    tx
}

/// Runs the tray until Quit (then the caller stops the launcher cleanly). `token_from`
/// names where an external token lives (`env PICOCLAW_LAUNCHER_TOKEN`, a file).
pub async fn run(
    launcher: Handle,
    token_from: String,
    open: impl Fn(&Secret) -> Result<(), String> + Send + 'static,
) -> Result<(), String> {
    let (actions, mut rx) = mpsc::unbounded_channel();
    let gateway = describe(&launcher.gateway().status().await);
    let tray = Item { actions, gateway, notice: None }
        // Register without a StatusNotifierWatcher too: a panel that starts later (or a
        // test reading the bus) still finds the item by its name.
        .assume_sni_available(true)
        .spawn()
        .await
        .map_err(|e| format!("cannot show the tray icon: {e} (is a D-Bus session bus running?)"))?;
    tracing::info!("tray icon registered on the D-Bus session bus");
    let clipboard = clipboard_thread();

    // The gateway's state, refreshed every 2 s.
    let poll_tray = tray.clone();
    let poll_launcher = launcher.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let text = describe(&poll_launcher.gateway().status().await);
            let changed = poll_tray
                .update(|t| {
                    let changed = t.gateway != text;
                    t.gateway = text;
                    changed
                })
                .await;
            if changed.is_none() {
                return;
            }
        }
    });

    while let Some(action) = rx.recv().await {
        let notice = match action {
            Action::Start => launcher.gateway().start().await.err().map(|e| e.to_string()),
            Action::Stop => launcher.gateway().stop().await.err().map(|e| e.to_string()),
            Action::Restart => launcher.gateway().restart().await.err().map(|e| e.to_string()),
            Action::Open => Some(match launcher.login_link() {
                Ok(link) => match open(&link) {
                    Ok(()) => "Dashboard opened with a one-time login link".to_owned(),
                    Err(e) => e,
                },
                Err(e) => e.to_string(),
            }),
            Action::Copy => Some(match launcher.console_token() {
                ConsoleToken::Value(token) => {
                    let (reply, answer) = std_mpsc::channel();
                    let copied = clipboard
                        .send((token, reply))
                        .ok()
                        .and_then(|()| tokio::task::block_in_place(|| answer.recv().ok()));
                    match copied {
                        Some(Ok(())) => {
                            tracing::info!("launcher token copied to the clipboard from the tray");
                            "Launcher token copied to the clipboard".to_owned()
                        }
                        Some(Err(e)) => format!("Cannot copy the token: {e}"),
                        None => "Cannot copy the token: the clipboard is gone".to_owned(),
                    }
                }
                ConsoleToken::External => {
                    tracing::info!("Copy Console Token: the token is set by {token_from}; nothing copied");
                    format!("Not copied: the token is set by {token_from}")
                }
            }),
            Action::Quit => break,
        };
        let gateway = describe(&launcher.gateway().status().await);
        if let Some(n) = &notice {
            tracing::info!("tray: {n}");
        }
        tray.update(|t| {
            t.gateway = gateway;
            t.notice = notice;
        })
        .await;
    }
    tray.shutdown().await;
    Ok(())
}
