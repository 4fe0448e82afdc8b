//! The admin API, driven over HTTP against the real binary: the token, every endpoint, and
//! every kind of bad input (each a JSON error that changes nothing).

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::time::{Duration, Instant};

use common::{Postern, bind, workdir};
use reqwest::StatusCode;
use reqwest::blocking::{Client, RequestBuilder};
use serde_json::Value;

struct Api {
    url: String,
    token: String,
    http: Client,
}

impl Api {
    fn of(server: &Postern) -> Self {
        Self {
            url: server.admin_url(),
            token: server.admin_token(),
            http: http(),
        }
    }

    fn authed(&self, request: RequestBuilder) -> RequestBuilder {
        request.bearer_auth(&self.token)
    }

    fn get(&self, path: &str) -> (StatusCode, Value) {
        send(self.authed(self.http.get(format!("{}{path}", self.url))))
    }

    fn post(&self, path: &str, body: &str) -> (StatusCode, Value) {
        send(
            self.authed(self.http.post(format!("{}{path}", self.url)))
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
    }

    fn delete(&self, path: &str) -> (StatusCode, Value) {
        send(self.authed(self.http.delete(format!("{}{path}", self.url))))
    }

    /// Polls the queue listing until `n` messages match `query`.
    fn wait_for_queue(&self, query: &str, n: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = self.get(&format!("/v1/queue?{query}"));
            assert_eq!(status, StatusCode::OK, "{body}");
            if body["total"] == n {
                return body;
            }
            assert!(Instant::now() < deadline, "queue {query}: {body}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A plain-HTTP client (reqwest is built without a default TLS provider; it needs one even so).
fn http() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::new()
}

fn send(request: RequestBuilder) -> (StatusCode, Value) {
    let response = request.send().expect("request");
    let status = response.status();
    let text = response.text().expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// The error body of the contract: a message and the field at fault.
fn assert_error(body: &Value, field: Option<&str>) {
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_eq!(body["error"]["field"].as_str(), field, "{body}");
}

/// A server whose `end-of-data` binding holds every message.
fn holding_server() -> (tempfile::TempDir, Postern) {
    let dir = workdir();
    bind(
        dir.path(),
        &[
            "--event",
            "end-of-data",
            "--sink",
            "builtin:set-fate",
            "--prop",
            "fate=hold",
            "--name",
            "hold-all",
        ],
    );
    let server = Postern::start_in(dir.path(), None);
    (dir, server)
}

fn send_mail(server: &Postern, from: &str, to: &str, subject: &str) -> String {
    let mut c = server.client();
    let reply = c.send_message(from, &[to], &format!("Subject: {subject}\r\n\r\nbody"));
    assert_eq!(reply.code, 250, "{reply:?}");
    reply.queue_id()
}

#[test]
fn every_v1_request_needs_the_token() {
    let server = Postern::start();
    let api = Api::of(&server);
    let http = http();
    let (status, body) = send(http.get(format!("{}/v1/status", api.url)));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, None);
    let (status, body) = send(
        http.get(format!("{}/v1/queue", api.url))
            .bearer_auth("0000"),
    );
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_error(&body, None);
    // A wrong token on a changing request changes nothing either.
    let (status, _) = send(http.post(format!("{}/v1/reload", api.url)).bearer_auth("x"));
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, body) = api.get("/v1/status");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["hostname"], "mx.test");
    assert!(body["uptime_seconds"].is_u64());
    let listeners = body["listeners"].as_array().expect("listeners");
    assert!(listeners.iter().any(|l| l["protocol"] == "smtp"
        && l["mode"] == "smtp"
        && l["address"] == server.addr.to_string()));
    assert!(
        listeners
            .iter()
            .any(|l| l["protocol"] == "admin" && l["address"] == server.admin.to_string())
    );
    assert_eq!(body["queue"]["total"], 0);
    let _c = server.client();
    let (_, body) = api.get("/v1/status");
    assert_eq!(body["connections"]["open"], 1, "{body}");
}

#[test]
fn the_token_is_made_once_with_mode_0600_and_kept_across_a_restart() {
    let dir = workdir();
    let mut server = Postern::start_in(dir.path(), None);
    let path = dir.path().join("data").join("admin.token");
    let mode = std::fs::metadata(&path)
        .expect("token")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = server.admin_token();
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    server.stop();
    let server = Postern::start_in(dir.path(), None);
    assert_eq!(server.admin_token(), token);
    let (status, _) = Api::of(&server).get("/v1/status");
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn bad_input_gets_a_json_error() {
    let server = Postern::start();
    let api = Api::of(&server);
    let (status, body) = api.post("/v1/reload", "{not json");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, None);
    let (status, body) = api.post("/v1/reload", r#"{"everything":true}"#);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, Some("everything"));
    let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(2 << 20));
    // On a connection of its own: the server closes it without reading the rest of the body.
    let (status, body) = send(
        http()
            .post(format!("{}/v1/reload", api.url))
            .bearer_auth(&api.token)
            .body(huge),
    );
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error(&body, None);
    let (status, body) = api.get("/v1/queue/01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, None);
    let (status, body) = api.get("/v1/queue/not-an-id");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, None);
    let (status, _) = api.post("/v1/queue/01ARZ3NDEKTSV4RRFFQ69G5FAV/release", "");
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.delete("/v1/queue/01ARZ3NDEKTSV4RRFFQ69G5FAV");
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = api.get("/v1/queue?state=lost");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, Some("state"));
    let (status, body) = api.get("/v1/queue?older_than=soon");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, Some("older_than"));
    let (status, body) = api.get("/v1/queue?colour=red");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error(&body, Some("colour"));
    let (status, body) = api.get("/v1/nothing-here");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error(&body, None);
    // `..` sent as is (an HTTP client would fold it away).
    let mut raw = std::net::TcpStream::connect(server.admin).expect("connect");
    std::io::Write::write_all(
        &mut raw,
        b"GET /static/../../admin.token HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .expect("write");
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut raw, &mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    // `/metrics` needs no token; a path nothing serves is a 404, not a crash, and so is the
    // trace of an id nobody ever queued.
    let (status, _) = send(http().get(format!("{}/metrics", api.url)));
    assert_eq!(status, StatusCode::OK);
    let (status, _) = send(http().get(format!("{}/no-such-file.txt", api.url)));
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = api.get("/v1/queue/0000000000000000/trace");
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error(&body, None);
    let (status, body) = api.post("/v1/reload", "");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["reloaded"], true);
}

#[test]
fn a_held_message_is_listed_shown_and_released_then_delivered() {
    let (_dir, server) = holding_server();
    let api = Api::of(&server);
    let id = send_mail(&server, "alice@example.org", "bob@localhost", "held one");
    let list = api.wait_for_queue("state=held", 1);
    let m = &list["messages"][0];
    assert_eq!(m["id"], id.as_str());
    assert_eq!(m["state"], "held");
    assert_eq!(m["sender"], "alice@example.org");
    assert_eq!(m["recipients"][0], "bob@localhost");
    assert!(m["next_attempt"].is_null());
    assert_eq!(list["page"], 1);
    assert_eq!(list["per_page"], 50);
    api.wait_for_queue("state=held&domain=localhost&sender=alice&older_than=0s", 1);
    api.wait_for_queue("state=held&domain=example.net", 0);
    api.wait_for_queue("recipient=carol", 0);
    api.wait_for_queue("state=deferred", 0);

    let (status, detail) = api.get(&format!("/v1/queue/{id}"));
    assert_eq!(status, StatusCode::OK, "{detail}");
    assert_eq!(detail["recipients_detail"][0]["address"], "bob@localhost");
    assert_eq!(detail["recipients_detail"][0]["status"], "pending");
    assert!(
        detail["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .any(|h| h[0] == "Subject" && h[1] == "held one")
    );
    assert!(detail["history"].as_array().is_some_and(|h| !h.is_empty()));
    let (_, status_body) = api.get("/v1/status");
    assert_eq!(status_body["queue"]["held"], 1);

    // Retry refuses a held message and changes nothing.
    let (status, body) = api.post(&format!("/v1/queue/{id}/retry"), "");
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    api.wait_for_queue("state=held", 1);
    let (status, body) = api.post(&format!("/v1/queue/{id}/frobnicate"), "");
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    api.wait_for_queue("state=held", 1);

    let (status, body) = api.post(&format!("/v1/queue/{id}/release"), "");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(body["state"], "queued");
    let mail = server.wait_for_mail("localhost", "bob", 1);
    assert!(mail[0].contains("held one"));
    api.wait_for_queue("", 0);
}

#[test]
fn hold_delete_and_bounce_act_on_live_messages() {
    let (_dir, server) = holding_server();
    let api = Api::of(&server);
    let gone = send_mail(&server, "alice@localhost", "bob@localhost", "to delete");
    let bounced = send_mail(&server, "alice@localhost", "bob@localhost", "to bounce");
    api.wait_for_queue("state=held", 2);

    let (status, body) = api.delete(&format!("/v1/queue/{gone}"));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deleted"], true);
    let (status, _) = api.get(&format!("/v1/queue/{gone}"));
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.delete(&format!("/v1/queue/{gone}"));
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = api.post(&format!("/v1/queue/{bounced}/bounce"), "");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "bounced");
    // The failure DSN goes to the sender; the deleted message's recipient got nothing.
    let dsn = server.wait_for_mail("localhost", "alice", 1);
    assert!(dsn[0].contains("to bounce"), "{}", dsn[0]);
    assert!(dsn[0].contains("administrator"), "{}", dsn[0]);
    assert!(common::read_all(&server.new_mail("localhost", "bob")).is_empty());

    // Held and released by the administrator: a message no binding held.
    let plain = Postern::start();
    let api = Api::of(&plain);
    let (status, _) = api.post("/v1/queue/01ARZ3NDEKTSV4RRFFQ69G5FAV/hold", "");
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn bindings_are_added_changed_and_removed_live_with_the_cli_validation() {
    let server = Postern::start();
    let api = Api::of(&server);
    let (status, body) = api.get("/v1/bindings");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["bindings"], serde_json::json!([]));

    let (status, made) = api.post(
        "/v1/bindings",
        r#"{"event":"end-of-data","sink":"builtin:set-fate","name":"hold-all","priority":"high","properties":{"fate":"hold"}}"#,
    );
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["name"], "hold-all");
    assert_eq!(made["event"], "end-of-data");
    assert_eq!(made["sink"], "builtin:set-fate");
    assert_eq!(made["priority"], 8191);
    assert_eq!(made["enabled"], true);
    assert_eq!(made["properties"]["fate"], "hold");
    assert!(made["rule"].is_null());
    // Written to the registry file, as `postern binding list` shows.
    let (code, listed, _) = common::binding(&server.dir, &["list", "--json"]);
    assert_eq!(code, 0);
    assert!(listed.contains("hold-all"), "{listed}");

    // Applied at once: the next message is held.
    send_mail(&server, "alice@example.org", "bob@localhost", "live");
    api.wait_for_queue("state=held", 1);
    let (_, shown) = api.get("/v1/bindings/hold-all");
    assert_eq!(shown["id"], made["id"]);
    assert_eq!(shown["stats"]["calls"], 1, "{shown}");
    let (status, _) = api.get(&format!(
        "/v1/bindings/{}",
        made["id"].as_str().expect("id")
    ));
    assert_eq!(status, StatusCode::OK);

    // Refused, and nothing changed.
    let cases: &[(&str, &str, StatusCode, Option<&str>)] = &[
        (
            "unknown field",
            r#"{"event":"end-of-data","sink":"builtin:set-fate","colour":"red"}"#,
            StatusCode::BAD_REQUEST,
            Some("colour"),
        ),
        (
            "bad event",
            r#"{"event":"nonsense","sink":"builtin:set-fate"}"#,
            StatusCode::BAD_REQUEST,
            Some("event"),
        ),
        (
            "bad sink",
            r#"{"event":"end-of-data","sink":"nowhere"}"#,
            StatusCode::BAD_REQUEST,
            Some("sink"),
        ),
        (
            "bad priority",
            r#"{"event":"end-of-data","sink":"builtin:set-fate","priority":99999}"#,
            StatusCode::BAD_REQUEST,
            Some("priority"),
        ),
        (
            "bad property",
            r#"{"event":"end-of-data","sink":"builtin:set-fate","properties":{"fate":"sideways"}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        (
            "duplicate name",
            r#"{"event":"end-of-data","sink":"builtin:set-fate","name":"hold-all","properties":{"fate":"hold"}}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
        ),
        ("malformed", r#"{"event":"#, StatusCode::BAD_REQUEST, None),
    ];
    for (name, body, want, field) in cases {
        let (status, answer) = api.post("/v1/bindings", body);
        assert_eq!(status, *want, "{name}: {answer}");
        assert_error(&answer, *field);
    }
    let (status, answer) = send(
        api.authed(api.http.patch(format!("{}/v1/bindings/hold-all", api.url)))
            .body(r#"{"rule":"REMOTE=999.1.1.1/99"}"#),
    );
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (status, _) = send(
        api.authed(api.http.patch(format!("{}/v1/bindings/nobody", api.url)))
            .body(r#"{"enabled":false}"#),
    );
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, body) = api.get("/v1/bindings");
    assert_eq!(body["bindings"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["bindings"][0]["rule"], Value::Null);

    // Disabled live: the next message is delivered.
    let (status, patched) = send(
        api.authed(api.http.patch(format!("{}/v1/bindings/hold-all", api.url)))
            .body(r#"{"enabled":false,"properties":{"fate":"badmail"}}"#),
    );
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["properties"]["fate"], "badmail");
    send_mail(&server, "alice@example.org", "bob@localhost", "after");
    server.wait_for_mail("localhost", "bob", 1);

    let (status, gone) = api.delete("/v1/bindings/hold-all");
    assert_eq!(status, StatusCode::OK, "{gone}");
    assert_eq!(gone["deleted"], true);
    let (status, _) = api.get("/v1/bindings/hold-all");
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.delete("/v1/bindings/hold-all");
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// `promtool check metrics` (Debian package `prometheus`) on an exposition; its complaints.
fn promtool(text: &str) -> std::process::Output {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    child.wait_with_output().expect("promtool ran")
}

#[test]
fn metrics_and_a_trace_are_served_for_a_delivered_message() {
    let dir = workdir();
    bind(
        dir.path(),
        &[
            "--event",
            "end-of-data",
            "--sink",
            "builtin:add-header",
            "--prop",
            "name=X-Tagged",
            "--prop",
            "value=yes",
            "--name",
            "tagger",
        ],
    );
    let server = Postern::start_in(dir.path(), None);
    let api = Api::of(&server);
    let id = send_mail(&server, "alice@example.org", "bob@localhost", "scraped");
    let mail = server.wait_for_mail("localhost", "bob", 1);
    assert!(mail[0].contains("X-Tagged: yes"), "{}", mail[0]);
    api.wait_for_queue("", 0);

    // Scraped as a plain HTTP client would, without a token: the Prometheus text format.
    let response = http()
        .get(format!("{}/metrics", api.url))
        .send()
        .expect("scrape");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().expect("exposition");
    for line in [
        "postern_messages_received_total 1",
        "postern_messages_delivered_total 1",
        "postern_binding_calls_total{binding=\"tagger\",event=\"end-of-data\",outcome=\"ok\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in:\n{text}");
    }
    assert!(
        text.contains("postern_smtp_commands_total{verb=\"MAIL\"}"),
        "{text}"
    );
    let checked = promtool(&text);
    assert!(
        checked.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    // Prometheus asks for OpenMetrics and gets it.
    let response = http()
        .get(format!("{}/metrics", api.url))
        .header("accept", "application/openmetrics-text;version=1.0.0")
        .send()
        .expect("scrape");
    let content_type = response.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    assert!(response.text().expect("body").ends_with("# EOF\n"));

    // The message has left the queue; its trace is still served, with the binding that fired.
    let deadline = Instant::now() + Duration::from_secs(20);
    let trace = loop {
        let (status, body) = api.get(&format!("/v1/queue/{id}/trace"));
        if status == StatusCode::OK && body["final_state"] == "delivered" {
            break body;
        }
        assert!(Instant::now() < deadline, "{status}: {body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let entries = trace["entries"].as_array().expect("entries");
    assert!(
        entries
            .iter()
            .any(|e| e["kind"] == "binding" && e["binding"] == "tagger" && e["outcome"] == "ok"),
        "{trace}"
    );
    assert!(entries.iter().any(|e| e["kind"] == "delivery"), "{trace}");
}
