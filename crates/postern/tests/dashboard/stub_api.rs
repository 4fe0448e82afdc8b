//! A stand-in for the admin listener that answers the dashboard's calls to the shape of the admin
//! API (docs/operations.md, "Dashboard"), over a plain std server: it lets the pages be tested in
//! the browser against data chosen to be awkward (markup in a sender, a message that leaves the
//! queue) and records what the pages asked for.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

pub const TOKEN: &str = "0123456789abcdef";
/// A sender that would run script if the page put data in as markup.
pub const HOSTILE: &str = "<img src=x onerror=\"document.title='pwned'\">@evil.test";

/// What the pages see and change: the queue and the bindings.
pub struct State {
    pub messages: Vec<Value>,
    pub bindings: Vec<Value>,
    /// Every API call made, as `METHOD PATH`.
    pub calls: Vec<String>,
}

pub struct StubApi {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
}

impl StubApi {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State {
            messages: vec![
                message("01HELD0000000000000000000A", "held", "alice@client.test"),
                message("01QUEUED00000000000000000B", "queued", HOSTILE),
            ],
            bindings: vec![
                binding("b-1", Some("greeting"), "session-start", 16384, true),
                binding("b-2", Some("hold-all"), "end-of-data", 100, true),
                binding("b-3", None, "end-of-data", 16384, true),
            ],
            calls: Vec::new(),
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        StubApi { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn state_of(&self, id: &str) -> Option<String> {
        let state = self.state.lock().unwrap();
        let m = state.messages.iter().find(|m| m["id"] == id)?;
        m["state"].as_str().map(str::to_owned)
    }
}

fn message(id: &str, state: &str, sender: &str) -> Value {
    json!({"id": id, "state": state, "sender": sender, "recipients": ["bob@mx.test"],
           "size": 2048, "arrival": "2026-01-02T03:04:05Z", "next_attempt": null})
}

fn binding(id: &str, name: Option<&str>, event: &str, priority: u16, enabled: bool) -> Value {
    json!({"id": id, "name": name, "event": event, "sink": "builtin:set-fate", "priority": priority,
           "rule": null, "enabled": enabled, "properties": {"fate": "hold"},
           "stats": {"calls": 7, "failures": 1, "mean_ms": 0.25}})
}

fn error(status: u16, message: &str, field: Option<&str>) -> (u16, Value) {
    (
        status,
        json!({"error": {"message": message, "field": field}}),
    )
}

/// Answers requests on one connection until the browser closes it.
fn serve(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, target) = (
            parts.next().unwrap_or("").to_owned(),
            parts.next().unwrap_or("").to_owned(),
        );
        let (mut length, mut auth) = (0usize, String::new());
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap_or(0),
                "authorization" => auth = value.trim().to_owned(),
                _ => {}
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let response = if let Some(api) = path.strip_prefix("/v1/") {
            let (status, value) = if auth != format!("Bearer {TOKEN}") {
                error(401, "a valid admin token is required", None)
            } else {
                let mut state = state.lock().unwrap();
                state.calls.push(format!("{method} {path}"));
                route(&mut state, &method, api, query, &body)
            };
            let text = value.to_string();
            format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            )
            .into_bytes()
        } else if let Some((kind, bytes)) = postern_dashboard::asset(path) {
            let mut r = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Security-Policy: {}\r\nContent-Length: {}\r\n\r\n",
                postern_dashboard::CONTENT_SECURITY_POLICY,
                bytes.len()
            )
            .into_bytes();
            r.extend_from_slice(bytes);
            r
        } else {
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
        };
        if out.write_all(&response).is_err() {
            return;
        }
    }
}

fn route(state: &mut State, method: &str, api: &str, query: &str, body: &[u8]) -> (u16, Value) {
    let segments: Vec<&str> = api.split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", ["status"]) => {
            let count = |s: &str| state.messages.iter().filter(|m| m["state"] == s).count();
            (
                200,
                json!({"version": "0.1.0", "hostname": "mx.test", "uptime_seconds": 3725,
                "listeners": [{"protocol": "smtp", "mode": "mx", "address": "127.0.0.1:2525"},
                              {"protocol": "admin", "address": "127.0.0.1:8025"}],
                "connections": {"open": 2},
                "queue": {"queued": count("queued"), "deferred": count("deferred"),
                          "held": count("held"), "total": state.messages.len()}}),
            )
        }
        ("GET", ["queue"]) => {
            let wanted = query
                .split('&')
                .find_map(|p| p.strip_prefix("state="))
                .unwrap_or("");
            let messages: Vec<&Value> = state
                .messages
                .iter()
                .filter(|m| wanted.is_empty() || m["state"] == wanted)
                .collect();
            (
                200,
                json!({"messages": messages, "total": messages.len(), "page": 1, "per_page": 50}),
            )
        }
        (_, ["queue", id, rest @ ..]) => {
            let Some(at) = state.messages.iter().position(|m| m["id"] == *id) else {
                return error(404, &format!("no message {id} in the queue"), Some("id"));
            };
            match (method, rest) {
                ("GET", []) => {
                    let mut m = state.messages[at].clone();
                    m["recipients_detail"] =
                        json!([{"address": "bob@mx.test", "status": "pending", "reply": null}]);
                    m["headers"] = json!([["Subject", "<b>not bold</b>"]]);
                    m["history"] = json!([{"at": "2026-01-02T03:04:05Z", "what": "received"}]);
                    (200, m)
                }
                ("GET", ["trace"]) => (
                    200,
                    json!({"id": id, "final_state": null, "entries": [
                        {"at": "2026-01-02T03:04:05Z", "kind": "event", "event": "end-of-data"},
                        {"at": "2026-01-02T03:04:05Z", "kind": "binding", "binding": "b-2",
                         "name": "hold-all", "outcome": "continue", "changes": ["fate=hold"]},
                    ]}),
                ),
                ("DELETE", []) => {
                    state.messages.remove(at);
                    (200, json!({"id": id, "deleted": true}))
                }
                ("POST", [action]) => {
                    let new = match *action {
                        "release" | "retry" => "queued",
                        "hold" => "held",
                        "bounce" => {
                            state.messages.remove(at);
                            return (200, json!({"id": id, "state": "bounced"}));
                        }
                        _ => return error(404, "no such action", None),
                    };
                    state.messages[at]["state"] = json!(new);
                    (200, json!({"id": id, "state": new}))
                }
                _ => error(405, "method not allowed", None),
            }
        }
        ("GET", ["bindings"]) => (200, json!({"bindings": state.bindings})),
        ("PATCH", ["bindings", id]) => {
            let Some(b) = state
                .bindings
                .iter_mut()
                .find(|b| b["id"] == *id || b["name"] == *id)
            else {
                return error(404, &format!("no binding {id}"), Some("id"));
            };
            let patch: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return error(400, &e.to_string(), None),
            };
            if let Some(enabled) = patch["enabled"].as_bool() {
                b["enabled"] = json!(enabled);
            }
            (200, b.clone())
        }
        _ => error(404, "no such endpoint", None),
    }
}
