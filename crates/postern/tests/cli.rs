//! The command line as a new user meets it: what each command says it used, what it confirms,
//! what it refuses and how, and what `serve` logs.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{Postern, bind, binding, workdir};

fn postern(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_postern"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run postern")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn unknown_sink_properties_are_refused_with_the_known_ones() {
    let dir = workdir();
    let d = dir.path();
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "misspelt text",
            &[
                "add",
                "--event",
                "inbound:MAIL",
                "--sink",
                "builtin:reply",
                "--name",
                "deny",
                "--prop",
                "code=550",
                "--prop",
                "txt=go away",
            ],
            "unknown property `txt` for sink builtin:reply (its properties: `code`, `enhanced`, `text`, `disconnect`)",
        ),
        (
            "made-up key",
            &[
                "add",
                "--event",
                "inbound:MAIL",
                "--sink",
                "builtin:log",
                "--prop",
                "colour=red",
            ],
            "unknown property `colour` for sink builtin:log (its properties: `label`)",
        ),
    ];
    for (name, args, message) in cases {
        let (code, _, err) = binding(d, args);
        assert_eq!(code, 2, "{name}: {err}");
        assert!(err.contains(message), "{name}: {err}");
    }
    assert!(!d.join("data/bindings.toml").exists(), "nothing written");

    // set-prop is checked the same way.
    bind(
        d,
        &[
            "--event",
            "inbound:MAIL",
            "--sink",
            "builtin:log",
            "--name",
            "watch",
        ],
    );
    let (code, _, err) = binding(d, &["set-prop", "watch", "lable=x"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("binding \"watch\": unknown property `lable`"),
        "{err}"
    );
}

#[test]
fn a_registry_file_with_an_unknown_property_is_refused_at_load_naming_the_binding() {
    let dir = workdir();
    let d = dir.path();
    std::fs::create_dir_all(d.join("data")).unwrap();
    std::fs::write(
        d.join("data/bindings.toml"),
        "version = 1\n[[binding]]\nid = \"6f1c2a55-4b0e-4f7e-9d7c-0a1b2c3d4e5f\"\n\
         name = \"deny-spam\"\nevent = \"inbound:MAIL\"\nsink = \"builtin:reply\"\n\
         priority = 100\n[binding.properties]\ncode = 550\ntxt = \"no\"\n",
    )
    .unwrap();
    let data = d.join("data");
    let out = postern(d, &["check-config", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("binding \"deny-spam\": unknown property `txt`") && err.contains("`text`"),
        "{err}"
    );
    let (code, _, err) = binding(d, &["list"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown property `txt`"), "{err}");
    let out = postern(
        d,
        &[
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("unknown property `txt`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn every_registry_command_says_which_registry_and_data_folder_it_used() {
    let dir = workdir();
    let d = dir.path();
    let data = d.join("data");
    let registry = data.join("bindings.toml");
    let used = format!(
        "registry {}, data folder {}",
        registry.display(),
        data.display()
    );
    let (code, _, err) = binding(d, &["list"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&used), "{err}");
    let (code, out, err) = binding(d, &["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&used), "{err}");
    assert_eq!(out.trim(), "[]", "standard output stays JSON");
    let out = postern(d, &["check-config", "--data-dir", data.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&used), "{}", text(&out.stderr));

    // The embedded default's folder is below the working directory.
    let out = postern(d, &["binding", "list"]);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains(
            "configuration <embedded default>, registry postern-data/bindings.toml, data folder postern-data"
        ),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn remove_enable_and_disable_confirm_what_they_did() {
    let dir = workdir();
    let d = dir.path();
    let id = bind(
        d,
        &[
            "--event",
            "inbound:MAIL",
            "--sink",
            "builtin:log",
            "--name",
            "watch",
        ],
    );
    let cases: &[(&[&str], &str)] = &[
        (&["disable", "watch"], "disabled \"watch\""),
        (&["disable", "watch"], "\"watch\" was disabled already"),
        (&["enable", "watch"], "enabled \"watch\""),
        (
            &["set-prop", "watch", "label=x"],
            "set label = x on \"watch\"",
        ),
        (
            &["del-prop", "watch", "label"],
            "removed property label from \"watch\"",
        ),
        (
            &["remove", "watch"],
            "removed \"watch\" (", // then the id, sink and event
        ),
    ];
    for (args, want) in cases {
        let (code, out, err) = binding(d, args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.contains(want), "{args:?}: {out}");
    }
    let (_, out, _) = binding(d, &["list", "--json"]);
    assert_eq!(out.trim(), "[]");
    let _ = id;
}

#[test]
fn list_all_aligns_its_columns() {
    let dir = workdir();
    let d = dir.path();
    bind(
        d,
        &[
            "--event",
            "inbound:MAIL",
            "--sink",
            "builtin:log",
            "--name",
            "a-binding-name-longer-than-any-column-was",
            "--rule",
            "MAIL FROM=*@example.org",
        ],
    );
    let (code, out, err) = binding(d, &["list", "--all"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    let header = lines[0];
    let at = |line: &str, column: &str| {
        // The cell that starts where the header's column does.
        let start = header.find(column).unwrap();
        line.get(start..)
            .map(|rest| rest.split("  ").next().unwrap().to_owned())
    };
    for line in &lines[1..] {
        let state = at(line, "STATE").unwrap_or_default();
        assert!(
            ["enabled", "disabled", "shadow"].contains(&state.trim()),
            "STATE column misaligned in {line:?}:\n{out}"
        );
        let sink = at(line, "SINK").unwrap_or_default();
        assert!(
            sink.starts_with("builtin:") || sink.starts_with("(the server"),
            "SINK column misaligned in {line:?}:\n{out}"
        );
    }
    let mine = lines
        .iter()
        .find(|l| l.contains("a-binding-name-longer"))
        .unwrap();
    assert_eq!(
        mine.find("builtin:log"),
        header.find("SINK"),
        "a long name pushes the SINK column, it does not shift one row:\n{out}"
    );
    assert_eq!(
        mine.find("MAIL FROM="),
        header.find("RULE"),
        "RULE column:\n{out}"
    );
}

#[test]
fn binding_sinks_lists_every_built_in_sink_with_its_properties() {
    let dir = workdir();
    let out = postern(dir.path(), &["binding", "sinks"]);
    assert!(out.status.success());
    let list = text(&out.stdout);
    for sink in [
        "builtin:reply",
        "builtin:ehlo-keyword",
        "builtin:add-header",
        "builtin:set-fate",
        "builtin:log",
        "builtin:delay",
        "builtin:fault",
        "builtin:command",
        "builtin:hosts",
        "builtin:spf",
        "builtin:dkim-verify",
        "builtin:arc-verify",
        "builtin:dmarc",
        "builtin:dkim-sign",
        "builtin:arc-seal",
        "builtin:mailing-list",
        "builtin:route-table",
        "builtin:hold-queue",
        "builtin:clamav",
        "builtin:xclient",
        "builtin:xforward",
        "builtin:archive",
        "builtin:disclaimer",
    ] {
        let line = list
            .lines()
            .find(|l| l.starts_with(&format!("{sink} ")))
            .unwrap_or_else(|| panic!("{sink} missing:\n{list}"));
        assert!(line.split_whitespace().count() > 2, "{line}");
    }
    assert!(list.contains("code, enhanced, text, disconnect"), "{list}");
    assert_eq!(
        list.lines().count(),
        24,
        "a header and one line each:\n{list}"
    );
}

#[test]
fn config_default_prints_the_embedded_default_which_checks_clean() {
    let dir = workdir();
    let d = dir.path();
    let out = postern(d, &["config", "default"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), postern_config_embedded());
    std::fs::write(d.join("postern.toml"), &out.stdout).unwrap();
    let out = postern(d, &["check-config", "postern.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// The embedded default, as the source tree has it.
fn postern_config_embedded() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/src/embedded.toml"),
    )
    .unwrap()
}

#[test]
fn help_lists_only_the_options_a_command_takes() {
    let dir = workdir();
    let help = |args: &[&str]| {
        let mut full = args.to_vec();
        full.push("--help");
        text(&postern(dir.path(), &full).stdout)
    };
    let cases: &[(&[&str], &[&str], &[&str])] = &[
        (
            &["binding", "remove"],
            &["--config", "--data-dir"],
            &["--json"],
        ),
        (&["binding", "enable"], &["--data-dir"], &["--json"]),
        (&["binding", "show"], &["--json"], &[]),
        (
            &["binding", "events"],
            &[],
            &["--config", "--data-dir", "--json"],
        ),
        (
            &["binding", "sinks"],
            &[],
            &["--config", "--data-dir", "--json"],
        ),
        (&["config", "default"], &[], &["--config", "--data-dir"]),
        (
            &["serve"],
            &["--log-level", "RUST_LOG", "--hostname"],
            &["--json"],
        ),
        (
            &["check-config"],
            &["--config", "--data-dir"],
            &["--listen", "--json"],
        ),
    ];
    for (command, has, lacks) in cases {
        let text = help(command);
        for option in *has {
            assert!(text.contains(option), "{command:?} lacks {option}:\n{text}");
        }
        for option in *lacks {
            assert!(
                !text.contains(option),
                "{command:?} lists {option}:\n{text}"
            );
        }
    }
}

#[test]
fn check_config_refuses_a_file_given_twice() {
    let dir = workdir();
    let d = dir.path();
    for name in ["a.toml", "b.toml"] {
        std::fs::write(d.join(name), postern_config_embedded()).unwrap();
    }
    let out = postern(d, &["check-config", "a.toml", "--config", "b.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot be used with"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn check_config_refuses_a_log_level_serve_could_not_use_naming_the_field() {
    let dir = workdir();
    let d = dir.path();
    std::fs::write(
        d.join("postern.toml"),
        "[[listener]]\naddress = \"127.0.0.1:0\"\n[log]\nlevel = \"nonsense=[[[\"\n",
    )
    .unwrap();
    for args in [
        &["check-config", "postern.toml"][..],
        &["serve", "--config", "postern.toml"][..],
    ] {
        let out = postern(d, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(
            err.contains("postern.toml:4:9: field `log.level`: invalid log level"),
            "{args:?}: {err}"
        );
        assert_eq!(
            err.matches("invalid log level").count(),
            1,
            "said once: {err}"
        );
    }
}

#[test]
fn serve_refuses_bad_options_as_the_file_would() {
    let dir = workdir();
    let d = dir.path();
    /// Name, options, environment, the error wanted.
    type Case<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            "host name with a blank",
            &["--hostname", "bad name"],
            &[],
            "--hostname: invalid host name \"bad name\"",
        ),
        (
            "log level option",
            &["--log-level", "x=[[["],
            &[],
            "--log-level: invalid log level",
        ),
        (
            "log level from the environment",
            &[],
            &[("RUST_LOG", "x=[[[")],
            "RUST_LOG: invalid log level",
        ),
    ];
    for (name, args, env, want) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_postern"))
            .current_dir(d)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(*args)
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(
            text(&out.stderr).contains(want),
            "{name}: {}",
            text(&out.stderr)
        );
    }
    assert!(
        !d.join("postern-data").exists(),
        "refused before touching anything"
    );
}

#[test]
fn a_timeout_without_unit_says_how_to_write_one_on_the_command_line() {
    let dir = workdir();
    let (code, _, err) = binding(
        dir.path(),
        &[
            "add",
            "--event",
            "inbound:MAIL",
            "--sink",
            "builtin:log",
            "--timeout",
            "5",
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("write for example 5s or 5ms"), "{err}");
    assert!(!err.contains("quotes"), "{err}");
}

#[test]
fn log_level_option_wins_over_rust_log() {
    let dir = workdir();
    let d = dir.path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_postern"))
        .current_dir(d)
        .args(["serve", "--listen", "127.0.0.1:0", "--log-level", "warn"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.starts_with("listening smtp "), "{line}");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert!(!err.contains("INFO") && !err.contains("DEBUG"), "{err}");
}

#[test]
fn a_json_log_is_json_on_every_line_with_numbers_as_numbers() {
    let dir = workdir();
    let d = dir.path();
    let fault = [
        "--event",
        "store",
        "--sink",
        "builtin:fault",
        "--prop",
        "mode=error",
    ];
    bind(d, &fault);
    let server = Postern::start_in(
        d,
        Some(
            "[[listener]]\naddress = \"127.0.0.1:0\"\n[[domain]]\nname = \"localhost\"\nusers = \"*\"\n[log]\nformat = \"json\"\n",
        ),
    );
    let mut c = server.client();
    let reply = c.send_message("a@example.org", &["bob@localhost"], "Subject: x\r\n\r\nx");
    assert_eq!(reply.code, 250);
    // The store sink fails, so the pass defers; wait for the log to say so.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !server.log().contains("deferred until") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = server.log();
    let mut seen = Vec::new();
    for line in log.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        seen.push(value);
    }
    let find = |message: &str| {
        seen.iter()
            .find(|v| v["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in:\n{log}"))
    };
    let registry = find("binding registry loaded");
    assert_eq!(registry["bindings"], 1, "{registry}");
    let listening = find("listening");
    assert!(listening["port"].is_u64(), "{listening}");
    let recovered = find("queue recovered");
    assert!(recovered["messages"].is_u64(), "{recovered}");
    for v in &seen {
        for (key, field) in v.as_object().unwrap() {
            if let Some(s) = field.as_str() {
                assert!(
                    s.is_empty() || s.parse::<u64>().is_err() || key == "queue_id",
                    "field {key} is a number written as a string: {v}"
                );
            }
        }
    }
    let pass = find("transport pass done");
    let outcome = pass["outcome"].as_str().unwrap();
    // An RFC 3339 time, such as "deferred until 2026-12-03T09:01:02Z".
    let at = outcome.strip_prefix("deferred until ").unwrap_or(outcome);
    assert!(
        at.len() == 20
            && at.as_bytes()[4] == b'-'
            && at.as_bytes()[10] == b'T'
            && at.ends_with('Z'),
        "{pass}"
    );
}
