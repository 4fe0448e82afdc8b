//! HTTP hooks: a binding whose sink is a URL (`http://…`, `https://…`, or `http:URL`) POSTs
//! each event to it as JSON and acts on the JSON answer.
//!
//! # Layout
//! - [`Factory`]: the `http` kind for the catalog; reads each binding's URL and properties.
//! - `wire`: the request and answer, version 1, as serde structs of their own.
//! - `request`: builds the request from the context of an event.
//! - `answer`: turns an answer into an outcome (verdict and changes).
//! - `client`: the pooled HTTP client, TLS by rustls with the ring provider.
//! - `sink`: one binding's hook: POST, status check, bounded read of the answer.
//! - [`Error`]: why a call or a binding failed.
//! - `schema_tests`: the JSON Schema of the docs checked against the examples and the structs.
//!
//! # Design
//! The hook is an ordinary async sink, so the dispatcher's timeout, `on_error`, shadow mode and
//! counters apply to it like to any other sink: a hook that is down, slow, answers with a status
//! other than 2xx or with anything but a valid answer makes the call fail, and `on_error`
//! decides. Every binding without a CA file of its own shares one client and so one pool of
//! kept-alive connections. The wire format is documented in `docs/sinks/http.md` and
//! `docs/sinks/http.schema.json`; tests check the page's examples against the structs and the
//! schema, and the requests this crate builds against the schema.

#![warn(missing_docs)]

mod answer;
mod client;
mod error;
mod request;
#[cfg(test)]
mod schema_tests;
mod sink;
mod wire;

use std::path::Path;
use std::sync::Arc;

use postern_mailmsg::Properties;
use postern_sink_api::{Instance, SinkError, SinkFactory, SinkSpec};
use reqwest::header::HeaderValue;

pub use error::Error;

/// The property keys an HTTP binding may set.
const PROPERTIES: &[&str] = &["content", "authorization", "ca_file"];

/// The `http` kind: one factory serves every binding whose sink is a URL.
#[derive(Debug, Default)]
pub struct Factory;

impl Factory {
    /// The factory, for `Catalog::add_kind`.
    pub fn new() -> Self {
        Self
    }
}

impl SinkFactory for Factory {
    fn name(&self) -> &'static str {
        "http"
    }

    fn summary(&self) -> &'static str {
        "POSTs the event as JSON to the URL and acts on the JSON answer (docs/sinks/http.md)"
    }

    fn properties(&self) -> Option<&'static [&'static str]> {
        Some(PROPERTIES)
    }

    fn create(&self, spec: &SinkSpec) -> Result<Instance, SinkError> {
        Ok(Instance::Async(Arc::new(hook(spec)?)))
    }
}

fn hook(spec: &SinkSpec) -> Result<sink::Hook, Error> {
    let url = url(&spec.target)?;
    let props = &spec.properties;
    let content = boolean(props, "content")?;
    let authorization = text(props, "authorization")?
        .map(|value| {
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                Error::Config("property `authorization`: not a valid header value".into())
            })?;
            value.set_sensitive(true);
            Ok::<_, Error>(value)
        })
        .transpose()?;
    let client = match text(props, "ca_file")? {
        Some(path) => client::with_ca(Path::new(&path))?,
        None => client::shared()?,
    };
    Ok(sink::Hook {
        client,
        url,
        event: spec.event.clone(),
        fixed: request::Fixed::new(&spec.binding_id, &spec.binding_name, props, content),
        authorization,
    })
}

/// The hook's URL from the binding's target: `http://…`, `https://…`, or what followed `http:`.
fn url(target: &str) -> Result<reqwest::Url, Error> {
    let url = reqwest::Url::parse(target)
        .map_err(|e| Error::Config(format!("hook URL {target:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::Config(format!(
            "hook URL {target:?}: must be http://HOST/… or https://HOST/…"
        )));
    }
    Ok(url)
}

/// A property as text; a number or boolean is taken as its text, like every sink does.
fn text(props: &Properties, key: &str) -> Result<Option<String>, Error> {
    match props
        .get(key)
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
    {
        Some(s) if s.is_empty() => Err(Error::Config(format!("property `{key}` is empty"))),
        other => Ok(other),
    }
}

fn boolean(props: &Properties, key: &str) -> Result<bool, Error> {
    match props.get(key) {
        None => Ok(false),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| Error::Config(format!("property `{key}` must be true or false"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_must_be_http_or_https_with_a_host() {
        assert!(url("http://127.0.0.1:8080/hook").is_ok());
        assert!(url("https://hooks.example/mail").is_ok());
        for bad in ["ftp://x/", "127.0.0.1:80", "http://", "not a url"] {
            assert!(url(bad).is_err(), "{bad}");
        }
    }
}
