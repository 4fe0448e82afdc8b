//! The paths outside `/v1/`: `/metrics` and the dashboard's files, none behind the token (a
//! scraper has no token; the dashboard page asks for it and sends it from JavaScript).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::{AdminState, ApiError};

/// The content type of the OpenMetrics exposition.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub(crate) async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    match &state.metrics {
        Some(metrics) => ([(header::CONTENT_TYPE, OPENMETRICS)], metrics()).into_response(),
        None => ApiError::not_found("metrics are not served by this build").into_response(),
    }
}

pub(crate) async fn v1_unknown(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
}

pub(crate) async fn static_file(State(state): State<Arc<AdminState>>, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    // Refused before any lookup: the hook serves names, never a path that climbs out.
    if path.split('/').any(|part| part == ".." || part == ".") {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "a path may not contain `..` or `.`",
        )
        .into_response();
    }
    let name = if path.is_empty() { "index.html" } else { path };
    match state.assets.and_then(|assets| assets(name)) {
        Some((content_type, bytes)) => {
            ([(header::CONTENT_TYPE, content_type)], bytes).into_response()
        }
        None => ApiError::not_found(format!("no such file: /{path}")).into_response(),
    }
}
