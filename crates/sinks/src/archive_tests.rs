//! Tests of `builtin:archive`: both formats, retention, and refused properties.

use super::*;
use postern_mailmsg::PropertyBag;
use postern_mailmsg::{Content, MailMsg, Properties};
use std::path::Path;

fn make(folder: &Path, format: &str, retention: Option<&str>) -> Arc<dyn BlockingSink> {
    let mut properties = Properties::default();
    properties.set("folder", folder.display().to_string());
    properties.set("format", format);
    if let Some(r) = retention {
        properties.set("retention", r);
    }
    let spec = SinkSpec {
        binding_id: "b".into(),
        binding_name: "archive".into(),
        event: Event::Submission,
        properties,
        target: "archive".into(),
    };
    let factory = Factory;
    match factory.create(&spec).unwrap() {
        Instance::Blocking(s) => s,
        Instance::Async(_) => panic!("archive blocks"),
    }
}

fn ctx(raw: &str) -> Context {
    let msg = MailMsg {
        content: Content::new(raw.as_bytes().to_vec()),
        ..MailMsg::default()
    };
    let mut ctx = Context::new(Event::Submission, PropertyBag::default());
    ctx.message = Arc::new(msg);
    ctx
}

#[test]
fn dates_round_trip_and_asctime_has_the_mbox_shape() {
    let day = 20_790; // 2026-12-03
    assert_eq!(day_name(day), "2026-12-03");
    assert_eq!(parse_day("2026-12-03"), Some(day));
    assert_eq!(parse_day("2026-13-03"), None);
    assert_eq!(parse_day("notes"), None);
    assert_eq!(asctime(day * 86_400 + 3_723), "Thu Dec  3 01:02:03 2026");
}

#[test]
fn bad_properties_are_refused_naming_the_property() {
    let cases = [
        (
            "no folder",
            vec![("format", "mbox")],
            "`folder` is required",
        ),
        (
            "unknown format",
            vec![("folder", "a"), ("format", "eml")],
            "`format`",
        ),
        (
            "hours",
            vec![("folder", "a"), ("retention", "12h")],
            "`retention`",
        ),
    ];
    for (name, props, want) in cases {
        let mut properties = Properties::default();
        for (k, v) in props {
            properties.set(k, v);
        }
        let spec = SinkSpec {
            binding_id: "b".into(),
            binding_name: "archive".into(),
            event: Event::Submission,
            properties,
            target: "archive".into(),
        };
        let factory = Factory;
        let Err(SinkError::Config(why)) = factory.create(&spec) else {
            panic!("{name}: accepted");
        };
        assert!(why.contains(want), "{name}: {why}");
    }
}

#[test]
fn retention_is_whole_days() {
    assert_eq!(parse_retention("30d").unwrap(), 30);
    assert_eq!(parse_retention("2w").unwrap(), 14);
    assert!(parse_retention("12h").is_err());
    assert!(parse_retention("soon").is_err());
}

#[test]
fn mbox_quotes_from_lines_and_ends_with_a_blank_line() {
    let entry = mbox_entry(
        "a@x",
        0,
        b"Subject: s\r\n\r\nFrom here\r\n>From there\r\nok\r\n",
    );
    let text = String::from_utf8(entry).unwrap();
    assert_eq!(
        text,
        "From a@x Thu Jan  1 00:00:00 1970\nSubject: s\n\n>From here\n>>From there\nok\n\n"
    );
}

#[test]
fn a_copy_lands_in_todays_maildir_and_old_days_past_the_retention_go() {
    let dir = tempfile::tempdir().unwrap();
    let today = now_secs().div_euclid(86_400);
    let old = dir.path().join(day_name(today - 40));
    let recent = dir.path().join(day_name(today - 3));
    fs::create_dir_all(old.join("new")).unwrap();
    fs::create_dir_all(recent.join("new")).unwrap();
    fs::write(dir.path().join("notes.txt"), "kept").unwrap();
    let sink = make(dir.path(), "maildir", Some("30d"));
    sink.on_event(&ctx("Subject: one\r\n\r\nbody\r\n")).unwrap();
    let new = dir.path().join(day_name(today)).join("new");
    let files: Vec<_> = fs::read_dir(&new).unwrap().flatten().collect();
    assert_eq!(files.len(), 1);
    assert_eq!(
        fs::read_to_string(files[0].path()).unwrap(),
        "Subject: one\r\n\r\nbody\r\n"
    );
    assert!(!old.exists(), "an archive 40 days old outlives 30d");
    assert!(recent.exists());
    assert!(dir.path().join("notes.txt").exists());
}

#[test]
fn mbox_copies_append_to_todays_file_and_old_mbox_files_go() {
    let dir = tempfile::tempdir().unwrap();
    let today = now_secs().div_euclid(86_400);
    let old = dir.path().join(format!("{}.mbox", day_name(today - 8)));
    fs::write(&old, "From x\n\n").unwrap();
    let sink = make(dir.path(), "mbox", Some("1w"));
    sink.on_event(&ctx("Subject: one\r\n\r\nFrom me\r\n"))
        .unwrap();
    sink.on_event(&ctx("Subject: two\r\n\r\nbody\r\n")).unwrap();
    let text = fs::read_to_string(dir.path().join(format!("{}.mbox", day_name(today)))).unwrap();
    assert_eq!(
        text.matches("\nFrom MAILER-DAEMON ").count() + 1,
        2,
        "{text}"
    );
    assert!(text.contains("\n>From me\n"));
    assert!(!old.exists());
}
