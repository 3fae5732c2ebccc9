//! The outbound `channels.pico_client` channel, answered by the agent: the client itself
//! (dialing, protocol, reconnects) is `picoclaw_pico::client`; this module gives it the
//! [`Engine`] as its [`Answer`]. Turns run in the local session
//! `pico_client-<session_id>` owned by the principal `pico_client`, so the history is
//! persisted like any other session.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::StreamExt;
use picoclaw_config::Settings;
use picoclaw_credentials::Credentials;
pub use picoclaw_pico::client::{
    Answer, MAX_ANSWERS_PER_MINUTE, PicoClientSnapshot, PicoClientState, PicoClientStatus, QUIET_PERIOD,
    TYPING_CAP,
};

use crate::Engine;

/// Principal id that owns the pico_client's local session.
pub const PRINCIPAL: &str = crate::PICO_CLIENT_PRINCIPAL;

/// Starts the pico_client when `channels.pico_client.enabled` (must be called inside a
/// tokio runtime), answering with `engine`; `None` when disabled.
pub fn spawn_pico_client(
    settings: &Settings,
    creds: &Credentials,
    engine: Engine,
) -> Option<Arc<PicoClientStatus>> {
    picoclaw_pico::client::spawn(settings, creds, Arc::new(EngineAnswer(engine)))
}

/// The engine, answering in its own reserved session.
struct EngineAnswer(Engine);

/// A valid local session id derived from the remote one.
fn local_session_id(remote: &str) -> String {
    let clean: String = remote
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') { c } else { '_' })
        .collect();
    let id = format!("{}{clean}", crate::RESERVED_PREFIX);
    id.chars().take(crate::MAX_SESSION_ID).collect()
}

impl Answer for EngineAnswer {
    fn local_session(&self, remote: &str) -> String {
        local_session_id(remote)
    }

    fn answer<'a>(
        &'a self,
        session: &'a str,
        text: String,
        status: &'a PicoClientStatus,
    ) -> Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>> {
        let engine = &self.0;
        Box::pin(async move {
            // Its own reserved session (`pico_client-…`): no other principal can claim it.
            let claimed =
                engine.claim(session, PRINCIPAL).await.and_then(|_| engine.begin_turn(session, PRINCIPAL));
            if let Err(e) = claimed {
                status.error(format!("local session {session}: {e}; the remote message was not answered"));
                return None;
            }
            let mut stream = engine.run_turn(session, text.clone(), Vec::new()).await;
            let mut answer = String::new();
            let mut failed = None;
            while let Some(part) = stream.next().await {
                match part {
                    Ok(crate::Delta::Text(delta)) => answer.push_str(&delta),
                    // A remote Pico server gets the text; files stay here.
                    Ok(crate::Delta::Thought(_) | crate::Delta::Attachment(_)) => {}
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            let record = crate::TurnRecord {
                session: session.to_owned(),
                user: (0, text),
                answer: (0, String::new(), answer.clone()),
                ts_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            };
            if let Err(e) = engine.finish_turn(record).await {
                status.error(format!("local session {session}: the turn was not recorded: {e}"));
            }
            if let Some(e) = failed {
                status.error(format!(
                    "the agent failed to answer a remote message ({}): {}",
                    e.code, e.message
                ));
                return None;
            }
            Some(answer)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_session_ids_are_valid() {
        assert!(crate::validate_session_id(&local_session_id("abc")).is_ok());
        assert!(crate::validate_session_id(&local_session_id("a b/../c")).is_ok());
        assert!(crate::validate_session_id(&local_session_id(&"x".repeat(500))).is_ok());
    }
}
