//! The built-in echo agent.

use crate::{Agent, Attachment, Delta, ReplyStream, TurnRequest};

/// Replies with exactly the user's text, and the images the user sent as attachments
/// (`image-1.png`, …). The default when no model is configured, so first runs and tests
/// need no network.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoAgent;

impl Agent for EchoAgent {
    fn name(&self) -> &str {
        "echo"
    }

    fn reply(&self, request: TurnRequest) -> ReplyStream {
        let images = request.media.iter().enumerate().filter_map(|(i, url)| {
            // The gateway checked every image before the turn; one that does not decode
            // now is skipped rather than answered.
            let (content_type, bytes) = picoclaw_pico::decode_inline_image(url).ok()?;
            let extension = content_type.trim_start_matches("image/").replace("jpeg", "jpg");
            let filename = format!("image-{}.{extension}", i + 1);
            Some(Ok(Delta::Attachment(Attachment { content_type: content_type.to_owned(), filename, bytes })))
        });
        let deltas: Vec<_> = std::iter::once(Ok(Delta::Text(request.text))).chain(images).collect();
        Box::pin(futures_util::stream::iter(deltas))
    }

    fn uses_history(&self) -> bool {
        false
    }
}
