//! Errors: [`AdminError`] for starting the API, [`ApiError`] for the answer to one request
//! (`{"error":{"message":"...","field":...}}` with a 4xx or 5xx status).

use std::path::PathBuf;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why the admin API could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The token file could not be read or written.
    #[error("admin token {}: {source}", path.display())]
    Token {
        /// The token file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The token file is there but cannot be trusted.
    #[error("admin token {}: {why}", path.display())]
    TokenUnsafe {
        /// The token file.
        path: PathBuf,
        /// Why it is refused.
        why: String,
    },
    /// The listener could not be bound.
    #[error("admin listener {address}: {source}")]
    Bind {
        /// The address asked for.
        address: std::net::SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
}

/// A refused request: its status, what is wrong, and the field at fault when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What is wrong, for people.
    pub message: String,
    /// The request field (JSON key or query parameter) at fault.
    pub field: Option<String>,
}

impl ApiError {
    /// A refusal with no field.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
        }
    }

    /// 400 naming the field at fault.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 500, for a failure of the server rather than of the request.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "field": self.field}});
        (self.status, Json(body)).into_response()
    }
}
