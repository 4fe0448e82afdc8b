//! The end-of-data replay: the whole conversation (connect, helo, mail, every rcpt, data, the
//! headers, end of headers, the body in chunks, end of message) sent at once on a fresh
//! connection, as Postfix does for milters after the queue, and the answers turned into an
//! outcome.

use postern_mailmsg::{Fate, Value};
use postern_sink_api::{Change, Context, Outcome, Scope, Verdict};

use crate::address::Address;
use crate::answer::{self, Answer, Modification};
use crate::connection::Connection;
use crate::error::MilterError;
use crate::macros;
use crate::wire::{self, action, cmd, step};

/// The most a milter may send as a replacement body (the sum of its SMFIR_REPLBODY chunks).
const MAX_REPLACED_BODY: usize = 64 * 1024 * 1024;

/// The message property that keeps a milter's quarantine reason.
pub(crate) const QUARANTINE_REASON: &str = "milter-quarantine-reason";

/// Text of the verdicts a milter gives without a reply of its own (Sendmail's wording).
const REJECTED: &str = "Command rejected";
const TEMPFAILED: &str = "Please try again later";

/// Runs the conversation for one message.
pub(crate) async fn replay(
    address: &Address,
    ctx: &Context,
    daemon_name: &str,
) -> Result<Outcome, MilterError> {
    let mut conn = Connection::open(address).await?;
    let result = converse(&mut conn, ctx, daemon_name).await;
    match result {
        Ok((outcome, finished)) => {
            conn.close(!finished).await;
            Ok(outcome)
        }
        Err(e) => Err(e),
    }
}

/// The steps; returns the outcome and whether the message was finished (end of message sent
/// and answered), so that an early verdict is followed by an abort.
async fn converse(
    conn: &mut Connection,
    ctx: &Context,
    daemon: &str,
) -> Result<(Outcome, bool), MilterError> {
    let msg = &ctx.message;
    let stage = |stage, rcpt| (stage, macros::for_stage(stage, ctx, daemon, rcpt));

    send(conn, stage(cmd::CONNECT, None)).await?;
    let answer = conn
        .step(
            cmd::CONNECT,
            &connect_data(ctx),
            step::NOCONNECT,
            step::NR_CONN,
        )
        .await?;
    if let Some(outcome) = early(answer)? {
        return Ok((outcome, false));
    }

    send(conn, stage(cmd::HELO, None)).await?;
    let helo = ctx
        .session
        .as_ref()
        .and_then(|s| s.helo.clone())
        .unwrap_or_else(|| msg.info.helo.clone());
    let answer = conn
        .step(cmd::HELO, &nul(&helo), step::NOHELO, step::NR_HELO)
        .await?;
    if let Some(outcome) = early(answer)? {
        return Ok((outcome, false));
    }

    send(conn, stage(cmd::MAIL, None)).await?;
    let from = format!("<{}>", msg.sender_address());
    let answer = conn
        .step(cmd::MAIL, &nul(&from), step::NOMAIL, step::NR_MAIL)
        .await?;
    if let Some(outcome) = early(answer)? {
        return Ok((outcome, false));
    }

    from_rcpt(conn, ctx, daemon, true).await
}

/// The recipients (when `send_rcpts`) and everything after them up to end of message; shared
/// with the step mode, which finishes a message on the session's connection.
pub(crate) async fn from_rcpt(
    conn: &mut Connection,
    ctx: &Context,
    daemon: &str,
    send_rcpts: bool,
) -> Result<(Outcome, bool), MilterError> {
    let msg = &ctx.message;
    let stage = |stage, rcpt| (stage, macros::for_stage(stage, ctx, daemon, rcpt));
    // A recipient the milter refuses is dropped from the message (its client was already
    // told 250); when it refuses them all, the message is refused with its last answer.
    let mut changes = Vec::new();
    let mut last_refusal = None;
    let rcpts = if send_rcpts { &msg.recipients[..] } else { &[] };
    for rcpt in rcpts {
        send(conn, stage(cmd::RCPT, Some(&rcpt.address))).await?;
        let path = format!("<{}>", rcpt.address);
        let answer = conn
            .step(cmd::RCPT, &nul(&path), step::NORCPT, step::NR_RCPT)
            .await?;
        match answer {
            Answer::Reject | Answer::TempFail | Answer::ReplyCode(_) => {
                changes.push(Change::RemoveRecipient(rcpt.address.clone()));
                last_refusal = Some(answer);
            }
            other => {
                if let Some(outcome) = early(other)? {
                    return Ok((outcome, false));
                }
            }
        }
    }
    if let Some(refusal) = last_refusal
        && changes.len() == rcpts.len()
    {
        return Ok((final_outcome(refusal, Vec::new()), false));
    }

    send(conn, stage(cmd::DATA, None)).await?;
    let answer = conn
        .step(cmd::DATA, &[], step::NODATA, step::NR_DATA)
        .await?;
    if let Some(outcome) = early(answer)? {
        return Ok((outcome, false));
    }

    let raw = msg.content.bytes();
    let body_at = msg.content.body_offset();
    let leading_space = conn.neg.has(step::HDR_LEADSPC);
    for (name, value) in fields(&raw[..body_at]) {
        let value = if leading_space {
            value
        } else {
            value.trim_start().to_owned()
        };
        let mut data = nul(&name);
        wire::push_str(&mut data, &value);
        let answer = conn
            .step(cmd::HEADER, &data, step::NOHDRS, step::NR_HDR)
            .await?;
        if let Some(outcome) = early(answer)? {
            return Ok((outcome, false));
        }
    }

    send(conn, stage(cmd::EOH, None)).await?;
    let answer = conn.step(cmd::EOH, &[], step::NOEOH, step::NR_EOH).await?;
    if let Some(outcome) = early(answer)? {
        return Ok((outcome, false));
    }

    for chunk in raw[body_at..].chunks(wire::BODY_CHUNK) {
        match conn
            .step(cmd::BODY, chunk, step::NOBODY, step::NR_BODY)
            .await?
        {
            Answer::Skip if conn.neg.has(step::SKIP) => break,
            answer => {
                if let Some(outcome) = early(answer)? {
                    return Ok((outcome, false));
                }
            }
        }
    }

    send(conn, stage(cmd::BODYEOB, None)).await?;
    let (mods, answer) = end_of_message(conn).await?;
    for m in mods {
        changes.extend(change(m, leading_space));
    }
    Ok((final_outcome(answer, changes), true))
}

pub(crate) async fn send(
    conn: &mut Connection,
    (stage, pairs): (u8, Vec<(&'static str, String)>),
) -> Result<(), MilterError> {
    conn.macros(stage, &pairs).await
}

/// Sends end of message and reads the modifications up to the final answer.
async fn end_of_message(conn: &mut Connection) -> Result<(Vec<Modification>, Answer), MilterError> {
    // `step` reads the first answer; modifications come before the final one.
    let mut next = Some(conn.step(cmd::BODYEOB, &[], 0, 0).await?);
    let mut mods = Vec::new();
    let mut body_len = 0usize;
    loop {
        let answer = match next.take() {
            Some(a) => a,
            None => conn.answer().await?,
        };
        match answer {
            Answer::Modify(m) => {
                let needed = required_action(&m);
                if !conn.neg.may(needed) {
                    return Err(MilterError::Protocol(format!(
                        "a modification the milter did not negotiate: {m:?}"
                    )));
                }
                if let Modification::BodyChunk(chunk) = &m {
                    body_len += chunk.len();
                    if body_len > MAX_REPLACED_BODY {
                        return Err(MilterError::FrameTooLarge(body_len));
                    }
                }
                mods.push(m);
            }
            Answer::Skip => {
                return Err(MilterError::Protocol("skip at end of message".into()));
            }
            final_answer => return Ok((mods, final_answer)),
        }
    }
}

fn required_action(m: &Modification) -> u32 {
    match m {
        Modification::AddHeader { .. } | Modification::InsertHeader { .. } => action::ADDHDRS,
        Modification::ChangeHeader { .. } => action::CHGHDRS,
        Modification::AddRecipient(_) => action::ADDRCPT | action::ADDRCPT_PAR,
        Modification::RemoveRecipient(_) => action::DELRCPT,
        Modification::ChangeFrom(_) => action::CHGFROM,
        Modification::BodyChunk(_) => action::CHGBODY,
        Modification::Quarantine(_) => action::QUARANTINE,
    }
}

/// A modification as Postern changes. Body chunks are gathered by [`final_outcome`].
fn change(m: Modification, leading_space: bool) -> Vec<Change> {
    let norm = |v: &str| answer::normalise_value(v, leading_space);
    match m {
        Modification::AddHeader { name, value } => vec![Change::AddHeader {
            value: norm(&value),
            name,
        }],
        Modification::InsertHeader {
            index: 0,
            name,
            value,
        } => vec![Change::PrependHeader {
            value: norm(&value),
            name,
        }],
        Modification::InsertHeader { index, name, value } => vec![Change::InsertHeader {
            index,
            value: norm(&value),
            name,
        }],
        Modification::ChangeHeader { index, name, value } => vec![Change::ChangeHeader {
            // libmilter counts from 1; Sendmail takes 0 as 1.
            index: index.max(1),
            value: (!value.is_empty()).then(|| norm(&value)),
            name,
        }],
        Modification::AddRecipient(address) => vec![Change::AddRecipient(address)],
        Modification::RemoveRecipient(address) => vec![Change::RemoveRecipient(address)],
        Modification::ChangeFrom(address) => vec![Change::SetSender(address)],
        Modification::BodyChunk(chunk) => vec![Change::ReplaceBody(chunk.into())],
        Modification::Quarantine(reason) => vec![
            Change::SetFate(Fate::Quarantine),
            Change::SetProperty {
                scope: Scope::Message,
                key: QUARANTINE_REASON.to_owned(),
                value: Value::from(reason),
            },
        ],
    }
}

/// The outcome of a finished (or refused) message: body chunks become one replacement, and
/// changes apply only when the message is accepted, as in Sendmail.
pub(crate) fn final_outcome(answer: Answer, changes: Vec<Change>) -> Outcome {
    let verdict = match answer {
        Answer::Continue | Answer::Accept => Verdict::Continue,
        Answer::Discard => {
            return Outcome::changes(vec![Change::SetFate(Fate::Abort)]);
        }
        Answer::Reject => Verdict::Reject(Some(REJECTED.to_owned())),
        Answer::TempFail => Verdict::TempFail(Some(TEMPFAILED.to_owned())),
        Answer::ReplyCode(reply) => Verdict::Reply(reply),
        Answer::Skip | Answer::Modify(_) => Verdict::Continue,
    };
    if verdict != Verdict::Continue {
        return Outcome::next().with_verdict(verdict);
    }
    let mut body: Option<Vec<u8>> = None;
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        match c {
            Change::ReplaceBody(chunk) => {
                body.get_or_insert_with(Vec::new).extend_from_slice(&chunk)
            }
            other => out.push(other),
        }
    }
    if let Some(body) = body {
        out.push(Change::ReplaceBody(answer::crlf_body(&body).into()));
    }
    Outcome::changes(out)
}

/// Before end of message, only continue goes on: accept ends the conversation with no change,
/// a refusal or discard ends it with that verdict; anything else is out of place.
pub(crate) fn early(answer: Answer) -> Result<Option<Outcome>, MilterError> {
    match answer {
        Answer::Continue => Ok(None),
        Answer::Accept => Ok(Some(Outcome::next())),
        Answer::Skip => Err(MilterError::Protocol("skip outside the body".into())),
        Answer::Modify(m) => Err(MilterError::Protocol(format!(
            "a modification before end of message: {m:?}"
        ))),
        refusal => Ok(Some(final_outcome(refusal, Vec::new()))),
    }
}

/// SMFIC_CONNECT's data: host name, family, port, address.
pub(crate) fn connect_data(ctx: &Context) -> Vec<u8> {
    let mut data = Vec::new();
    let remote = ctx.session.as_ref().map(|s| s.remote).or_else(|| {
        let info = &ctx.message.info;
        info.remote_ip
            .map(|ip| std::net::SocketAddr::new(ip, info.remote_port))
    });
    match remote {
        Some(addr) => {
            wire::push_str(&mut data, &format!("[{}]", addr.ip()));
            data.push(if addr.is_ipv4() { b'4' } else { b'6' });
            data.extend_from_slice(&addr.port().to_be_bytes());
            wire::push_str(&mut data, &addr.ip().to_string());
        }
        None => {
            wire::push_str(&mut data, "localhost");
            data.push(b'U');
        }
    }
    data
}

pub(crate) fn nul(text: &str) -> Vec<u8> {
    let mut data = Vec::with_capacity(text.len() + 1);
    wire::push_str(&mut data, text);
    data
}

/// The header fields of a header section as (name, value after the colon), folds joined with
/// bare LF as Sendmail passes them to milters.
pub(crate) fn fields(section: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(section);
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.split("\r\n") {
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push('\n');
                value.push_str(line);
            }
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) => out.push((name.trim_end().to_owned(), value.to_owned())),
            // Not a field: Postern's intake only lets well-formed fields in, so skip it.
            None => continue,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_fields_with_folds_as_bare_lf() {
        let section = b"Received: from a\r\n\tby b\r\nSubject: hi\r\n\r\n";
        assert_eq!(
            fields(section),
            vec![
                ("Received".to_owned(), " from a\n\tby b".to_owned()),
                ("Subject".to_owned(), " hi".to_owned()),
            ]
        );
    }

    #[test]
    fn changes_apply_only_when_the_message_is_accepted() {
        let add = Change::AddHeader {
            name: "X-A".into(),
            value: "1".into(),
        };
        assert_eq!(
            final_outcome(Answer::Accept, vec![add.clone()]).changes,
            vec![add.clone()]
        );
        let refused = final_outcome(Answer::Reject, vec![add]);
        assert!(refused.changes.is_empty());
        assert!(matches!(refused.verdict, Verdict::Reject(_)));
        let discarded = final_outcome(Answer::Discard, Vec::new());
        assert_eq!(discarded.changes, vec![Change::SetFate(Fate::Abort)]);
    }

    #[test]
    fn body_chunks_become_one_replacement() {
        let out = final_outcome(
            Answer::Continue,
            vec![
                Change::ReplaceBody(b"a\n".to_vec().into()),
                Change::ReplaceBody(b"b\n".to_vec().into()),
            ],
        );
        assert_eq!(
            out.changes,
            vec![Change::ReplaceBody(b"a\r\nb\r\n".to_vec().into())]
        );
    }
}
