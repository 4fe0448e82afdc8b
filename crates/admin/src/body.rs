//! The JSON body of a request: valid JSON (else 400), no unknown field (400 naming it). The
//! size cap (413 past [`MAX_BODY`](crate::MAX_BODY)) is the router's layer.

use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Parses a body, naming the unknown field when serde refuses one.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let message = e.to_string();
        let field = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned);
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: format!("malformed JSON body: {message}"),
            field,
        }
    })
}

/// The body as read, or the refusal of a body too large (413) or unreadable, as JSON.
pub(crate) fn read(
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<axum::body::Bytes, ApiError> {
    body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                format!("the body is larger than {} octets", crate::MAX_BODY),
            )
        } else {
            ApiError::new(status, e.body_text())
        }
    })
}
