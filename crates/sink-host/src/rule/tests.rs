use std::net::SocketAddr;
use std::sync::Arc;

use postern_mailmsg::{Content, MailMsg, PropertyBag, Recipient, Sender};
use postern_sink_api::{Command, Context, Event, SessionInfo, Verb};

use super::{ErrorKind, Rule};

fn session() -> SessionInfo {
    SessionInfo {
        id: 1,
        remote: "192.0.2.10:40000".parse().unwrap(),
        local: "198.51.100.1:25".parse().unwrap(),
        helo: Some("client.example.net".into()),
        esmtp: true,
        tls: false,
        auth_user: None,
        may_relay: false,
    }
}

/// An inbound command event, in a session that said `EHLO client.example.net`, with no message.
fn inbound(line: &str) -> Context {
    let (word, args) = line.split_once(' ').unwrap_or((line, ""));
    let verb = Verb::parse(word).unwrap();
    let mut ctx = Context::new(Event::Inbound(Some(verb.clone())), PropertyBag::new());
    ctx.command = Some(Arc::new(Command {
        verb,
        args: args.into(),
        line: line.into(),
    }));
    ctx.session = Some(Arc::new(session()));
    ctx
}

fn with_session(mut ctx: Context, change: impl FnOnce(&mut SessionInfo)) -> Context {
    let mut session = ctx.session.as_deref().cloned().unwrap_or_else(session);
    change(&mut session);
    ctx.session = Some(Arc::new(session));
    ctx
}

fn with_message(mut ctx: Context, change: impl FnOnce(&mut MailMsg)) -> Context {
    change(Arc::make_mut(&mut ctx.message));
    ctx
}

fn sender(address: &str) -> Option<Sender> {
    Some(Sender {
        address: address.into(),
        ..Sender::default()
    })
}

/// At `MAIL FROM:<Joe@Example.COM> SIZE=2048`: the sender is only in the command.
fn at_mail() -> Context {
    inbound("MAIL FROM:<Joe@Example.COM> SIZE=2048")
}

/// At the second RCPT: one recipient accepted, the new one only in the command.
fn at_rcpt() -> Context {
    with_message(inbound("RCPT TO:<New@Example.ORG>"), |m| {
        m.sender = sender("joe@example.com");
        m.recipients.push(Recipient::new("first@example.net"));
    })
}

const MESSAGE: &str = "From: Joe <joe@example.com>\r\nSubject: Cheap pills\r\n\
                       X-Spam-Score: 7\r\nX-Spam-Score: 2\r\n\r\nbody\r\n";

/// The end of DATA: sender, two recipients and content.
fn at_end_of_data() -> Context {
    let mut ctx = Context::new(Event::EndOfData, PropertyBag::new());
    ctx.session = Some(Arc::new(session()));
    with_message(ctx, |m| {
        m.sender = sender("joe@example.com");
        m.recipients.push(Recipient::new("a@example.org"));
        m.recipients.push(Recipient::new("b@example.net"));
        m.content = Content::new(MESSAGE.as_bytes().to_vec());
    })
}

/// A route event for recipient `index`, with no session: everything comes from the message.
fn at_route(index: usize) -> Context {
    let mut ctx = with_message(at_end_of_data(), |m| {
        m.info.remote_ip = Some("2001:db8::7".parse().unwrap());
        m.info.helo = "relay.example.com".into();
        m.info.auth_user = Some("carol".into());
        m.info.tls = Some("TLSv1.3".into());
    });
    ctx.event = Event::Route;
    ctx.session = None;
    ctx.recipient = Some(index);
    ctx
}

fn check(cases: Vec<(&str, &str, Context, bool)>) {
    let mut failed = Vec::new();
    for (name, rule, ctx, want) in cases {
        let parsed = Rule::parse(rule).unwrap_or_else(|e| panic!("{name}: {e}"));
        if parsed.matches(&ctx) != want {
            failed.push(format!("{name}: `{rule}` should give {want}"));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn mail_from_is_the_command_path_at_mail_then_the_sender() {
    check(vec![
        (
            "exact, other case",
            "MAIL FROM=joe@example.com",
            at_mail(),
            true,
        ),
        ("short key", "mail=*@example.com", at_mail(), true),
        (
            "spaces in the key and around =",
            "mail   from = *@example.com",
            at_mail(),
            true,
        ),
        (
            "brackets are optional",
            "MAIL FROM=<joe@example.com>",
            at_mail(),
            true,
        ),
        ("other domain", "MAIL FROM=*@example.org", at_mail(), false),
        ("from the sender later", "MAIL FROM=joe@*", at_rcpt(), true),
        ("sender differs", "MAIL FROM=ann@*", at_end_of_data(), false),
        (
            "no sender before MAIL",
            "MAIL FROM=*",
            inbound("EHLO x"),
            false,
        ),
        (
            "negated, no sender",
            "!MAIL FROM=*",
            inbound("EHLO x"),
            true,
        ),
        (
            "null sender at MAIL",
            "MAIL FROM=<>",
            inbound("MAIL FROM:<>"),
            true,
        ),
        (
            "null sender matches *",
            "MAIL FROM=*",
            inbound("MAIL FROM:<>"),
            true,
        ),
        (
            "null sender is no address",
            "MAIL FROM=*@*",
            inbound("MAIL FROM:<>"),
            false,
        ),
        ("<> is not a real sender", "MAIL FROM=<>", at_mail(), false),
        (
            "null sender in the message",
            "MAIL FROM=<>",
            with_message(at_end_of_data(), |m| m.sender = sender("")),
            true,
        ),
    ]);
}

#[test]
fn rcpt_to_holds_when_any_recipient_matches() {
    check(vec![
        (
            "the RCPT being received",
            "RCPT TO=new@example.org",
            at_rcpt(),
            true,
        ),
        ("an accepted one", "RCPT TO=first@*", at_rcpt(), true),
        ("short key", "rcpt=*@example.net", at_rcpt(), true),
        ("none matches", "RCPT TO=*@example.com", at_rcpt(), false),
        ("second of two", "RCPT TO=b@*", at_end_of_data(), true),
        ("no recipients yet", "RCPT TO=*", at_mail(), false),
        (
            "per-recipient: this one",
            "RCPT TO=b@example.net",
            at_route(1),
            true,
        ),
        (
            "per-recipient: not another",
            "RCPT TO=a@example.org",
            at_route(1),
            false,
        ),
        (
            "per-recipient: out of range",
            "RCPT TO=*",
            at_route(5),
            false,
        ),
    ]);
}

#[test]
fn wildcards_and_case() {
    let ctx = || at_mail(); // joe@example.com, written Joe@Example.COM
    check(vec![
        ("* alone", "MAIL FROM=*", ctx(), true),
        ("ends with", "MAIL FROM=*example.com", ctx(), true),
        ("ends with, no", "MAIL FROM=*example.co", ctx(), false),
        ("starts with", "MAIL FROM=JOE@*", ctx(), true),
        ("starts with, no", "MAIL FROM=oe@*", ctx(), false),
        ("contains", "MAIL FROM=*@EXAMPLE*", ctx(), true),
        ("contains, no", "MAIL FROM=*@sample*", ctx(), false),
        ("a*b", "MAIL FROM=j*m", ctx(), true),
        ("a*b, no", "MAIL FROM=j*x", ctx(), false),
        ("pieces in order", "MAIL FROM=j*e*x*m", ctx(), true),
        ("pieces out of order", "MAIL FROM=j*c*x*m", ctx(), false),
        (
            "prefix and suffix may not overlap",
            "MAIL FROM=joe@example.com*m",
            ctx(),
            false,
        ),
        (
            "star matches the empty run",
            "MAIL FROM=joe*@example.com",
            ctx(),
            true,
        ),
        ("double star", "MAIL FROM=joe**com", ctx(), true),
        ("no star is exact", "MAIL FROM=joe@example", ctx(), false),
        (
            "subdomains via *domain",
            "EHLO=*example.net",
            at_mail(),
            true,
        ),
        (
            "comma alternatives, second",
            "MAIL FROM=a@b,*@example.com",
            ctx(),
            true,
        ),
        (
            "comma alternatives, none",
            "MAIL FROM=a@b, c@d",
            ctx(),
            false,
        ),
    ]);
}

#[test]
fn helo_remote_auth_tls() {
    let authed = || with_session(at_mail(), |s| s.auth_user = Some("Alice".into()));
    let tls = || with_session(at_mail(), |s| s.tls = true);
    let v6 = || {
        with_session(at_mail(), |s| {
            s.remote = "[2001:db8::1]:25".parse().unwrap()
        })
    };
    let mapped: SocketAddr = "[::ffff:10.1.2.3]:25".parse().unwrap();
    let mapped = || with_session(at_mail(), |s| s.remote = mapped);
    check(vec![
        (
            "helo from the session",
            "EHLO=client.example.net",
            at_mail(),
            true,
        ),
        ("HELO alias", "helo=*.example.net", at_mail(), true),
        ("helo differs", "EHLO=*example.com", at_mail(), false),
        (
            "the EHLO command's argument",
            "EHLO=new.example.com",
            inbound("EHLO new.example.com"),
            true,
        ),
        (
            "not the old one at EHLO",
            "EHLO=client*",
            inbound("EHLO new.example.com"),
            false,
        ),
        (
            "transport: the message's",
            "EHLO=relay.*",
            at_route(0),
            true,
        ),
        ("v4 in network", "REMOTE=192.0.2.0/24", at_mail(), true),
        ("v4 single address", "IP=192.0.2.10", at_mail(), true),
        ("v4 outside", "REMOTE=10.0.0.0/8", at_mail(), false),
        (
            "one of several",
            "REMOTE=10.0.0.0/8, 192.0.2.0/28",
            at_mail(),
            true,
        ),
        ("v6 in network", "REMOTE=2001:db8::/32", v6(), true),
        ("v6 not a v4 network", "REMOTE=0.0.0.0/0", v6(), false),
        ("mapped compares as v4", "REMOTE=10.0.0.0/8", mapped(), true),
        (
            "mapped pattern too",
            "REMOTE=::ffff:10.1.2.3",
            mapped(),
            true,
        ),
        (
            "transport: the message's address",
            "REMOTE=2001:db8::/64",
            at_route(0),
            true,
        ),
        ("not authenticated", "AUTH=*", at_mail(), false),
        ("negated: anonymous", "!AUTH=*", at_mail(), true),
        ("authenticated at all", "AUTH=*", authed(), true),
        ("user, other case", "AUTH=alice", authed(), true),
        ("other user", "AUTH=bob", authed(), false),
        (
            "transport: the message's user",
            "AUTH=carol",
            at_route(0),
            true,
        ),
        ("plain session", "TLS=no", at_mail(), true),
        ("plain is not tls", "TLS=yes", at_mail(), false),
        ("encrypted", "tls = TRUE", tls(), true),
        ("encrypted is not plain", "TLS=false", tls(), false),
        ("transport: the message's tls", "TLS=yes", at_route(0), true),
    ]);
}

#[test]
fn size_compares_content_else_declared_size() {
    let equal = format!("SIZE={}", MESSAGE.len());
    let declared = |n| {
        with_message(at_rcpt(), |m| {
            m.sender.as_mut().unwrap().params.size = Some(n)
        })
    };
    check(vec![
        ("content: equal", &equal, at_end_of_data(), true),
        ("content: less", "SIZE<1k", at_end_of_data(), true),
        ("content: greater", "SIZE>1k", at_end_of_data(), false),
        ("declared: 2M > 1M", "SIZE>1M", declared(2 << 20), true),
        (
            "declared: exactly 1M is not >",
            "SIZE>1M",
            declared(1 << 20),
            false,
        ),
        (
            "declared: exactly 1M is >=",
            "SIZE>=1m",
            declared(1 << 20),
            true,
        ),
        ("declared: <=", "SIZE<=1048576", declared(1 << 20), true),
        ("declared: < is strict", "SIZE<1M", declared(1 << 20), false),
        ("G unit", "SIZE>=1G", declared(1 << 30), true),
        ("k unit, spaces", "SIZE > 100 K", declared(102_401), true),
        ("unknown size does not hold", "SIZE<1G", at_mail(), false),
        ("negated unknown size holds", "!SIZE>1M", at_mail(), true),
    ]);
}

#[test]
fn header_matches_any_field_of_the_name() {
    check(vec![
        (
            "subject contains",
            "HEADER:Subject=*pills*",
            at_end_of_data(),
            true,
        ),
        (
            "name without case",
            "header:SUBJECT=cheap*",
            at_end_of_data(),
            true,
        ),
        (
            "second field of a name",
            "HEADER:X-Spam-Score=2",
            at_end_of_data(),
            true,
        ),
        (
            "no field matches",
            "HEADER:X-Spam-Score=5,6",
            at_end_of_data(),
            false,
        ),
        ("absent field", "HEADER:X-Absent=*", at_end_of_data(), false),
        ("no content", "HEADER:Subject=*", at_rcpt(), false),
        ("negated, no content", "!HEADER:Subject=*", at_rcpt(), true),
        (
            "after a failing cheap condition",
            "HEADER:Subject=*;TLS=yes",
            at_end_of_data(),
            false,
        ),
    ]);
}

#[test]
fn verbs_bare_lists_and_verb_key() {
    check(vec![
        ("bare verb", "RCPT", at_rcpt(), true),
        ("bare verb, other", "RCPT", at_mail(), false),
        ("bare list with comma", "mail,rcpt", at_mail(), true),
        ("bare list with spaces", "MAIL RCPT", at_rcpt(), true),
        ("bare list, none", "DATA, QUIT", at_rcpt(), false),
        ("negated bare verb", "!XPING", at_mail(), true),
        ("negated bare verb, same", "!MAIL", at_mail(), false),
        ("custom verb", "XPING", inbound("XPING"), true),
        ("VERB=", "VERB=MAIL,RCPT", at_mail(), true),
        ("COMMAND=", "command=data", at_mail(), false),
        ("no command", "MAIL", at_end_of_data(), false),
        (
            "verb and sender",
            "MAIL;MAIL FROM=*@example.com",
            at_mail(),
            true,
        ),
    ]);
}

#[test]
fn conditions_are_all_required_and_negation_inverts() {
    check(vec![
        ("empty rule", "", at_mail(), true),
        ("star rule", " * ", at_end_of_data(), true),
        ("star among conditions", "*;MAIL", at_mail(), true),
        (
            "both hold",
            "MAIL FROM=*@example.com;RCPT TO=first@*",
            at_rcpt(),
            true,
        ),
        (
            "second fails",
            "MAIL FROM=*@example.com;RCPT TO=x@*",
            at_rcpt(),
            false,
        ),
        (
            "first fails",
            "MAIL FROM=x@*; RCPT TO=first@*",
            at_rcpt(),
            false,
        ),
        (
            "negation of a hit",
            "!MAIL FROM=*@example.com",
            at_rcpt(),
            false,
        ),
        (
            "negation of a miss",
            "! MAIL FROM=*@example.org",
            at_rcpt(),
            true,
        ),
        (
            "negated rcpt: any matches",
            "!RCPT TO=first@*",
            at_rcpt(),
            false,
        ),
        ("mixed", "RCPT;!REMOTE=10.0.0.0/8;TLS=no", at_rcpt(), true),
    ]);
}

#[test]
fn bad_rules_name_the_condition_and_the_reason() {
    use ErrorKind::*;
    let long_verb = format!("VERB={}", "X".repeat(33));
    let cases: Vec<(&str, &str, usize, ErrorKind)> = vec![
        ("two semicolons", "MAIL;;RCPT", 2, EmptyCondition),
        ("trailing semicolon", "MAIL FROM=*;", 2, EmptyCondition),
        ("leading semicolon", ";MAIL", 1, EmptyCondition),
        ("bang alone", "MAIL;!", 2, EmptyCondition),
        ("negated star", "!*", 1, NegatedAlways),
        ("no key", "=x@y", 1, MissingKey),
        (
            "unknown key",
            "TLS=yes;FROM=x",
            2,
            UnknownKey("FROM".into()),
        ),
        (
            "three words",
            "MAIL FROM X=y",
            1,
            UnknownKey("MAIL FROM X".into()),
        ),
        (
            "key without =",
            "MAIL FROM",
            1,
            MissingPattern("MAIL FROM".into()),
        ),
        ("tls without =", "TLS", 1, MissingPattern("TLS".into())),
        // Regression (fuzzing): `Ip Ip` parsed as the custom verb IP, printed as `IP`, which
        // did not parse.
        (
            "a key repeated as a verb list",
            "Ip Ip ",
            1,
            MissingPattern("Ip".into()),
        ),
        (
            "a key in a verb list",
            "MAIL,TLS",
            1,
            MissingPattern("TLS".into()),
        ),
        (
            "header without =",
            "HEADER:Subject",
            1,
            MissingPattern("HEADER:Subject".into()),
        ),
        (
            "comparison off SIZE",
            "MAIL FROM<x",
            1,
            ComparisonNotAllowed("MAIL FROM".into()),
        ),
        ("empty pattern list", "MAIL FROM=", 1, EmptyPattern),
        ("empty item", "RCPT TO=a@b,,c@d", 1, EmptyPattern),
        ("trailing comma", "EHLO=a,", 1, EmptyPattern),
        ("empty network item", "REMOTE=10.0.0.0/8,", 1, EmptyPattern),
        ("empty verb item", "MAIL,,RCPT", 1, EmptyPattern),
        (
            "bad CIDR",
            "REMOTE=10.0.0.0/33",
            1,
            BadNetwork("10.0.0.0/33".into()),
        ),
        (
            "not an address",
            "IP=localhost",
            1,
            BadNetwork("localhost".into()),
        ),
        ("bad size unit", "SIZE>1X", 1, BadSize("1X".into())),
        ("size without digits", "SIZE<M", 1, BadSize("M".into())),
        ("negative size", "SIZE>-1", 1, BadSize("-1".into())),
        ("fractional size", "SIZE>1.5M", 1, BadSize("1.5M".into())),
        (
            "size overflow",
            "SIZE>99999999999999G",
            1,
            BadSize("99999999999999G".into()),
        ),
        ("size list", "SIZE=1k,2k", 1, BadSize("1k,2k".into())),
        ("bad bool", "TLS=maybe", 1, BadBool("maybe".into())),
        ("bad verb", "VERB=MA*L", 1, BadVerb("MA*L".into())),
        ("bad bare verb", "RCPT,MAIL:X", 1, BadVerb("MAIL:X".into())),
        ("long verb", &long_verb, 1, BadVerb("X".repeat(33))),
        (
            "empty header name",
            "HEADER:=x",
            1,
            BadHeaderName(String::new()),
        ),
        (
            "header name with space",
            "HEADER:X Y=x",
            1,
            BadHeaderName("X Y".into()),
        ),
    ];
    let mut failed = Vec::new();
    for (name, rule, index, kind) in cases {
        match Rule::parse(rule) {
            Ok(parsed) => failed.push(format!("{name}: `{rule}` parsed as `{parsed}`")),
            Err(e) if e.index() != index || *e.kind() != kind => {
                failed.push(format!("{name}: `{rule}` gave {e:?}"));
            }
            Err(_) => {}
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn error_message_names_position_text_and_reason() {
    let e = Rule::parse("MAIL FROM=*@example.com; SIZE>1X ").unwrap_err();
    assert_eq!(e.condition(), "SIZE>1X");
    assert_eq!(
        e.to_string(),
        "rule condition 2 `SIZE>1X`: `1X` is not a size (a whole number with an optional unit \
         k, M or G)"
    );
}

#[test]
fn display_normalizes_and_parses_back_to_the_same_rule() {
    let cases = [
        ("", "*"),
        ("*", "*"),
        ("mail from = <Joe@Example.COM>", "MAIL FROM=joe@example.com"),
        ("mail=<>, *@x", "MAIL FROM=<>,*@x"),
        ("rcpt=*", "RCPT TO=*"),
        ("HELO=*Example.com", "EHLO=*example.com"),
        (
            "ip=10.1.2.3/8,::1, ::ffff:10.0.0.1",
            "REMOTE=10.0.0.0/8,::1,10.0.0.1",
        ),
        ("!auth=*", "!AUTH=*"),
        ("tls=TRUE", "TLS=yes"),
        ("size >= 2048", "SIZE>=2k"),
        ("size<1536;size=0", "SIZE<1536;SIZE=0"),
        ("size>3g", "SIZE>3G"),
        ("header:X-Tag = A*", "HEADER:X-Tag=a*"),
        ("mail rcpt, rcpt", "MAIL,RCPT"),
        ("command=xping", "VERB=XPING"),
        ("*; !xping ;MAIL from=*", "!XPING;MAIL FROM=*"),
    ];
    for (input, want) in cases {
        let rule = Rule::parse(input).unwrap();
        assert_eq!(rule.to_string(), want, "printing `{input}`");
        let again: Rule = want.parse().unwrap();
        assert_eq!(again, rule, "parsing `{want}` back");
    }
}

#[test]
fn always_rules() {
    assert!(Rule::always().is_always());
    assert!(Rule::parse(" ").unwrap().is_always());
    assert!(Rule::parse("*;*").unwrap().is_always());
    assert!(!Rule::parse("MAIL").unwrap().is_always());
    assert!(Rule::always().matches(&at_route(0)));
}

#[test]
fn verbs_restrict_inbound_bindings() {
    let verbs = |rule: &str| {
        Rule::parse(rule)
            .unwrap()
            .verbs()
            .map(|v| v.iter().map(Verb::to_string).collect::<Vec<_>>().join(","))
    };
    assert_eq!(verbs("*"), None);
    assert_eq!(verbs("MAIL FROM=*@example.com"), None);
    assert_eq!(verbs("!XPING"), None);
    assert_eq!(verbs("rcpt"), Some("RCPT".into()));
    assert_eq!(verbs("MAIL,RCPT,mail"), Some("MAIL,RCPT".into()));
    assert_eq!(verbs("VERB=MAIL,RCPT;TLS=yes"), Some("MAIL,RCPT".into()));
    assert_eq!(verbs("MAIL,RCPT;VERB=RCPT,DATA"), Some("RCPT".into()));
    assert_eq!(verbs("MAIL;RCPT"), Some(String::new()));
    assert_eq!(verbs("MAIL,RCPT;!MAIL"), Some("MAIL,RCPT".into()));
}
