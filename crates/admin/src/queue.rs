//! The queue: `GET /v1/queue` (filters, pages), `GET /v1/queue/{id}` (envelope, recipients,
//! headers, history), `POST /v1/queue/{id}/retry|hold|release|bounce`, `DELETE /v1/queue/{id}`
//! and `GET /v1/queue/{id}/trace` (the trace hook's).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use postern_mailmsg::{MailMsg, QueueId, RecipientStatus, now_ms};
use postern_queue::{QueueState, QueuedMessage};
use postern_transport::ControlError;
use serde_json::{Value, json};

use crate::{AdminState, ApiError};

/// Messages per page when `per_page` is not given, and the most a page may hold.
const PER_PAGE: usize = 50;
const MAX_PER_PAGE: usize = 1000;

/// The filters of a listing (`state`, `sender`, `recipient`, `domain`, `older_than`) and its
/// page, checked; shared with `postern queue` reading the spool without a server.
pub struct Filter {
    state: Option<&'static str>,
    sender: Option<String>,
    recipient: Option<String>,
    domain: Option<String>,
    older_than_ms: Option<u64>,
    page: usize,
    per_page: usize,
}

impl Filter {
    /// Checks the query parameters; the error names the one at fault.
    pub fn parse(query: &HashMap<String, String>) -> Result<Self, ApiError> {
        for key in query.keys() {
            if !matches!(
                key.as_str(),
                "state" | "sender" | "recipient" | "domain" | "older_than" | "page" | "per_page"
            ) {
                return Err(ApiError::field(
                    key,
                    format!("unknown query parameter `{key}`"),
                ));
            }
        }
        let state = match query.get("state").map(String::as_str) {
            None | Some("") => None,
            Some("queued") => Some("queued"),
            Some("deferred") => Some("deferred"),
            Some("held") => Some("held"),
            Some(other) => {
                return Err(ApiError::field(
                    "state",
                    format!("unknown state {other:?}: expected queued, deferred or held"),
                ));
            }
        };
        let older_than_ms = match query.get("older_than").filter(|v| !v.is_empty()) {
            None => None,
            Some(text) => Some(
                humantime::parse_duration(text)
                    .map_err(|e| {
                        ApiError::field("older_than", format!("bad duration {text:?}: {e}"))
                    })?
                    .as_millis() as u64,
            ),
        };
        let number = |key: &str, default: usize, max: usize| match query.get(key) {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::field(
                    key,
                    format!("must be a number from 1 to {max}, not {text:?}"),
                )),
            },
        };
        let text = |key: &str| {
            query
                .get(key)
                .filter(|v| !v.is_empty())
                .map(|v| v.to_ascii_lowercase())
        };
        Ok(Self {
            state,
            sender: text("sender"),
            recipient: text("recipient"),
            domain: text("domain").map(|d| d.trim_start_matches('@').to_owned()),
            older_than_ms,
            page: number("page", 1, usize::MAX)?,
            per_page: number("per_page", PER_PAGE, MAX_PER_PAGE)?,
        })
    }

    /// What the summary alone decides.
    fn keeps_summary(&self, m: &QueuedMessage, now: u64) -> bool {
        self.state.is_none_or(|s| s == m.state.as_str())
            && self
                .sender
                .as_ref()
                .is_none_or(|s| m.sender.to_ascii_lowercase().contains(s))
            && self
                .older_than_ms
                .is_none_or(|age| now.saturating_sub(m.arrival_ms) >= age)
    }

    /// Whether a message passes every filter.
    pub fn keeps(&self, m: &QueuedMessage, msg: &MailMsg, now: u64) -> bool {
        self.keeps_summary(m, now) && self.keeps_recipients(msg)
    }

    fn needs_recipients(&self) -> bool {
        self.recipient.is_some() || self.domain.is_some()
    }

    fn keeps_recipients(&self, msg: &MailMsg) -> bool {
        let any = |f: &dyn Fn(&str) -> bool| {
            msg.recipients
                .iter()
                .any(|r| f(&r.address.to_ascii_lowercase()))
        };
        self.recipient
            .as_ref()
            .is_none_or(|want| any(&|a| a.contains(want.as_str())))
            && self
                .domain
                .as_ref()
                .is_none_or(|want| any(&|a| a.rsplit_once('@').is_some_and(|(_, d)| d == want)))
    }
}

/// An RFC 3339 time from Unix milliseconds.
fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

fn parse_id(text: &str) -> Result<QueueId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found(format!("no message {text:?} in the queue")))
}

fn next_attempt(state: QueueState) -> Option<String> {
    match state {
        QueueState::Deferred { until_ms } => Some(rfc3339(until_ms)),
        QueueState::Queued => Some(rfc3339(now_ms())),
        QueueState::Held => None,
    }
}

/// A message as listed (SUMMARY of the contract).
pub fn summary(m: &QueuedMessage, msg: Option<&MailMsg>) -> Value {
    let recipients: Vec<&str> = msg
        .map(|msg| msg.recipients.iter().map(|r| r.address.as_str()).collect())
        .unwrap_or_default();
    json!({
        "id": m.id.to_string(),
        "state": m.state.as_str(),
        "sender": m.sender,
        "recipients": recipients,
        "size": m.size,
        "arrival": rfc3339(m.arrival_ms),
        "next_attempt": next_attempt(m.state),
    })
}

pub(crate) async fn list(
    State(state): State<Arc<AdminState>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let filter = Filter::parse(&query)?;
    let now = now_ms();
    let mut kept = Vec::new();
    for m in state.spool.list() {
        if !filter.keeps_summary(&m, now) {
            continue;
        }
        if filter.needs_recipients() {
            // Gone since the listing began: it is simply not listed.
            let Ok(msg) = state.spool.load(m.id).await else {
                continue;
            };
            if filter.keeps_recipients(&msg) {
                kept.push((m, Some(msg)));
            }
        } else {
            kept.push((m, None));
        }
    }
    let total = kept.len();
    let start = (filter.page - 1).saturating_mul(filter.per_page);
    let mut messages = Vec::new();
    for (m, msg) in kept.into_iter().skip(start).take(filter.per_page) {
        let msg = match msg {
            Some(msg) => Some(msg),
            None => state.spool.load(m.id).await.ok(),
        };
        messages.push(summary(&m, msg.as_ref()));
    }
    Ok(Json(json!({
        "messages": messages,
        "total": total,
        "page": filter.page,
        "per_page": filter.per_page,
    })))
}

pub(crate) async fn show(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let unknown = || ApiError::not_found(format!("no message {id} in the queue"));
    let m = state.spool.get(id).ok_or_else(unknown)?;
    let msg = state.spool.load(id).await.map_err(|_| unknown())?;
    Ok(Json(detail(&m, &msg)))
}

/// A message in full: the summary, each recipient's status, the headers and the history.
pub fn detail(m: &QueuedMessage, msg: &MailMsg) -> Value {
    let mut out = summary(m, Some(msg));
    let recipients: Vec<Value> = msg
        .recipients
        .iter()
        .map(|r| {
            let (status, reply) = match &r.status {
                RecipientStatus::Pending => ("pending", None),
                RecipientStatus::Delivered => ("delivered", None),
                RecipientStatus::Deferred { reason } => ("deferred", Some(reason.clone())),
                RecipientStatus::Failed { reason } => ("failed", Some(reason.clone())),
            };
            json!({"address": r.address, "status": status, "reply": reply})
        })
        .collect();
    let headers: Vec<Value> = msg
        .content
        .headers()
        .into_iter()
        .map(|(name, value)| json!([name, value.trim()]))
        .collect();
    let mut history = vec![json!({"at": rfc3339(m.arrival_ms), "what": "received"})];
    let attempts = msg
        .properties
        .get("postern.attempts")
        .and_then(postern_mailmsg::Value::as_int)
        .unwrap_or(0);
    if attempts > 0 {
        history.push(json!({"at": Value::Null, "what": format!("{attempts} delivery attempt(s)")}));
    }
    match m.state {
        QueueState::Deferred { until_ms } => {
            history.push(json!({"at": rfc3339(until_ms), "what": "next attempt due"}))
        }
        QueueState::Held => history.push(json!({"at": Value::Null, "what": "held"})),
        QueueState::Queued => {}
    }
    if let Value::Object(map) = &mut out {
        map.insert("recipients_detail".into(), Value::Array(recipients));
        map.insert("headers".into(), Value::Array(headers));
        map.insert("history".into(), Value::Array(history));
        map.insert(
            "sender_params".into(),
            json!({"envid": msg.sender.as_ref().and_then(|s| s.params.envid.clone())}),
        );
    }
    out
}

fn control_error(e: ControlError) -> ApiError {
    match e {
        ControlError::UnknownId(id) => ApiError::not_found(format!("no message {id} in the queue")),
        e @ ControlError::WrongState { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
        e => ApiError::internal(e.to_string()),
    }
}

pub(crate) async fn act(
    State(state): State<Arc<AdminState>>,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    // The action is checked before the id, so a typo never touches a message.
    if !matches!(action.as_str(), "retry" | "hold" | "release" | "bounce") {
        return Err(ApiError::not_found(format!(
            "no such action {action:?}: expected retry, hold, release or bounce"
        )));
    }
    let id = parse_id(&id)?;
    let transport = &state.transport;
    let new_state = match action.as_str() {
        "retry" => transport.retry_now(id).await.map(QueueState::as_str),
        "hold" => transport.hold(id).await.map(QueueState::as_str),
        "release" => transport.release(id).await.map(QueueState::as_str),
        _ => transport.bounce(id).await.map(|()| "bounced"),
    }
    .map_err(control_error)?;
    Ok(Json(json!({"id": id.to_string(), "state": new_state})))
}

pub(crate) async fn delete(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    state.transport.delete(id).await.map_err(control_error)?;
    Ok(Json(json!({"id": id.to_string(), "deleted": true})))
}

pub(crate) async fn trace(
    State(state): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let unknown = || ApiError::not_found(format!("no trace of {id:?}"));
    let hook = state.trace.as_ref().ok_or_else(unknown)?;
    hook(&id).map(Json).ok_or_else(unknown)
}
