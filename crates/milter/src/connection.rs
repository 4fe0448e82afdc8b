//! One connection to a milter: option negotiation (version 6, actions, protocol steps and the
//! macro lists a milter may ask for), then steps that are sent, skipped or left unanswered as
//! negotiated, and the answers read back.

use tokio::io::{AsyncWriteExt, BufStream};

use crate::address::{Address, Stream};
use crate::answer::Answer;
use crate::error::MilterError;
use crate::wire::{self, action, cmd, reply, step};

/// The macro stages of SMFIC_OPTNEG's symbol lists (SMFIM_*), by the command they go with.
const STAGES: [u8; 7] = [
    cmd::CONNECT,
    cmd::HELO,
    cmd::MAIL,
    cmd::RCPT,
    cmd::DATA,
    cmd::BODYEOB,
    cmd::EOH,
];

/// What the milter asked for in negotiation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Negotiated {
    /// The protocol version the milter speaks.
    pub(crate) version: u32,
    /// SMFIF_* actions it may take.
    pub(crate) actions: u32,
    /// SMFIP_* steps it skips or does not answer, and behaviour flags.
    pub(crate) steps: u32,
    /// Per stage (index as in [`STAGES`]), the only macros it wants, when it set a list.
    pub(crate) symlists: [Option<Vec<String>>; 7],
}

impl Negotiated {
    /// Parses the milter's SMFIC_OPTNEG answer and checks it asks for nothing Postern did not
    /// offer.
    pub(crate) fn parse(data: &[u8]) -> Result<Self, MilterError> {
        let version = wire::u32_at(data, 0)?;
        let actions = wire::u32_at(data, 4)?;
        let steps = wire::u32_at(data, 8)?;
        if !(2..=wire::VERSION).contains(&version) {
            return Err(MilterError::Protocol(format!(
                "the milter speaks version {version}, Postern speaks 2 to 6"
            )));
        }
        if actions & !action::ALL != 0 {
            return Err(MilterError::Protocol(format!(
                "the milter asks for actions {actions:#x}, more than offered"
            )));
        }
        if steps & !step::ALL != 0 {
            return Err(MilterError::Protocol(format!(
                "the milter asks for protocol flags {steps:#x}, more than offered"
            )));
        }
        let mut symlists: [Option<Vec<String>>; 7] = Default::default();
        // After the three numbers, version 6 milters that called smfi_setsymlist send pairs of
        // (stage number, space-separated macro names).
        let mut rest = &data[12..];
        while !rest.is_empty() {
            let stage = wire::u32_at(rest, 0)? as usize;
            let list = &rest[4..];
            let end = list.iter().position(|&b| b == 0).unwrap_or(list.len());
            let names = String::from_utf8_lossy(&list[..end]);
            let slot = symlists.get_mut(stage).ok_or_else(|| {
                MilterError::Protocol(format!("a macro list for unknown stage {stage}"))
            })?;
            *slot = Some(names.split_whitespace().map(str::to_owned).collect());
            rest = list.get(end + 1..).unwrap_or_default();
        }
        Ok(Self {
            version,
            actions,
            steps,
            symlists,
        })
    }

    /// Whether the milter negotiated this SMFIP flag.
    pub(crate) fn has(&self, flag: u32) -> bool {
        self.steps & flag != 0
    }

    /// Whether the milter may take this SMFIF action.
    pub(crate) fn may(&self, flag: u32) -> bool {
        self.actions & flag != 0
    }
}

/// An open, negotiated connection.
pub(crate) struct Connection {
    io: BufStream<Stream>,
    pub(crate) neg: Negotiated,
}

impl Connection {
    /// Connects and negotiates, offering everything Postern can do.
    pub(crate) async fn open(address: &Address) -> Result<Self, MilterError> {
        let mut io = BufStream::new(address.connect().await?);
        let mut offer = Vec::with_capacity(12);
        offer.extend_from_slice(&wire::VERSION.to_be_bytes());
        offer.extend_from_slice(&action::ALL.to_be_bytes());
        offer.extend_from_slice(&step::ALL.to_be_bytes());
        wire::write_frame(&mut io, cmd::OPTNEG, &offer).await?;
        io.flush().await?;
        io.get_ref().quick_ack();
        let frame = wire::read_frame(&mut io).await?;
        if frame.code != cmd::OPTNEG {
            return Err(MilterError::Protocol(format!(
                "the milter answered negotiation with {:?}",
                char::from(frame.code)
            )));
        }
        let neg = Negotiated::parse(&frame.data)?;
        Ok(Self { io, neg })
    }

    /// Sends the macros of a stage (no answer is due), keeping only those the milter asked for
    /// when it set a list for the stage.
    pub(crate) async fn macros(
        &mut self,
        stage: u8,
        pairs: &[(&str, String)],
    ) -> Result<(), MilterError> {
        let wanted = STAGES
            .iter()
            .position(|&s| s == stage)
            .and_then(|i| self.neg.symlists[i].as_ref());
        let mut data = vec![stage];
        for (name, value) in pairs {
            if wanted.is_some_and(|list| !list.iter().any(|w| macro_eq(w, name))) {
                continue;
            }
            wire::push_str(&mut data, name);
            wire::push_str(&mut data, value);
        }
        if data.len() > 1 {
            wire::write_frame(&mut self.io, cmd::MACRO, &data).await?;
        }
        Ok(())
    }

    /// Sends one step unless the milter negotiated it away (`no`); reads its answer unless the
    /// milter said it would not answer (`no_reply`). Progress answers keep the wait going.
    pub(crate) async fn step(
        &mut self,
        code: u8,
        data: &[u8],
        no: u32,
        no_reply: u32,
    ) -> Result<Answer, MilterError> {
        if no != 0 && self.neg.has(no) {
            return Ok(Answer::Continue);
        }
        wire::write_frame(&mut self.io, code, data).await?;
        if no_reply != 0 && self.neg.has(no_reply) {
            return Ok(Answer::Continue);
        }
        self.io.flush().await?;
        self.answer().await
    }

    /// Reads frames until an answer (not a progress note).
    pub(crate) async fn answer(&mut self) -> Result<Answer, MilterError> {
        loop {
            let frame = self.read().await?;
            if frame.code == reply::PROGRESS {
                continue;
            }
            return Answer::parse(&frame);
        }
    }

    /// Reads one frame.
    pub(crate) async fn read(&mut self) -> Result<wire::Frame, MilterError> {
        self.io.flush().await?;
        self.io.get_ref().quick_ack();
        wire::read_frame(&mut self.io).await
    }

    /// Tells the milter the message is over (no answer is due); the connection stays for the
    /// session's next message.
    pub(crate) async fn abort(&mut self) -> Result<(), MilterError> {
        wire::write_frame(&mut self.io, cmd::ABORT, &[]).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Ends the conversation politely: abort the message if it was not finished, then quit.
    /// Errors are ignored: the verdict is already known.
    pub(crate) async fn close(mut self, abort: bool) {
        if abort {
            let _ = wire::write_frame(&mut self.io, cmd::ABORT, &[]).await;
        }
        let _ = wire::write_frame(&mut self.io, cmd::QUIT, &[]).await;
        let _ = self.io.flush().await;
        let _ = self.io.shutdown().await;
    }
}

/// Macro names match with or without braces (`{daemon_name}` and `daemon_name`), as Sendmail's
/// lists allow both.
fn macro_eq(wanted: &str, name: &str) -> bool {
    let bare = |s: &str| s.trim_start_matches('{').trim_end_matches('}').to_owned();
    bare(wanted) == bare(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn optneg(version: u32, actions: u32, steps: u32, tail: &[u8]) -> Vec<u8> {
        let mut d = Vec::new();
        for n in [version, actions, steps] {
            d.extend_from_slice(&n.to_be_bytes());
        }
        d.extend_from_slice(tail);
        d
    }

    #[test]
    fn reads_what_opendkim_asks_for() {
        let steps = step::NOHELO | step::NOUNKNOWN | step::NODATA | step::SKIP | step::HDR_LEADSPC;
        let neg = Negotiated::parse(&optneg(6, 0x111, steps, b"")).unwrap();
        assert!(neg.has(step::SKIP) && neg.has(step::HDR_LEADSPC) && !neg.has(step::NOBODY));
        assert!(neg.may(action::SETSYMLIST) && !neg.may(action::CHGBODY));
    }

    #[test]
    fn reads_macro_lists() {
        let mut tail = 0u32.to_be_bytes().to_vec();
        tail.extend_from_slice(b"{client_addr} j\0");
        tail.extend_from_slice(&5u32.to_be_bytes());
        tail.extend_from_slice(b"i\0");
        let neg = Negotiated::parse(&optneg(6, 0, 0, &tail)).unwrap();
        assert_eq!(
            neg.symlists[0],
            Some(vec!["{client_addr}".to_owned(), "j".to_owned()])
        );
        assert_eq!(neg.symlists[5], Some(vec!["i".to_owned()]));
        assert_eq!(neg.symlists[1], None);
    }

    #[test]
    fn refuses_what_was_not_offered() {
        let cases: &[(&str, Vec<u8>)] = &[
            ("version 7", optneg(7, 0, 0, b"")),
            ("version 1", optneg(1, 0, 0, b"")),
            ("unknown action", optneg(6, 0x200, 0, b"")),
            ("unknown step", optneg(6, 0, 0x20_0000, b"")),
            ("short", vec![0, 0, 0, 6]),
            ("stage 9", optneg(6, 0, 0, &[0, 0, 0, 9, b'i', 0])),
        ];
        for (name, data) in cases {
            assert!(Negotiated::parse(data).is_err(), "case {name}");
        }
    }
}
