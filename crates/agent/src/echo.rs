//! The built-in echo agent.

use crate::{Agent, Delta, ReplyStream, TurnRequest};

/// Replies with exactly the user's text. The default when no model is configured, so
/// first runs and tests need no network.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoAgent;

impl Agent for EchoAgent {
    fn name(&self) -> &str {
        "echo"
    }

    fn reply(&self, request: TurnRequest) -> ReplyStream {
        Box::pin(futures_util::stream::once(async move { Ok(Delta::Text(request.text)) }))
    }

    fn uses_history(&self) -> bool {
        false
    }
}
