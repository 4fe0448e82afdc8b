//! The paths outside `/v1/`: `/metrics` and the dashboard's files, none behind the token (a
//! scraper has no token; the dashboard page asks for it and sends it from JavaScript).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::{AdminState, ApiError};

pub(crate) async fn metrics(State(state): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    match &state.metrics {
        Some(metrics) => {
            let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
            let (content_type, body) = metrics(accept);
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
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
            let mut response = ([(header::CONTENT_TYPE, content_type)], bytes).into_response();
            if let Some(policy) = state.assets_policy {
                response.headers_mut().insert(
                    header::CONTENT_SECURITY_POLICY,
                    header::HeaderValue::from_static(policy),
                );
            }
            response
        }
        None => ApiError::not_found(format!("no such file: /{path}")).into_response(),
    }
}
