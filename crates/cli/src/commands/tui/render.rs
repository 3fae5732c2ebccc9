//! Drawing the TUI. Colours: the terminal's own foreground and background, bold, reverse
//! and underline, and only green/red (of the 8 basic ANSI colours) for the gateway state
//! and errors, so light and dark themes both read well. Laid out for 80×24 and up.

use picoclaw_launcher::GatewayState;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, Wrap};

use super::app::{App, Focus, Modal, Who};

const BOLD: Style = Style::new().add_modifier(Modifier::BOLD);

/// Draws the whole screen.
pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let [header, top, chat, notice, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(11),
        Constraint::Min(5),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let [creds, logs] = Layout::horizontal([Constraint::Length(46), Constraint::Min(20)]).areas(top);
    draw_header(frame, app, header);
    draw_credentials(frame, app, creds);
    draw_logs(frame, app, logs);
    draw_chat(frame, app, chat);
    draw_notice(frame, app, notice);
    draw_footer(frame, app, footer);
    if let Some(modal) = &app.modal {
        draw_modal(frame, modal);
    }
}

fn pane(title: &str, focused: bool) -> Block<'_> {
    let title = if focused {
        Span::styled(format!(" {title} "), BOLD.add_modifier(Modifier::REVERSED))
    } else {
        Span::styled(format!(" {title} "), BOLD)
    };
    Block::bordered().title(title)
}

fn human_duration(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{}s", s / 60, s % 60),
        s => format!("{}h{}m", s / 3600, (s % 3600) / 60),
    }
}

fn draw_header(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let mut spans =
        vec![Span::styled(" picoclaw ", BOLD.add_modifier(Modifier::REVERSED)), Span::raw(" gateway: ")];
    match &app.status {
        None => spans.push(Span::raw("…")),
        Some(status) => {
            let (word, colour) = match status.state {
                GatewayState::Running => ("running", Color::Green),
                GatewayState::Starting => ("starting", Color::Reset),
                GatewayState::Stopping => ("stopping", Color::Reset),
                GatewayState::Restarting => ("restarting", Color::Reset),
                GatewayState::Stopped => ("stopped", Color::Red),
                _ => ("error", Color::Red),
            };
            spans.push(Span::styled(word, BOLD.fg(colour)));
            if let Some(pid) = status.pid {
                spans.push(Span::raw(format!("  pid {pid}")));
            }
            if let Some(up) = status.uptime_s {
                spans.push(Span::raw(format!("  up {}", human_duration(up))));
            }
            if let Some(url) = &status.url {
                spans.push(Span::raw(format!("  {url}")));
            }
            if let Some(version) = &status.version {
                spans.push(Span::raw(format!("  v{version}")));
            }
            if let Some(error) = &status.error {
                let error = super::app::printable(error, 512);
                spans.push(Span::styled(format!("  {error}"), Style::new().fg(Color::Red)));
            }
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_credentials(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let block = pane("credentials (no values)", app.focus == Focus::Credentials);
    match &app.credentials {
        Err(e) => {
            let text = Paragraph::new(Span::styled(e.as_str(), Style::new().fg(Color::Red)))
                .wrap(Wrap { trim: true })
                .block(block);
            frame.render_widget(text, area);
        }
        Ok(rows) => {
            let rows = rows.iter().map(|r| {
                Row::new([
                    Cell::from(r.name.as_str()),
                    Cell::from(short_source(&r.source)),
                    Cell::from(r.fingerprint.as_str()),
                ])
            });
            let widths = [Constraint::Length(18), Constraint::Length(13), Constraint::Length(11)];
            let header = Row::new(["CREDENTIAL", "SOURCE", "FINGERPRINT"])
                .style(BOLD.add_modifier(Modifier::UNDERLINED));
            let table = Table::new(rows, widths).header(header).column_spacing(1).block(block);
            frame.render_widget(table, area);
        }
    }
}

/// A source as the narrow table shows it: the file without the key (`.security.yml`), or
/// the variable (`env:NAME`).
fn short_source(source: &str) -> &str {
    match source.split_once(':') {
        Some((file, _)) if file.starts_with('.') || file.ends_with(".json") => file,
        _ => source,
    }
}

/// A log line without its date and sub-second digits: `17:33:23  INFO …`.
fn short_log_line(line: &str) -> String {
    let b = line.as_bytes();
    let stamped = b.len() > 20 && b[4] == b'-' && b[10] == b'T' && b[13] == b':';
    if stamped && let (Some(time), Some(space)) = (line.get(11..19), line.find(' ')) {
        return format!("{time}{}", &line[space..]);
    }
    line.to_owned()
}

/// The last lines of `lines` that fit `width`×`height`, long lines wrapped by characters.
fn tail_rows<'a>(
    lines: impl DoubleEndedIterator<Item = &'a str>,
    width: usize,
    height: usize,
) -> Vec<String> {
    let mut rows: Vec<String> = Vec::new();
    for line in lines.rev() {
        let chars: Vec<char> = line.chars().collect();
        let mut chunks: Vec<String> = chars.chunks(width.max(1)).map(|c| c.iter().collect()).collect();
        if chunks.is_empty() {
            chunks.push(String::new());
        }
        for chunk in chunks.into_iter().rev() {
            rows.push(chunk);
            if rows.len() >= height {
                rows.reverse();
                return rows;
            }
        }
    }
    rows.reverse();
    rows
}

fn draw_logs(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let block = pane("logs/gateway.log", app.focus == Focus::Logs);
    let inner = block.inner(area);
    let lines: Vec<String> = app.logs.lines().map(short_log_line).collect();
    let rows = tail_rows(lines.iter().map(String::as_str), inner.width as usize, inner.height as usize);
    let text: Vec<Line<'_>> =
        if rows.is_empty() { vec![Line::raw("(empty)")] } else { rows.into_iter().map(Line::raw).collect() };
    frame.render_widget(Paragraph::new(text).block(block), area);
}

fn draw_chat(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let focused = app.focus == Focus::Chat;
    let block = pane("chat (Pico channel)", focused);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [history, input] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
    let width = history.width as usize;
    let mut lines: Vec<Line<'_>> = Vec::new();
    let height = history.height as usize;
    for line in app.chat.iter().rev() {
        let (prefix, style) = match line.who {
            Who::You => ("> ", BOLD),
            Who::Agent => ("  ", Style::new()),
            Who::Note if line.text.starts_with("error") => ("! ", Style::new().fg(Color::Red)),
            Who::Note => ("- ", Style::new()),
        };
        let text = format!("{prefix}{}", line.text.replace(['\r', '\n'], " "));
        let rows = tail_rows(std::iter::once(text.as_str()), width, height);
        for row in rows.into_iter().rev() {
            lines.push(Line::styled(row, style));
        }
        if lines.len() >= height {
            break;
        }
    }
    lines.truncate(height);
    lines.reverse();
    if lines.is_empty() {
        lines.push(Line::raw("press c, type a message, Enter sends"));
    }
    frame.render_widget(Paragraph::new(Text::from(lines)), history);
    let prompt = if app.waiting { "… " } else { "> " };
    let shown: String = {
        let room = (input.width as usize).saturating_sub(prompt.len() + 1);
        let count = app.input.chars().count();
        app.input.chars().skip(count.saturating_sub(room)).collect()
    };
    let style = if focused { BOLD } else { Style::new() };
    frame.render_widget(
        Paragraph::new(Line::from(vec![Span::styled(prompt, style), Span::raw(shown.clone())])),
        input,
    );
    if focused && app.modal.is_none() {
        let x = input.x + (prompt.len() + shown.chars().count()) as u16;
        frame.set_cursor_position((x.min(input.right().saturating_sub(1)), input.y));
    }
}

fn draw_notice(frame: &mut Frame<'_>, app: &App, area: Rect) {
    if let Some((failed, text)) = &app.notice {
        let style = if *failed { Style::new().fg(Color::Red) } else { Style::new() };
        frame.render_widget(Paragraph::new(Span::styled(format!(" {text}"), style)), area);
    }
}

fn draw_footer(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let keys: &[(&str, &str)] = match (&app.modal, app.focus) {
        (Some(_), _) => &[("Enter", "ok"), ("Esc", "cancel"), ("^C", "quit")],
        (None, Focus::Chat) => &[("Enter", "send"), ("Esc", "leave chat"), ("Tab", "focus"), ("^C", "quit")],
        (None, _) => &[
            ("s", "start"),
            ("x", "stop"),
            ("r", "restart"),
            ("t", "rotate pico"),
            ("n", "create"),
            ("c", "chat"),
            ("Tab", "focus"),
            ("q", "quit"),
        ],
    };
    let mut spans = vec![Span::raw(" ")];
    for (key, what) in keys {
        spans.push(Span::styled(*key, BOLD.add_modifier(Modifier::REVERSED)));
        spans.push(Span::raw(format!(" {what}  ")));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect { x: area.x + (area.width - width) / 2, y: area.y + (area.height - height) / 2, width, height }
}

fn draw_modal(frame: &mut Frame<'_>, modal: &Modal) {
    let (title, lines): (&str, Vec<Line<'_>>) = match modal {
        Modal::ConfirmRotate => (
            "rotate the pico token",
            vec![
                Line::raw("A new pico token replaces the current one now; clients"),
                Line::raw("using the old one are refused from the next reload."),
                Line::raw(""),
                Line::styled("Rotate?  y yes   n no", BOLD),
            ],
        ),
        Modal::CreateName(name) => (
            "new named token",
            vec![
                Line::raw("Name (letters, digits, . _ -), Enter to go on:"),
                Line::from(vec![Span::styled("> ", BOLD), Span::raw(name.as_str())]),
            ],
        ),
        Modal::CreateScope(name) => (
            "new named token",
            vec![Line::raw(format!("Scope of `{name}`:")), Line::styled("r read   c chat   a admin", BOLD)],
        ),
        Modal::Secret { title, detail, secret } => (
            title.as_str(),
            vec![
                Line::raw("Shown once: copy it now. Only its SHA-256 is kept."),
                Line::raw(""),
                // The one place a value is drawn: the user asked for it, and it is
                // dropped when this dialog closes.
                Line::styled(secret.expose(), BOLD),
                Line::raw(""),
                Line::raw(detail.as_str()),
                Line::raw(""),
                Line::styled("Enter or Esc closes it; it is not shown again.", BOLD),
            ],
        ),
    };
    let area = centered(frame.area(), 76, lines.len() as u16 + 4);
    frame.render_widget(Clear, area);
    let block = Block::bordered().title(Span::styled(format!(" {title} "), BOLD));
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_lose_the_date_and_odd_lines_are_kept() {
        assert_eq!(
            short_log_line("2026-12-03T17:33:23.135803Z  INFO gateway up"),
            "17:33:23  INFO gateway up"
        );
        assert_eq!(short_log_line("plain line"), "plain line");
        assert_eq!(short_log_line("2026-12-0ä17:33:23.135803Z x"), "2026-12-0ä17:33:23.135803Z x");
    }

    #[test]
    fn tails_wrap_long_lines_and_keep_the_newest_rows() {
        let lines = ["aaaaaa", "bb", "cccc"];
        assert_eq!(tail_rows(lines.iter().copied(), 4, 3), ["aa", "bb", "cccc"]);
        assert_eq!(tail_rows(lines.iter().copied(), 4, 10), ["aaaa", "aa", "bb", "cccc"]);
    }

    #[test]
    fn sources_are_shortened_to_their_file() {
        assert_eq!(short_source(".security.yml: channels.pico.token"), ".security.yml");
        assert_eq!(short_source("env:PICOCLAW_GATEWAY_TOKEN"), "env:PICOCLAW_GATEWAY_TOKEN");
        assert_eq!(short_source("not set"), "not set");
    }
}
