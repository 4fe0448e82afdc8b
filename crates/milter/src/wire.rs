//! Frames of the milter protocol and its constants (from Sendmail's `mfdef.h`), read and
//! written with bounds: a frame is a 32-bit big-endian length, a command byte and its data.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::MilterError;

/// The protocol version Postern speaks.
pub(crate) const VERSION: u32 = 6;

/// The largest frame accepted from a milter (command byte and data). libmilter's own limit
/// for data is 64 KiB by default and 1 MiB at most; more than that is garbage or hostile.
pub(crate) const MAX_FRAME: usize = 1024 * 1024 + 1;

/// The largest body chunk sent (libmilter's `MILTER_CHUNK_SIZE`).
pub(crate) const BODY_CHUNK: usize = 65535;

/// Commands, MTA to milter.
pub(crate) mod cmd {
    pub(crate) const ABORT: u8 = b'A';
    pub(crate) const BODY: u8 = b'B';
    pub(crate) const CONNECT: u8 = b'C';
    pub(crate) const MACRO: u8 = b'D';
    pub(crate) const BODYEOB: u8 = b'E';
    pub(crate) const HELO: u8 = b'H';
    pub(crate) const HEADER: u8 = b'L';
    pub(crate) const MAIL: u8 = b'M';
    pub(crate) const EOH: u8 = b'N';
    pub(crate) const OPTNEG: u8 = b'O';
    pub(crate) const QUIT: u8 = b'Q';
    pub(crate) const RCPT: u8 = b'R';
    pub(crate) const DATA: u8 = b'T';
}

/// Replies and modifications, milter to MTA.
pub(crate) mod reply {
    pub(crate) const ADDRCPT: u8 = b'+';
    pub(crate) const DELRCPT: u8 = b'-';
    pub(crate) const ADDRCPT_PAR: u8 = b'2';
    pub(crate) const SHUTDOWN: u8 = b'4';
    pub(crate) const ACCEPT: u8 = b'a';
    pub(crate) const REPLBODY: u8 = b'b';
    pub(crate) const CONTINUE: u8 = b'c';
    pub(crate) const DISCARD: u8 = b'd';
    pub(crate) const CHGFROM: u8 = b'e';
    pub(crate) const CONN_FAIL: u8 = b'f';
    pub(crate) const ADDHEADER: u8 = b'h';
    pub(crate) const INSHEADER: u8 = b'i';
    pub(crate) const SETSYMLIST: u8 = b'l';
    pub(crate) const CHGHEADER: u8 = b'm';
    pub(crate) const PROGRESS: u8 = b'p';
    pub(crate) const QUARANTINE: u8 = b'q';
    pub(crate) const REJECT: u8 = b'r';
    pub(crate) const SKIP: u8 = b's';
    pub(crate) const TEMPFAIL: u8 = b't';
    pub(crate) const REPLYCODE: u8 = b'y';
}

/// Actions a milter may ask for (SMFIF_*).
pub(crate) mod action {
    pub(crate) const ADDHDRS: u32 = 0x01;
    pub(crate) const CHGBODY: u32 = 0x02;
    pub(crate) const ADDRCPT: u32 = 0x04;
    pub(crate) const DELRCPT: u32 = 0x08;
    pub(crate) const CHGHDRS: u32 = 0x10;
    pub(crate) const QUARANTINE: u32 = 0x20;
    pub(crate) const CHGFROM: u32 = 0x40;
    pub(crate) const ADDRCPT_PAR: u32 = 0x80;
    #[allow(dead_code)] // offered within ALL; Postern never acts on it itself
    pub(crate) const SETSYMLIST: u32 = 0x100;
    /// Everything Postern can do.
    pub(crate) const ALL: u32 = 0x1ff;
}

/// Protocol steps (SMFIP_*): steps a milter does not want (`NO*`), steps it will not answer
/// (`NR_*`), and behaviour flags.
pub(crate) mod step {
    pub(crate) const NOCONNECT: u32 = 0x1;
    pub(crate) const NOHELO: u32 = 0x2;
    pub(crate) const NOMAIL: u32 = 0x4;
    pub(crate) const NORCPT: u32 = 0x8;
    pub(crate) const NOBODY: u32 = 0x10;
    pub(crate) const NOHDRS: u32 = 0x20;
    pub(crate) const NOEOH: u32 = 0x40;
    pub(crate) const NR_HDR: u32 = 0x80;
    #[allow(dead_code)] // offered within ALL; Postern never acts on it itself
    pub(crate) const NOUNKNOWN: u32 = 0x100;
    pub(crate) const NODATA: u32 = 0x200;
    pub(crate) const SKIP: u32 = 0x400;
    #[allow(dead_code)] // offered within ALL; Postern never acts on it itself
    pub(crate) const RCPT_REJ: u32 = 0x800;
    pub(crate) const NR_CONN: u32 = 0x1000;
    pub(crate) const NR_HELO: u32 = 0x2000;
    pub(crate) const NR_MAIL: u32 = 0x4000;
    pub(crate) const NR_RCPT: u32 = 0x8000;
    pub(crate) const NR_DATA: u32 = 0x10000;
    #[allow(dead_code)] // offered within ALL; Postern never acts on it itself
    pub(crate) const NR_UNKN: u32 = 0x20000;
    pub(crate) const NR_EOH: u32 = 0x40000;
    pub(crate) const NR_BODY: u32 = 0x80000;
    pub(crate) const HDR_LEADSPC: u32 = 0x100000;
    /// Everything Postern offers. Postern never sends unknown commands, so NOUNKNOWN and NR_UNKN
    /// are granted trivially; RCPT_REJ is granted and has no effect (Postern sends no rejected
    /// recipient to a milter).
    pub(crate) const ALL: u32 = 0x1f_ffff;
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub(crate) code: u8,
    pub(crate) data: Vec<u8>,
}

/// Writes one frame; the caller flushes.
pub(crate) async fn write_frame<W: AsyncWrite + Unpin>(
    out: &mut W,
    code: u8,
    data: &[u8],
) -> Result<(), MilterError> {
    let len = u32::try_from(data.len() + 1).map_err(|_| MilterError::FrameTooLarge(data.len()))?;
    let mut head = [0u8; 5];
    head[..4].copy_from_slice(&len.to_be_bytes());
    head[4] = code;
    out.write_all(&head).await?;
    out.write_all(data).await?;
    Ok(())
}

/// Reads one frame, refusing an empty or oversized one before reading its data.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(input: &mut R) -> Result<Frame, MilterError> {
    let mut len = [0u8; 4];
    input.read_exact(&mut len).await.map_err(closed)?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 {
        return Err(MilterError::Protocol("an empty frame".into()));
    }
    if len > MAX_FRAME {
        return Err(MilterError::FrameTooLarge(len));
    }
    let mut data = vec![0u8; len];
    input.read_exact(&mut data).await.map_err(closed)?;
    let code = data.remove(0);
    Ok(Frame { code, data })
}

fn closed(e: std::io::Error) -> MilterError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        MilterError::Closed
    } else {
        MilterError::Io(e)
    }
}

/// Splits NUL-terminated strings (`char args[][]`); text is taken as UTF-8 with replacement.
pub(crate) fn strings(data: &[u8]) -> Vec<String> {
    let data = data.strip_suffix(b"\0").unwrap_or(data);
    if data.is_empty() {
        return Vec::new();
    }
    data.split(|&b| b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Appends `text` and its NUL terminator; a NUL inside would split the argument, so it is
/// dropped.
pub(crate) fn push_str(out: &mut Vec<u8>, text: &str) {
    out.extend(text.bytes().filter(|&b| b != 0));
    out.push(0);
}

/// Reads a big-endian u32 at the start of `data`.
pub(crate) fn u32_at(data: &[u8], at: usize) -> Result<u32, MilterError> {
    data.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| MilterError::Protocol("a frame too short for its fields".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, cmd::HELO, b"client.test\0")
            .await
            .unwrap();
        assert_eq!(&buf[..5], &[0, 0, 0, 13, b'H']);
        let frame = read_frame(&mut buf.as_slice()).await.unwrap();
        assert_eq!(frame.code, b'H');
        assert_eq!(strings(&frame.data), vec!["client.test"]);
    }

    #[tokio::test]
    async fn refuses_empty_huge_and_cut_frames() {
        let cases: &[(&str, &[u8])] = &[
            ("empty", &[0, 0, 0, 0]),
            ("huge", &[0x7f, 0, 0, 0, b'a']),
            ("cut", &[0, 0, 0, 9, b'h', b'x']),
        ];
        for (name, bytes) in cases {
            let mut input: &[u8] = bytes;
            assert!(read_frame(&mut input).await.is_err(), "case {name}");
        }
    }
}
