//! The sink of one binding: POST the event, read the answer, hand back the outcome.

use postern_sink_api::{Call, Context, Event, Sink, SinkError};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use crate::error::{Error, chain};
use crate::request::{self, Fixed};
use crate::{answer, wire};

/// The most an answer may weigh; a bigger one is refused (a `replace-body` of a large
/// message still fits).
pub(crate) const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// One binding's hook.
pub(crate) struct Hook {
    pub(crate) client: reqwest::Client,
    pub(crate) url: reqwest::Url,
    pub(crate) event: Event,
    pub(crate) fixed: Fixed,
    /// The `Authorization` header sent with every request (property `authorization`).
    pub(crate) authorization: Option<HeaderValue>,
}

impl Sink for Hook {
    fn on_event<'a>(&'a self, ctx: &'a Context) -> Call<'a> {
        // The request is built before the first await: the context is not held across it.
        let body = match serde_json::to_vec(&request::build(ctx, &self.fixed)) {
            Ok(body) => body,
            Err(e) => return Call::Ready(Err(SinkError::Failed(format!("request: {e}")))),
        };
        Call::pending(async move { self.call(body).await.map_err(SinkError::from) })
    }
}

impl Hook {
    async fn call(&self, body: Vec<u8>) -> Result<postern_sink_api::Outcome, Error> {
        let transport = |e: reqwest::Error| Error::Transport {
            url: self.url.to_string(),
            why: chain(&e),
        };
        let mut post = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body);
        if let Some(auth) = &self.authorization {
            post = post.header(AUTHORIZATION, auth.clone());
        }
        let mut response = post.send().await.map_err(transport)?;
        let status = response.status();
        if !status.is_success() {
            return Err(Error::Status {
                url: self.url.to_string(),
                status: status.as_u16(),
            });
        }
        let mut text = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if text.len() + chunk.len() > MAX_ANSWER {
                return Err(Error::Answer(format!("longer than {MAX_ANSWER} bytes")));
            }
            text.extend_from_slice(&chunk);
        }
        let parsed: wire::Answer =
            serde_json::from_slice(&text).map_err(|e| Error::Answer(e.to_string()))?;
        answer::outcome(parsed, &self.event)
    }
}
