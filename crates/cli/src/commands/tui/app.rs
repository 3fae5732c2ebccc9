//! The TUI's state and what each key does to it. Drawing is in `render`; the work a key
//! asks for is returned as an [`Action`] and done by `work` / `chat`.

use std::collections::VecDeque;

use picoclaw_auth::Scope;
use picoclaw_credentials::Secret;
use picoclaw_launcher::GatewayStatus;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::chat::ChatEvent;
use super::logtail::LogTail;
use super::work::{CredRow, Done};

/// Chat lines kept.
pub const CHAT_LINES: usize = 200;
/// Longest chat input, in characters.
pub const INPUT_MAX: usize = 2000;
/// Longest kept chat message, in bytes (longer ones are cut).
pub const CHAT_LINE_MAX: usize = 4096;
/// Longest token name typed in the create prompt.
const NAME_MAX: usize = 64;

/// Which pane keys go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    /// The credentials table.
    Credentials,
    /// The log tail.
    Logs,
    /// The chat input line: printable keys are typed.
    Chat,
}

/// A dialog over the panes; it takes every key until it is closed.
pub enum Modal {
    /// "Rotate the pico token?" (y/n).
    ConfirmRotate,
    /// Typing a new token's name.
    CreateName(String),
    /// Choosing its scope.
    CreateScope(String),
    /// A new secret, shown this once; dropping it zeroizes it.
    Secret { title: String, detail: String, secret: Secret },
}

/// Who said a chat line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The user.
    You,
    /// The gateway's agent.
    Agent,
    /// A connection note or an error.
    Note,
}

/// One line of the chat pane.
pub struct ChatLine {
    /// Who said it.
    pub who: Who,
    /// The message id it renders (answers are updated in place).
    pub id: Option<String>,
    /// The text.
    pub text: String,
}

/// What the event loop does after a key.
pub enum Action {
    None,
    Quit,
    Start,
    Stop,
    Restart,
    RotatePico,
    Create { name: String, scope: Scope },
    Send(String),
}

/// Everything on the screen.
pub struct App {
    pub status: Option<GatewayStatus>,
    pub credentials: Result<Vec<CredRow>, String>,
    pub logs: LogTail,
    pub chat: VecDeque<ChatLine>,
    pub input: String,
    pub focus: Focus,
    pub modal: Option<Modal>,
    /// The last operation's outcome (`true`: it failed).
    pub notice: Option<(bool, String)>,
    /// A chat turn is under way.
    pub waiting: bool,
}

impl App {
    pub fn new(logs: LogTail) -> App {
        App {
            status: None,
            credentials: Ok(Vec::new()),
            logs,
            chat: VecDeque::new(),
            input: String::new(),
            focus: Focus::Credentials,
            modal: None,
            notice: None,
            waiting: false,
        }
    }

    /// Takes a background result.
    pub fn apply(&mut self, done: Done) {
        match done {
            Done::Status(status) => self.status = Some(status),
            Done::Credentials(rows) => self.credentials = rows,
            Done::Notice(text) => self.notice = Some((false, printable(&text, CHAT_LINE_MAX))),
            Done::Failed(text) => self.notice = Some((true, printable(&text, CHAT_LINE_MAX))),
            Done::Secret { title, detail, secret } => {
                self.notice = Some((false, format!("{title}: {detail}")));
                self.modal = Some(Modal::Secret { title, detail, secret });
            }
            Done::Chat(event) => self.chat_event(event),
        }
    }

    fn chat_event(&mut self, event: ChatEvent) {
        match event {
            ChatEvent::Connected { pid, session } => {
                self.push_chat(Who::Note, None, format!("connected to gateway pid {pid}, session {session}"));
            }
            ChatEvent::Message { id, content } => {
                if let Some(line) = self.chat.iter_mut().rev().find(|l| l.id.as_deref() == Some(id.as_str()))
                {
                    line.text = printable(&content, CHAT_LINE_MAX);
                } else {
                    self.push_chat(Who::Agent, Some(id), content);
                }
            }
            ChatEvent::TurnDone => self.waiting = false,
            ChatEvent::Error(text) => {
                self.waiting = false;
                self.push_chat(Who::Note, None, format!("error: {text}"));
            }
        }
    }

    fn push_chat(&mut self, who: Who, id: Option<String>, text: String) {
        let text = printable(&text, CHAT_LINE_MAX);
        if self.chat.len() >= CHAT_LINES {
            self.chat.pop_front();
        }
        self.chat.push_back(ChatLine { who, id, text });
    }

    /// What `key` does.
    pub fn key(&mut self, key: KeyEvent) -> Action {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        // In raw mode Ctrl-C is a key, not a signal: it always quits.
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('d')) {
            return Action::Quit;
        }
        if let Some(modal) = self.modal.take() {
            return self.modal_key(modal, key);
        }
        if self.focus == Focus::Chat {
            return self.chat_key(key);
        }
        match key.code {
            KeyCode::Char('q') => Action::Quit,
            KeyCode::Char('s') => self.busy("starting the gateway…", Action::Start),
            KeyCode::Char('x') => self.busy("stopping the gateway…", Action::Stop),
            KeyCode::Char('r') => self.busy("restarting the gateway…", Action::Restart),
            KeyCode::Char('t') => {
                self.modal = Some(Modal::ConfirmRotate);
                Action::None
            }
            KeyCode::Char('n') => {
                self.modal = Some(Modal::CreateName(String::new()));
                Action::None
            }
            KeyCode::Char('c') | KeyCode::Char('i') => {
                self.focus = Focus::Chat;
                Action::None
            }
            KeyCode::Tab => {
                self.focus = match self.focus {
                    Focus::Credentials => Focus::Logs,
                    Focus::Logs => Focus::Chat,
                    Focus::Chat => Focus::Credentials,
                };
                Action::None
            }
            _ => Action::None,
        }
    }

    fn busy(&mut self, what: &str, action: Action) -> Action {
        self.notice = Some((false, what.to_owned()));
        action
    }

    fn chat_key(&mut self, key: KeyEvent) -> Action {
        if key.modifiers.contains(KeyModifiers::ALT) {
            // Esc followed at once by a key arrives as Alt+key: leave the chat, then the key.
            self.focus = Focus::Credentials;
            return self.key(KeyEvent::new(key.code, key.modifiers - KeyModifiers::ALT));
        }
        match key.code {
            KeyCode::Esc => self.focus = Focus::Credentials,
            KeyCode::Tab => self.focus = Focus::Credentials,
            KeyCode::Backspace => {
                self.input.pop();
            }
            KeyCode::Enter => {
                let text = self.input.trim().to_owned();
                if text.is_empty() {
                    return Action::None;
                }
                if self.waiting {
                    self.notice = Some((true, "wait for the answer before sending the next message".into()));
                    return Action::None;
                }
                self.input.clear();
                self.waiting = true;
                self.push_chat(Who::You, None, text.clone());
                return Action::Send(text);
            }
            KeyCode::Char(c) if self.input.chars().count() < INPUT_MAX && !c.is_control() => {
                self.input.push(c)
            }
            _ => {}
        }
        Action::None
    }

    fn modal_key(&mut self, modal: Modal, key: KeyEvent) -> Action {
        match modal {
            Modal::ConfirmRotate => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') => {
                    self.busy("rotating the pico token…", Action::RotatePico)
                }
                KeyCode::Char('n') | KeyCode::Esc => Action::None,
                _ => {
                    self.modal = Some(Modal::ConfirmRotate);
                    Action::None
                }
            },
            Modal::CreateName(mut name) => {
                match key.code {
                    KeyCode::Esc => return Action::None,
                    KeyCode::Enter if !name.trim().is_empty() => {
                        self.modal = Some(Modal::CreateScope(name.trim().to_owned()));
                        return Action::None;
                    }
                    KeyCode::Backspace => {
                        name.pop();
                    }
                    KeyCode::Char(c) if name.len() < NAME_MAX && !c.is_control() => name.push(c),
                    _ => {}
                }
                self.modal = Some(Modal::CreateName(name));
                Action::None
            }
            Modal::CreateScope(name) => {
                let scope = match key.code {
                    KeyCode::Esc => return Action::None,
                    KeyCode::Char('r') => Scope::Read,
                    KeyCode::Char('c') => Scope::Chat,
                    KeyCode::Char('a') => Scope::Admin,
                    _ => {
                        self.modal = Some(Modal::CreateScope(name));
                        return Action::None;
                    }
                };
                self.busy("creating the token…", Action::Create { name, scope })
            }
            Modal::Secret { title, detail, secret } => {
                if matches!(key.code, KeyCode::Enter | KeyCode::Esc) {
                    // Dropped here: the value is zeroized and never drawn again.
                    drop(secret);
                } else {
                    self.modal = Some(Modal::Secret { title, detail, secret });
                }
                Action::None
            }
        }
    }
}

/// `text` safe to draw: control characters (an escape sequence in a model's answer or a
/// log line could drive the terminal) become `�`, tabs and newlines a space; cut at `max`
/// bytes on a character boundary.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        if out.len() + c.len_utf8() > max {
            out.push('…');
            break;
        }
        out.push(match c {
            '\t' | '\n' | '\r' => ' ',
            c if c.is_control() => '\u{fffd}',
            c => c,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> App {
        App::new(LogTail::open(std::path::PathBuf::from("/nonexistent/picoclaw/gateway.log")))
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    #[test]
    fn escape_sequences_are_not_drawn_and_lines_are_cut() {
        assert_eq!(printable("a\u{1b}[2Jb\tc\n", 100), "a\u{fffd}[2Jb c ");
        assert_eq!(printable("ééé", 4), "éé…");
        let mut a = app();
        a.apply(Done::Chat(ChatEvent::Message { id: "m".into(), content: "x".repeat(CHAT_LINE_MAX * 2) }));
        assert!(a.chat.back().is_some_and(|l| l.text.len() <= CHAT_LINE_MAX + 3));
    }

    #[test]
    fn ctrl_c_quits_from_everywhere() {
        let mut a = app();
        assert!(matches!(a.key(ctrl('c')), Action::Quit));
        a.focus = Focus::Chat;
        assert!(matches!(a.key(ctrl('c')), Action::Quit));
        a.modal = Some(Modal::CreateName("x".into()));
        assert!(matches!(a.key(ctrl('c')), Action::Quit));
        // In the chat input q is a letter, not quit.
        let mut a = app();
        a.focus = Focus::Chat;
        assert!(matches!(a.key(key(KeyCode::Char('q'))), Action::None));
        assert_eq!(a.input, "q");
    }

    #[test]
    fn rotation_asks_first_and_a_shown_secret_is_dropped_on_close() {
        let mut a = app();
        assert!(matches!(a.key(key(KeyCode::Char('t'))), Action::None));
        assert!(matches!(a.modal, Some(Modal::ConfirmRotate)));
        assert!(matches!(a.key(key(KeyCode::Char('z'))), Action::None), "other keys keep asking");
        assert!(matches!(a.key(key(KeyCode::Char('y'))), Action::RotatePico));
        a.apply(Done::Secret {
            title: "t".into(),
            detail: "fingerprint f".into(),
            secret: Secret::new("v4lue"),
        });
        assert!(
            a.notice.as_ref().is_some_and(|(_, n)| !n.contains("v4lue")),
            "the notice never holds the value"
        );
        assert!(matches!(a.key(key(KeyCode::Char('s'))), Action::None), "keys go to the dialog");
        assert!(a.modal.is_some());
        assert!(matches!(a.key(key(KeyCode::Enter)), Action::None));
        assert!(a.modal.is_none());
    }

    #[test]
    fn create_prompts_for_name_then_scope() {
        let mut a = app();
        a.key(key(KeyCode::Char('n')));
        for c in "bot".chars() {
            a.key(key(KeyCode::Char(c)));
        }
        a.key(key(KeyCode::Enter));
        assert!(matches!(&a.modal, Some(Modal::CreateScope(n)) if n == "bot"));
        match a.key(key(KeyCode::Char('a'))) {
            Action::Create { name, scope } => assert_eq!((name.as_str(), scope), ("bot", Scope::Admin)),
            _ => panic!("no create"),
        }
        // An empty name does not go on; Esc cancels.
        a.key(key(KeyCode::Char('n')));
        a.key(key(KeyCode::Enter));
        assert!(matches!(a.modal, Some(Modal::CreateName(_))));
        a.key(key(KeyCode::Esc));
        assert!(a.modal.is_none());
    }

    #[test]
    fn chat_sends_one_turn_at_a_time_and_history_is_bounded() {
        let mut a = app();
        a.key(key(KeyCode::Char('c')));
        a.key(key(KeyCode::Char('h')));
        assert!(matches!(a.key(key(KeyCode::Enter)), Action::Send(t) if t == "h"));
        a.key(key(KeyCode::Char('i')));
        assert!(matches!(a.key(key(KeyCode::Enter)), Action::None), "a turn is under way");
        a.apply(Done::Chat(ChatEvent::Message { id: "m".into(), content: "he".into() }));
        a.apply(Done::Chat(ChatEvent::Message { id: "m".into(), content: "hello".into() }));
        assert_eq!(a.chat.back().map(|l| l.text.as_str()), Some("hello"), "updated in place");
        a.apply(Done::Chat(ChatEvent::TurnDone));
        assert!(matches!(a.key(key(KeyCode::Enter)), Action::Send(t) if t == "i"));
        for i in 0..CHAT_LINES + 5 {
            a.apply(Done::Chat(ChatEvent::Message { id: format!("x{i}"), content: "y".into() }));
        }
        assert_eq!(a.chat.len(), CHAT_LINES);
        for _ in 0..INPUT_MAX + 5 {
            a.key(key(KeyCode::Char('z')));
        }
        assert_eq!(a.input.chars().count(), INPUT_MAX);
    }

    #[test]
    fn esc_and_a_key_at_once_leave_the_chat_and_do_the_key() {
        let mut a = app();
        a.focus = Focus::Chat;
        let action = a.key(KeyEvent::new(KeyCode::Char('s'), KeyModifiers::ALT));
        assert!(matches!(action, Action::Start));
        assert_eq!(a.focus, Focus::Credentials);
        assert!(a.input.is_empty());
    }
}
