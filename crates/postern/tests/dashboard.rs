//! The web dashboard in a real browser: headless Chromium driven through chromedriver
//! (WebDriver), clicking through the pages as an administrator would.
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/test installs them); without them the
//! test fails and says so. Each run saves screenshots of the page beside the build, so CI can
//! keep them as artifacts: `target/dashboard-screenshot.png` (the real server) and
//! `target/dashboard-stub-screenshot.png` (the stand-in API).

mod common;
#[path = "dashboard/stub_api.rs"]
mod stub_api;
#[path = "dashboard/webdriver.rs"]
mod webdriver;

use std::path::PathBuf;

use common::{Postern, bind, binding, workdir};
use stub_api::{HOSTILE, StubApi, TOKEN};
use webdriver::Browser;

const HELD: &str = "01HELD0000000000000000000A";
const QUEUED: &str = "01QUEUED00000000000000000B";

/// Where a screenshot named `name` goes: the cargo target folder.
fn screenshot_path(name: &str) -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().map(|t| t.join(name)).unwrap_or(tmp)
}

/// Logs in with `token` on the page at `url`, checking a wrong token is refused first.
fn log_in(browser: &Browser, url: &str, token: &str) {
    browser.goto(url);
    let field = browser.wait("#token");
    field.type_text("not-the-token");
    browser.wait("#login-button").click();
    browser.wait_text("#login-error", "Wrong token");
    assert!(
        browser.find("#nav").is_some_and(|n| !n.displayed()),
        "a wrong token got past the login"
    );
    field.clear();
    field.type_text(token);
    browser.wait("#login-button").click();
    browser.wait_text("#status-facts", "0.1.0");
}

/// The pages against a stand-in API with awkward data: every view, every kind of button, and no
/// data ever read as markup.
#[test]
fn the_pages_drive_the_api_and_show_data_as_text() {
    let api = StubApi::start();
    let dir = tempfile::tempdir().unwrap();
    let browser = Browser::start(&dir.path().join("chromedriver.log"));
    log_in(&browser, &api.url(), TOKEN);

    // Status.
    browser.wait_text("#status-facts", "1h 2m 5s");
    browser.wait_text("#status-listeners", "127.0.0.1:2525");
    browser.wait_text("#status-queue-counts td[data-count='held']", "1");
    browser.wait_text("#status-queue-counts td[data-count='total']", "2");
    assert_eq!(
        browser.execute("return sessionStorage.getItem('postern-admin-token')"),
        TOKEN,
        "the token is kept for the tab"
    );

    // The queue: a sender full of markup stays text.
    browser.wait("#nav-queue").click();
    browser.wait(&format!("tr[data-id='{HELD}']"));
    let row = browser.wait(&format!("tr[data-id='{QUEUED}']"));
    assert!(row.text().contains(HOSTILE), "{}", row.text());
    assert_eq!(
        browser.execute("return [document.title, document.querySelectorAll('main img').length]"),
        serde_json::json!(["Postern", 0])
    );

    // Held messages, and releasing one.
    browser
        .wait("#queue-states button[data-state='held']")
        .click();
    browser.wait_gone(&format!("tr[data-id='{QUEUED}']"));
    browser
        .wait(&format!(
            "tr[data-id='{HELD}'] button[data-action='release']"
        ))
        .click();
    browser.wait_text("#notice", "now queued");
    assert_eq!(api.state_of(HELD).as_deref(), Some("queued"));
    browser.wait_text("#queue-summary", "No message is held");

    // A message's detail and trace, then deleting it after the confirmation.
    browser.wait("#queue-states button[data-state='']").click();
    browser.wait(&format!("tr[data-id='{QUEUED}'] a")).click();
    browser.wait_text("#message-trace", "hold-all");
    browser.wait_text("#message-headers", "<b>not bold</b>");
    browser.wait_text("#trace-final", "still in the queue");
    browser
        .wait("#message-actions button[data-action='delete']")
        .click();
    let asked = browser.accept_dialog();
    assert!(
        asked.contains(&format!("Delete message {QUEUED}")),
        "{asked}"
    );
    browser.wait("#view-queue");
    browser.wait_gone(&format!("tr[data-id='{QUEUED}']"));
    assert_eq!(api.state_of(QUEUED), None);

    // Bindings per event in chain order; disabling one.
    browser.wait("#nav-bindings").click();
    let first = browser.wait("table[data-event='end-of-data'] tbody tr:first-child");
    assert!(first.text().contains("hold-all"), "{}", first.text());
    browser.wait_text("tr[data-binding='b-2']", "0.25 ms");
    browser.wait("button[data-toggle='b-2']").click();
    browser.wait_text("#notice", "hold-all disabled");
    browser.wait_text("button[data-toggle='b-2']", "Enable");
    let disabled = api.state.lock().unwrap().bindings[1]["enabled"].clone();
    assert_eq!(disabled, false);
    let calls = api.state.lock().unwrap().calls.clone();
    assert!(
        calls.contains(&"PATCH /v1/bindings/b-2".to_owned()),
        "{calls:?}"
    );

    browser.screenshot(&screenshot_path("dashboard-stub-screenshot.png"));

    // Logging out forgets the token.
    browser.wait("#logout").click();
    browser.wait("#token");
    assert_eq!(
        browser.execute("return sessionStorage.getItem('postern-admin-token')"),
        serde_json::Value::Null
    );
}

/// The real server: the admin listener serves the pages, the token comes from DATA/admin.token,
/// a message held by `builtin:set-fate fate=hold` is released from the page and delivered, and
/// the holding binding is disabled from the page.
#[test]
fn a_held_message_is_released_from_the_page_and_delivered() {
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
    let mut client = server.client();
    let reply = client.send_message(
        "alice@client.test",
        &["bob@localhost"],
        "Subject: held for the dashboard\r\n\r\nbody",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    let id = reply.queue_id();

    let browser = Browser::start(&dir.path().join("chromedriver.log"));
    log_in(
        &browser,
        &format!("{}/", server.admin_url()),
        &server.admin_token(),
    );
    browser.wait_text("#status-queue-counts td[data-count='held']", "1");

    browser.wait("#nav-queue").click();
    browser
        .wait("#queue-states button[data-state='held']")
        .click();
    let row = browser.wait_text(&format!("tr[data-id='{id}']"), "held");
    assert!(row.text().contains("bob@localhost"), "{}", row.text());

    // The detail page, with the subject among the headers.
    browser.wait(&format!("tr[data-id='{id}'] a")).click();
    browser.wait_text("#message-headers", "held for the dashboard");
    browser.wait_text("#message-facts", "held");
    browser.screenshot(&screenshot_path("dashboard-screenshot.png"));

    browser
        .wait("#message-actions button[data-action='release']")
        .click();
    browser.wait_text("#notice", "now queued");
    let mail = server.wait_for_mail("localhost", "bob", 1);
    assert!(mail[0].contains("held for the dashboard"), "{}", mail[0]);
    browser.wait("#nav-queue").click();
    browser.wait_gone(&format!("tr[data-id='{id}']"));

    // Disabling the holding binding from the page: the registry says so, and it stops firing.
    browser.wait("#nav-bindings").click();
    let row = browser.wait_text("tr[data-name='hold-all']", "builtin:set-fate");
    assert!(row.text().contains("yes"), "{}", row.text());
    browser
        .wait("tr[data-name='hold-all'] button[data-toggle]")
        .click();
    browser.wait_text("#notice", "hold-all disabled");
    browser.wait_text("tr[data-name='hold-all'] button[data-toggle]", "Enable");
    let (code, listed, err) = binding(dir.path(), &["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("binding list JSON");
    let hold = find_named(&listed, "hold-all").unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(hold["enabled"], false, "{hold}");
    let reply = server.client().send_message(
        "alice@client.test",
        &["bob@localhost"],
        "Subject: not held\r\n\r\nbody",
    );
    assert_eq!(reply.code, 250, "{reply:?}");
    server.wait_for_mail("localhost", "bob", 2);
}

/// The object named `name` anywhere in a JSON document.
fn find_named<'a>(value: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    match value {
        serde_json::Value::Object(map) if map.get("name").is_some_and(|n| n == name) => Some(value),
        serde_json::Value::Object(map) => map.values().find_map(|v| find_named(v, name)),
        serde_json::Value::Array(items) => items.iter().find_map(|v| find_named(v, name)),
        _ => None,
    }
}
