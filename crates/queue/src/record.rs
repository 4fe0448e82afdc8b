//! Record framing: the fixed header that makes every record in a segment self-checking.
//!
//! ```text
//! offset size field
//!  0     4    magic "PSPL"
//!  4     1    kind: 1 Message, 2 Update, 3 Done
//!  5     1    format version of the payload (1)
//!  6     2    reserved, zero
//!  8     4    payload length, little-endian
//! 12     4    batch offset: how many octets after the first record of its batch this one starts
//! 16     4    CRC-32 (IEEE, crc32fast) of bytes 4..16 followed by the payload
//! 20     …    payload
//! ```
//!
//! The CRC covers the header fields as well as the payload, so a flipped kind, length or batch
//! offset is caught, not only a flipped payload byte. The batch offset is what lets recovery tell
//! damage inside the last, unacknowledged batch (a torn write) from damage to an earlier batch
//! that was synced and acknowledged (see `recover`). Only the writer knows where a record lands
//! in its batch, so a caller builds a [`Frame`] (payload and its CRC) and the writer adds the
//! header; CRC-32 combination joins the two without hashing the payload twice.

use bytes::Bytes;
use crc32fast::Hasher;

/// The first four octets of every record.
pub(crate) const MAGIC: [u8; 4] = *b"PSPL";
/// The size of the fixed header.
pub(crate) const HEADER_LEN: usize = 20;
/// The largest payload the 32-bit length field can describe.
pub(crate) const MAX_PAYLOAD: u64 = u32::MAX as u64;

/// What a record says; the payload layout of each is in `payload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A whole message: envelope, state and content.
    Message,
    /// A new envelope and state for a message already in the log.
    Update,
    /// The message leaves the queue.
    Done,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Self::Message => 1,
            Self::Update => 2,
            Self::Done => 3,
        }
    }

    /// The kind with this code, if any.
    pub(crate) fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Message),
            2 => Some(Self::Update),
            3 => Some(Self::Done),
            _ => None,
        }
    }
}

/// A record without its header: what a caller hands the writer.
#[derive(Debug)]
pub(crate) struct Frame {
    kind: Kind,
    version: u8,
    /// The payload before the content: all of it for Update and Done records.
    prefix: Vec<u8>,
    /// Message content, written as is after the prefix; shared, never copied.
    content: Bytes,
    payload_crc: Hasher,
    payload_len: u32,
}

impl Frame {
    /// A frame whose payload is `prefix` then `content`. `content_crc` is the CRC of `content`
    /// when the caller already has it. Errs with the payload size when it is too large.
    pub(crate) fn new(
        kind: Kind,
        version: u8,
        prefix: Vec<u8>,
        content: Bytes,
        content_crc: Option<Hasher>,
    ) -> Result<Self, u64> {
        let size = prefix.len() as u64 + content.len() as u64;
        let payload_len = u32::try_from(size).map_err(|_| size)?;
        let mut payload_crc = Hasher::new();
        payload_crc.update(&prefix);
        match content_crc {
            Some(crc) => payload_crc.combine(&crc),
            None => payload_crc.update(&content),
        }
        Ok(Self {
            kind,
            version,
            prefix,
            content,
            payload_crc,
            payload_len,
        })
    }

    /// The size of the record on disk, header included.
    pub(crate) fn len(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.payload_len)
    }

    /// The header for this record at `batch_offset` octets into its batch.
    pub(crate) fn header(&self, batch_offset: u32) -> [u8; HEADER_LEN] {
        let mut header = [0u8; HEADER_LEN];
        header[0..4].copy_from_slice(&MAGIC);
        header[4] = self.kind.code();
        header[5] = self.version;
        header[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        header[12..16].copy_from_slice(&batch_offset.to_le_bytes());
        let mut crc = Hasher::new();
        crc.update(&header[4..16]);
        crc.combine(&self.payload_crc);
        header[16..20].copy_from_slice(&crc.finalize().to_le_bytes());
        header
    }

    /// The payload octets before the content.
    pub(crate) fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The content octets that end the payload (empty for Update and Done).
    pub(crate) fn content(&self) -> &Bytes {
        &self.content
    }

    /// The whole record as one buffer.
    #[cfg(test)]
    pub(crate) fn to_bytes(&self, batch_offset: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() as usize);
        out.extend_from_slice(&self.header(batch_offset));
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(&self.content);
        out
    }
}

/// A record that passed its checks, borrowed from the octets it was read from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Valid<'a> {
    /// The kind code; an unknown code is a payload error, not a framing one.
    pub(crate) kind: u8,
    /// The payload's format version.
    pub(crate) version: u8,
    /// How far after the first record of its batch this record starts.
    pub(crate) batch_offset: u32,
    /// The payload.
    pub(crate) payload: &'a [u8],
}

impl Valid<'_> {
    /// The size of the record on disk.
    pub(crate) fn len(&self) -> u64 {
        HEADER_LEN as u64 + self.payload.len() as u64
    }
}

/// Why the octets at some offset are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// The octets end before the header or payload does.
    Short,
    /// The magic is wrong.
    Magic,
    /// The CRC does not match.
    Crc,
}

impl Invalid {
    /// A phrase for error messages.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Short => "the record runs past the end of the segment",
            Self::Magic => "bad magic",
            Self::Crc => "CRC mismatch",
        }
    }
}

/// Checks the record that starts at the beginning of `bytes`.
pub(crate) fn check(bytes: &[u8]) -> Result<Valid<'_>, Invalid> {
    if bytes.len() < HEADER_LEN {
        return Err(Invalid::Short);
    }
    if bytes[0..4] != MAGIC {
        return Err(Invalid::Magic);
    }
    let payload_len = le_u32(bytes, 8) as usize;
    let end = HEADER_LEN.saturating_add(payload_len);
    if bytes.len() < end {
        return Err(Invalid::Short);
    }
    let mut crc = Hasher::new();
    crc.update(&bytes[4..16]);
    crc.update(&bytes[HEADER_LEN..end]);
    if crc.finalize() != le_u32(bytes, 16) {
        return Err(Invalid::Crc);
    }
    Ok(Valid {
        kind: bytes[4],
        version: bytes[5],
        batch_offset: le_u32(bytes, 12),
        payload: &bytes[HEADER_LEN..end],
    })
}

/// Reads a little-endian u32 at `at`; the caller has checked the length.
fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        Frame::new(
            Kind::Message,
            1,
            b"{\"x\":1}".to_vec(),
            Bytes::from_static(b"Subject: hi\r\n\r\nbody\r\n"),
            None,
        )
        .unwrap()
    }

    #[test]
    fn a_framed_record_checks_out_with_its_fields() {
        let bytes = frame().to_bytes(40);
        // The layout the module doc promises, octet by octet.
        assert_eq!(&bytes[0..4], b"PSPL");
        assert_eq!((bytes[4], bytes[5], &bytes[6..8]), (1, 1, &[0u8, 0][..]));
        let payload_len = bytes.len() - HEADER_LEN;
        assert_eq!(bytes[8..12], (payload_len as u32).to_le_bytes());
        assert_eq!(bytes[12..16], 40u32.to_le_bytes());
        let mut covered = bytes[4..16].to_vec();
        covered.extend_from_slice(&bytes[HEADER_LEN..]);
        assert_eq!(bytes[16..20], crc32fast::hash(&covered).to_le_bytes());
        let valid = check(&bytes).unwrap();
        assert_eq!(Kind::from_code(valid.kind), Some(Kind::Message));
        assert_eq!(valid.version, 1);
        assert_eq!(valid.batch_offset, 40);
        assert_eq!(valid.payload, b"{\"x\":1}Subject: hi\r\n\r\nbody\r\n");
        assert_eq!(valid.len(), bytes.len() as u64);
    }

    #[test]
    fn a_given_content_crc_gives_the_same_record() {
        let content = Bytes::from_static(b"Subject: hi\r\n\r\nbody\r\n");
        let mut crc = Hasher::new();
        crc.update(&content);
        let combined = Frame::new(Kind::Message, 1, b"{\"x\":1}".to_vec(), content, Some(crc));
        assert_eq!(combined.unwrap().to_bytes(0), frame().to_bytes(0));
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let bytes = frame().to_bytes(0);
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert!(check(&bad).is_err(), "flip at {at} went unnoticed");
        }
    }

    #[test]
    fn every_cut_is_short() {
        let bytes = frame().to_bytes(0);
        for cut in 0..bytes.len() {
            assert_eq!(
                check(&bytes[..cut]).unwrap_err(),
                Invalid::Short,
                "cut {cut}"
            );
        }
    }
}
