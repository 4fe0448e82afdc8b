//! `GET /v1/status`: version, uptime, listeners, connections, queue counts by state.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::AdminState;

pub(crate) async fn status(State(state): State<Arc<AdminState>>) -> Json<Value> {
    let (mut queued, mut deferred, mut held) = (0usize, 0usize, 0usize);
    for message in state.spool.list() {
        match message.state {
            postern_queue::QueueState::Queued => queued += 1,
            postern_queue::QueueState::Deferred { .. } => deferred += 1,
            postern_queue::QueueState::Held => held += 1,
        }
    }
    let listeners: Vec<Value> = state
        .listeners
        .iter()
        .map(|l| match &l.mode {
            Some(mode) => {
                json!({"protocol": l.protocol, "mode": mode, "address": l.address.to_string()})
            }
            None => json!({"protocol": l.protocol, "address": l.address.to_string()}),
        })
        .collect();
    Json(json!({
        "version": state.version,
        "hostname": state.hostname,
        "uptime_seconds": state.started.elapsed().as_secs(),
        "listeners": listeners,
        "connections": {"open": state.connections.as_ref().map_or(0, |open| open())},
        "queue": {"queued": queued, "deferred": deferred, "held": held, "total": queued + deferred + held},
    }))
}
