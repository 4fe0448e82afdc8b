//! The command line's way to the running server: its admin API, at the address of the
//! configuration (`[admin] address`) with the token in DATA/admin.token.

use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use postern_config::Config;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::Value;

/// How long a command waits for the server to answer before taking it for not running.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one request may take (a bounce queues a DSN; a listing reads messages).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A connection to the admin API of a running server.
pub(crate) struct Api {
    base: String,
    token: String,
    http: Client,
}

/// Whether a server answers, and why not when it does not.
pub(crate) enum Reach {
    Running(Api),
    /// No server answers (or the API is off); the text says why, for a changing command.
    NotRunning(String),
}

impl Api {
    /// Finds the running server of `config`.
    pub(crate) fn reach(config: &Config) -> Result<Reach> {
        // The address the running server bound (port 0 in the file picks a free one), else
        // the configured one.
        let bound = std::fs::read_to_string(config.data_dir.join(postern_admin::ADDRESS_FILE))
            .ok()
            .and_then(|text| text.trim().parse::<std::net::SocketAddr>().ok());
        let Some(address) = bound.or(config.admin.address) else {
            return Ok(Reach::NotRunning(
                "the admin API is off (`[admin] address = \"\"`)".to_owned(),
            ));
        };
        if std::net::TcpStream::connect_timeout(&address, CONNECT_TIMEOUT).is_err() {
            return Ok(Reach::NotRunning(format!(
                "the server is not running (nothing answers at {address})"
            )));
        }
        let token = postern_admin::token::read(&config.data_dir)?;
        // reqwest is built with rustls and no default provider; plain HTTP needs one all the same.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("making the HTTP client")?;
        Ok(Reach::Running(Api {
            base: format!("http://{address}"),
            token,
            http,
        }))
    }

    fn send(&self, request: RequestBuilder) -> Result<Value> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .context("asking the server")?;
        let status = response.status();
        let text = response.text().context("reading the server's answer")?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"]["message"]
            .as_str()
            .map_or_else(|| body.to_string(), str::to_owned);
        Err(anyhow!("{message} (HTTP {})", status.as_u16()))
    }

    /// `GET path` with query parameters.
    pub(crate) fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query))
    }

    /// `POST path` with no body.
    pub(crate) fn post(&self, path: &str) -> Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.base)))
    }

    /// `DELETE path`.
    pub(crate) fn delete(&self, path: &str) -> Result<Value> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
    }
}
