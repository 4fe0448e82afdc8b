//! The bindings: `GET/POST /v1/bindings`, `GET/PATCH/DELETE /v1/bindings/{id-or-name}`. A change
//! is validated and written as `postern binding …` does it (`postern_sink_host::edit`), then the
//! running server reloads the registry, so it applies at once.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use postern_mailmsg::Value as PropValue;
use postern_sink_api::Event;
use postern_sink_host::edit::{self, EditError};
use postern_sink_host::{Binding, Host, SinkRef, Snapshot, priority};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{AdminState, ApiError};

/// `POST /v1/bindings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBinding {
    event: String,
    sink: String,
    name: Option<String>,
    priority: Option<Value>,
    rule: Option<String>,
    enabled: Option<bool>,
    properties: Option<Map<String, Value>>,
}

/// `PATCH /v1/bindings/{id-or-name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    name: Option<String>,
    priority: Option<Value>,
    rule: Option<String>,
    enabled: Option<bool>,
    properties: Option<Map<String, Value>>,
}

fn host(state: &AdminState) -> Result<&Arc<Host>, ApiError> {
    state
        .host
        .as_ref()
        .ok_or_else(|| ApiError::not_found("bindings are not served by this build"))
}

fn to_json(b: &Binding, snapshot: &Snapshot) -> Value {
    let properties: Map<String, Value> = b
        .properties
        .iter()
        .map(|(k, v)| {
            let v = match v {
                PropValue::Bool(b) => json!(b),
                PropValue::Int(n) => json!(n),
                PropValue::Text(t) => json!(t),
            };
            (k.to_owned(), v)
        })
        .collect();
    let stats = snapshot
        .stats_of(b.id)
        .map(|s| s.snapshot())
        .unwrap_or_default();
    let failures = stats.failures + stats.panics + stats.timeouts;
    let mean_ms = if stats.firings == 0 {
        0.0
    } else {
        stats.busy_micros as f64 / stats.firings as f64 / 1000.0
    };
    json!({
        "id": b.id.to_string(),
        "name": b.name,
        "event": b.event.to_string(),
        "sink": b.sink.to_string(),
        "priority": b.priority,
        "rule": if b.rule.is_empty() { None } else { Some(&b.rule) },
        "enabled": b.enabled,
        "properties": properties,
        "stats": {"calls": stats.firings, "failures": failures, "mean_ms": mean_ms},
    })
}

fn load(host: &Host) -> Result<Vec<Binding>, ApiError> {
    postern_sink_host::registry::load(host.path()).map_err(|e| ApiError::internal(e.to_string()))
}

pub(crate) async fn list(State(state): State<Arc<AdminState>>) -> Result<Json<Value>, ApiError> {
    let host = host(&state)?;
    let mut bindings = load(host)?;
    // Chain order: event, then priority; equal priorities keep registration order.
    bindings.sort_by_key(|b| (b.event.to_string(), b.priority));
    let snapshot = host.snapshot();
    let out: Vec<Value> = bindings.iter().map(|b| to_json(b, &snapshot)).collect();
    Ok(Json(json!({"bindings": out})))
}

pub(crate) async fn show(
    State(state): State<Arc<AdminState>>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let host = host(&state)?;
    let bindings = load(host)?;
    let index = edit::find(&bindings, &key).ok_or_else(|| unknown(&key))?;
    Ok(Json(to_json(&bindings[index], &host.snapshot())))
}

fn unknown(key: &str) -> ApiError {
    ApiError::not_found(format!("no binding with id or name {key:?}"))
}

fn priority_of(value: &Value) -> Result<u16, ApiError> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    priority::parse(&text).ok_or_else(|| {
        ApiError::field(
            "priority",
            format!("{value}: a number 0-32767 or highest, high, medium, low, lowest"),
        )
    })
}

fn properties_of(map: &Map<String, Value>) -> Result<postern_mailmsg::Properties, ApiError> {
    let mut out = postern_mailmsg::Properties::new();
    for (key, value) in map {
        edit::property_key(key).map_err(|why| ApiError::field("properties", why))?;
        let value = match value {
            Value::Bool(b) => PropValue::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(n) => PropValue::Int(n),
                None => edit::property_value(&n.to_string()),
            },
            Value::String(s) => edit::property_value(s),
            _ => {
                return Err(ApiError::field(
                    "properties",
                    format!("property {key:?}: a string, number or boolean"),
                ));
            }
        };
        out.set(key.clone(), value);
    }
    Ok(out)
}

/// Writes the change and reloads; a refused change names what is wrong and writes nothing.
fn apply<T>(
    host: &Host,
    change: impl FnOnce(&mut Vec<Binding>) -> Result<T, String>,
) -> Result<T, ApiError> {
    let out = edit::edit(host.path(), host.catalog(), change).map_err(|e| match e {
        EditError::Invalid(why) if why.starts_with("no binding") => ApiError::not_found(why),
        EditError::Invalid(why) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, why),
        EditError::Io(why) => ApiError::internal(why),
    })?;
    host.reload()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(out)
}

pub(crate) async fn create(
    State(state): State<Arc<AdminState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let host = host(&state)?;
    let body: NewBinding = crate::body::parse(&crate::body::read(body)?)?;
    let event = Event::parse(&body.event).map_err(|e| ApiError::field("event", e.to_string()))?;
    let sink = SinkRef::parse(&body.sink).map_err(|e| ApiError::field("sink", e))?;
    let mut binding = Binding::new(String::new(), event, sink);
    binding.name = match body.name {
        Some(name) if name.trim().is_empty() => {
            return Err(ApiError::field("name", "must not be empty"));
        }
        Some(name) => name,
        None => {
            let sink = body.sink.rsplit(':').next().unwrap_or("sink");
            format!("{sink}-{}", &binding.id.to_string()[..8])
        }
    };
    binding.priority = match &body.priority {
        Some(p) => priority_of(p)?,
        None => priority::LOW,
    };
    binding.rule = body.rule.unwrap_or_default();
    binding.enabled = body.enabled.unwrap_or(true);
    if let Some(props) = &body.properties {
        binding.properties = properties_of(props)?;
    }
    let made = binding.clone();
    apply(host, move |list| {
        if list.iter().any(|b| b.name == binding.name) {
            return Err(format!("a binding named {:?} exists already", binding.name));
        }
        list.push(binding);
        Ok(())
    })?;
    Ok((StatusCode::CREATED, Json(to_json(&made, &host.snapshot()))))
}

pub(crate) async fn patch(
    State(state): State<Arc<AdminState>>,
    Path(key): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let host = host(&state)?;
    let body: Patch = crate::body::parse(&crate::body::read(body)?)?;
    let priority = body.priority.as_ref().map(priority_of).transpose()?;
    let properties = body.properties.as_ref().map(properties_of).transpose()?;
    if body.name.as_ref().is_some_and(|n| n.trim().is_empty()) {
        return Err(ApiError::field("name", "must not be empty"));
    }
    let changed = apply(host, |list| {
        let index =
            edit::find(list, &key).ok_or_else(|| format!("no binding with id or name {key:?}"))?;
        if let Some(name) = &body.name
            && list
                .iter()
                .enumerate()
                .any(|(i, b)| i != index && &b.name == name)
        {
            return Err(format!("a binding named {name:?} exists already"));
        }
        let b = &mut list[index];
        if let Some(name) = body.name {
            b.name = name;
        }
        if let Some(p) = priority {
            b.priority = p;
        }
        if let Some(rule) = body.rule {
            b.rule = rule;
        }
        if let Some(enabled) = body.enabled {
            b.enabled = enabled;
        }
        if let Some(props) = properties {
            b.properties = props;
        }
        Ok(b.clone())
    })?;
    Ok(Json(to_json(&changed, &host.snapshot())))
}

pub(crate) async fn delete(
    State(state): State<Arc<AdminState>>,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let host = host(&state)?;
    let removed = apply(host, |list| {
        let index =
            edit::find(list, &key).ok_or_else(|| format!("no binding with id or name {key:?}"))?;
        Ok(list.remove(index))
    })?;
    Ok(Json(json!({"id": removed.id.to_string(), "deleted": true})))
}
