//! A small W3C WebDriver client over plain HTTP/1.1, enough to drive Debian's chromedriver:
//! start it on a free port, open a headless Chromium session, find elements, click, type, read
//! text, answer `confirm()` dialogs and take a screenshot.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key under which WebDriver names an element.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a wait for the page to show something may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Where `name` is on the PATH, if anywhere.
fn which(name: &str) -> Option<PathBuf> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .ok()?;
    let path = String::from_utf8(out.stdout).ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(path.trim()))
        .filter(|p| !p.as_os_str().is_empty())
}

/// The browser and its driver. Missing, the test fails and says what to install: a browser test
/// that silently skipped would let a broken dashboard pass.
pub fn browser() -> (PathBuf, PathBuf) {
    let missing = |what: &str| -> ! {
        panic!(
            "the dashboard test drives a real browser: {what} is not installed \
             (Debian packages `chromium` and `chromium-driver`; scripts/test installs them)"
        )
    };
    let chromium = which("chromium").unwrap_or_else(|| missing("chromium"));
    let driver = which("chromedriver").unwrap_or_else(|| missing("chromedriver"));
    (chromium, driver)
}

/// A running chromedriver with one headless browser session; both end on drop.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium session.
    pub fn start(log: &Path) -> Self {
        let (chromium, chromedriver) = browser();
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let log = std::fs::File::create(log).expect("driver log");
        let driver = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start chromedriver");
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
        };
        let deadline = Instant::now() + PATIENCE;
        loop {
            let ready = browser
                .try_request("GET", "/status", None)
                .is_ok_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        let answer = browser.request(
            "POST",
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                             "--disable-dev-shm-usage", "--window-size=1280,1000",
                             "--no-first-run", "--no-default-browser-check"],
                },
            }}})),
        );
        browser.session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {answer}"))
            .to_owned();
        browser
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// A WebDriver command that must succeed; its answer.
    fn request(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.try_request(method, path, body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
    }

    /// A WebDriver command: the answer, or the driver's error as text.
    fn try_request(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let (status, text) = http(self.port, method, path, body.as_ref())?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| format!("{status}: {e}: {text}"))?;
        if status == 200 {
            Ok(value)
        } else {
            Err(format!("{status}: {}", value["value"]))
        }
    }

    pub fn goto(&self, url: &str) {
        self.request(
            "POST",
            &self.session_path("/url"),
            Some(json!({ "url": url })),
        );
    }

    /// The element that matches the CSS selector now, if any.
    pub fn find(&self, css: &str) -> Option<Element<'_>> {
        let answer = self
            .try_request(
                "POST",
                &self.session_path("/element"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .ok()?;
        let id = answer["value"][ELEMENT_KEY].as_str()?.to_owned();
        Some(Element { browser: self, id })
    }

    /// Waits for an element matching the CSS selector to be shown.
    pub fn wait(&self, css: &str) -> Element<'_> {
        self.wait_until(css, |e| e.displayed())
    }

    /// Waits for a shown element matching the CSS selector whose text contains `needle`.
    pub fn wait_text(&self, css: &str, needle: &str) -> Element<'_> {
        self.wait_until(css, |e| e.displayed() && e.text().contains(needle))
    }

    fn wait_until(&self, css: &str, ok: impl Fn(&Element<'_>) -> bool) -> Element<'_> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(e) = self.find(css).filter(&ok) {
                return e;
            }
            if Instant::now() > deadline {
                let page = self
                    .try_request(
                        "POST",
                        &self.session_path("/execute/sync"),
                        Some(json!({"script": "return location.href + '\\n' + document.body.innerText", "args": []})),
                    )
                    .map(|v| v["value"].to_string())
                    .unwrap_or_else(|e| e);
                panic!("{css} never showed what was wanted; the page says:\n{page}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for no element to match the CSS selector.
    pub fn wait_gone(&self, css: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.find(css).is_some() {
            assert!(Instant::now() < deadline, "{css} never went away");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for a `confirm()` dialog, returns its text and accepts it.
    pub fn accept_dialog(&self) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(answer) = self.try_request("GET", &self.session_path("/alert/text"), None) {
                self.request("POST", &self.session_path("/alert/accept"), Some(json!({})));
                return answer["value"].as_str().unwrap_or_default().to_owned();
            }
            assert!(Instant::now() < deadline, "no dialog was opened");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs a script in the page and returns its value.
    pub fn execute(&self, script: &str) -> Value {
        self.request(
            "POST",
            &self.session_path("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )["value"]
            .clone()
    }

    /// Saves a PNG of the window.
    pub fn screenshot(&self, to: &Path) {
        use base64::Engine as _;
        let answer = self.request("GET", &self.session_path("/screenshot"), None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(answer["value"].as_str().expect("screenshot data"))
            .expect("screenshot base64");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(to, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.try_request("DELETE", &self.session_path(""), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// An element of the page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    fn path(&self, rest: &str) -> String {
        self.browser
            .session_path(&format!("/element/{}{rest}", self.id))
    }

    pub fn click(&self) {
        self.browser
            .request("POST", &self.path("/click"), Some(json!({})));
    }

    pub fn type_text(&self, text: &str) {
        self.browser
            .request("POST", &self.path("/value"), Some(json!({ "text": text })));
    }

    pub fn clear(&self) {
        self.browser
            .request("POST", &self.path("/clear"), Some(json!({})));
    }

    /// The rendered text; empty when the element went away meanwhile.
    pub fn text(&self) -> String {
        self.browser
            .try_request("GET", &self.path("/text"), None)
            .ok()
            .and_then(|v| v["value"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    pub fn displayed(&self) -> bool {
        self.browser
            .try_request("GET", &self.path("/displayed"), None)
            .is_ok_and(|v| v["value"] == true)
    }
}

/// One HTTP/1.1 request to the driver on loopback: the status and the body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, String), String> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body.as_bytes()))
        .map_err(|e| e.to_string())?;
    // The driver keeps the connection open whatever we ask, so the body ends by its length.
    let mut reader = std::io::BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("no status")?;
    let header = |name: &str| {
        head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    };
    let mut raw = Vec::new();
    if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        raw.resize(length, 0);
        reader.read_exact(&mut raw).map_err(|e| e.to_string())?;
    } else {
        reader.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
    Ok((status, if chunked { dechunk(&text) } else { text }))
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}
