//! `POST /v1/reload`: re-reads the binding registry now (a running server also notices a
//! changed file by itself within a second). The body is empty or `{}`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{AdminState, ApiError};

/// The body: nothing is asked yet, so any field is unknown.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadBody {}

pub(crate) async fn reload(
    State(state): State<Arc<AdminState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let body = crate::body::read(body)?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let _: ReloadBody = crate::body::parse(&body)?;
    }
    let hook = state
        .reload
        .as_ref()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_IMPLEMENTED, "reload is not available"))?;
    // A registry that does not load leaves the one in force untouched.
    hook().map_err(|why| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, why))?;
    Ok(Json(json!({"reloaded": true})))
}
