//! Record framing: the fixed header that makes every record in a segment self-checking, and
//! the End marker that closes the log of a segment.
//!
//! ```text
//! offset size field
//!  0     4    magic "PSPL"
//!  4     1    kind: 0 End, 1 Message, 2 Update, 3 Done
//!  5     1    format version of the payload (1)
//!  6     2    reserved, zero
//!  8     8    segment number, little-endian: the segment the record was written to
//! 16     4    payload length, little-endian
//! 20     4    batch offset: how many octets after the first record of its batch this one starts
//! 24     4    CRC-32 (IEEE, crc32fast) of bytes 4..24 followed by the payload
//! 28     …    payload
//! ```
//!
//! The CRC covers the header fields as well as the payload, so a flipped kind, segment, length
//! or batch offset is caught, not only a flipped payload byte. The batch offset is what lets
//! recovery tell damage inside the last, unacknowledged batch (a torn write) from damage to an
//! earlier batch that was synced and acknowledged (see `scan`). Only the writer knows where a
//! record lands, so a caller builds a [`Frame`] (payload and its CRC) and the writer adds the
//! header; CRC-32 combination joins the two without hashing the payload twice.
//!
//! Segment files are reused (`spare`), so a file holds, after the records of its current
//! segment, whatever an earlier use left: zeros, or records of an older segment. The segment
//! number tells those apart from live records: a well-formed record of another segment is stale,
//! never live. And every batch is followed by an End marker (kind 0, no payload) of its segment,
//! overwritten by the next batch: the log of a segment ends where its End marker is, not where
//! the file does (`scan` reads a segment that way).

use bytes::Bytes;
use crc32fast::Hasher;

/// The first four octets of every record.
pub(crate) const MAGIC: [u8; 4] = *b"PSPL";
/// The size of the fixed header.
pub(crate) const HEADER_LEN: usize = 28;
/// The largest payload: the 32-bit length field could say more, but a batch of one such record
/// must still fit the 32-bit batch offset of the End marker after it.
pub(crate) const MAX_PAYLOAD: u64 = u32::MAX as u64 - HEADER_LEN as u64;
/// The kind code of the End marker; no [`Kind`], since it carries no payload and no effect.
const END: u8 = 0;

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
        let payload_len = u32::try_from(size)
            .ok()
            .filter(|&len| u64::from(len) <= MAX_PAYLOAD)
            .ok_or(size)?;
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

    /// The header for this record in `segment`, at `batch_offset` octets into its batch.
    pub(crate) fn header(&self, segment: u64, batch_offset: u32) -> [u8; HEADER_LEN] {
        let fields = Fields {
            kind: self.kind.code(),
            version: self.version,
            segment,
            payload_len: self.payload_len,
            batch_offset,
        };
        fields.header(&self.payload_crc)
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
    pub(crate) fn to_bytes(&self, segment: u64, batch_offset: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len() as usize);
        out.extend_from_slice(&self.header(segment, batch_offset));
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(&self.content);
        out
    }
}

/// The End marker the writer puts after a batch of `segment`: `batch_offset` is the batch's
/// length, so the marker belongs to the batch it closes.
pub(crate) fn end_marker(segment: u64, batch_offset: u32) -> [u8; HEADER_LEN] {
    let fields = Fields {
        kind: END,
        version: 0,
        segment,
        payload_len: 0,
        batch_offset,
    };
    fields.header(&Hasher::new())
}

/// The header fields between the magic and the CRC.
struct Fields {
    kind: u8,
    version: u8,
    segment: u64,
    payload_len: u32,
    batch_offset: u32,
}

impl Fields {
    fn header(&self, payload_crc: &Hasher) -> [u8; HEADER_LEN] {
        let mut header = [0u8; HEADER_LEN];
        header[0..4].copy_from_slice(&MAGIC);
        header[4] = self.kind;
        header[5] = self.version;
        header[8..16].copy_from_slice(&self.segment.to_le_bytes());
        header[16..20].copy_from_slice(&self.payload_len.to_le_bytes());
        header[20..24].copy_from_slice(&self.batch_offset.to_le_bytes());
        let mut crc = Hasher::new();
        crc.update(&header[4..24]);
        crc.combine(payload_crc);
        header[24..28].copy_from_slice(&crc.finalize().to_le_bytes());
        header
    }
}

/// A record (or End marker) that passed its checks, borrowed from the octets it was read from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Valid<'a> {
    /// The kind code; an unknown code is a payload error, not a framing one.
    pub(crate) kind: u8,
    /// The payload's format version.
    pub(crate) version: u8,
    /// The segment the record was written to.
    pub(crate) segment: u64,
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

    /// Whether this is an End marker rather than a record.
    pub(crate) fn is_end(&self) -> bool {
        self.kind == END
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

/// Checks the record that starts at the beginning of `bytes`, whatever segment it names.
pub(crate) fn check(bytes: &[u8]) -> Result<Valid<'_>, Invalid> {
    if bytes.len() < HEADER_LEN {
        return Err(Invalid::Short);
    }
    if bytes[0..4] != MAGIC {
        return Err(Invalid::Magic);
    }
    let payload_len = le_u32(bytes, 16) as usize;
    let end = HEADER_LEN.saturating_add(payload_len);
    if bytes.len() < end {
        return Err(Invalid::Short);
    }
    let mut crc = Hasher::new();
    crc.update(&bytes[4..24]);
    crc.update(&bytes[HEADER_LEN..end]);
    if crc.finalize() != le_u32(bytes, 24) {
        return Err(Invalid::Crc);
    }
    Ok(Valid {
        kind: bytes[4],
        version: bytes[5],
        segment: le_u64(bytes, 8),
        batch_offset: le_u32(bytes, 20),
        payload: &bytes[HEADER_LEN..end],
    })
}

/// The segment number a header claims, unchecked: a cheap filter before the CRC.
pub(crate) fn segment_of(bytes: &[u8]) -> Option<u64> {
    (bytes.len() >= HEADER_LEN).then(|| le_u64(bytes, 8))
}

/// Reads a little-endian u32 at `at`; the caller has checked the length.
fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Reads a little-endian u64 at `at`; the caller has checked the length.
fn le_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from(le_u32(bytes, at)) | (u64::from(le_u32(bytes, at + 4)) << 32)
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
        let bytes = frame().to_bytes(0x0102_0304_0506_0708, 40);
        // The layout the module doc promises, octet by octet.
        assert_eq!(&bytes[0..4], b"PSPL");
        assert_eq!((bytes[4], bytes[5], &bytes[6..8]), (1, 1, &[0u8, 0][..]));
        assert_eq!(bytes[8..16], 0x0102_0304_0506_0708u64.to_le_bytes());
        let payload_len = bytes.len() - HEADER_LEN;
        assert_eq!(bytes[16..20], (payload_len as u32).to_le_bytes());
        assert_eq!(bytes[20..24], 40u32.to_le_bytes());
        let mut covered = bytes[4..24].to_vec();
        covered.extend_from_slice(&bytes[HEADER_LEN..]);
        assert_eq!(bytes[24..28], crc32fast::hash(&covered).to_le_bytes());
        let valid = check(&bytes).unwrap();
        assert_eq!(Kind::from_code(valid.kind), Some(Kind::Message));
        assert_eq!(valid.version, 1);
        assert_eq!(valid.segment, 0x0102_0304_0506_0708);
        assert_eq!(valid.batch_offset, 40);
        assert_eq!(valid.payload, b"{\"x\":1}Subject: hi\r\n\r\nbody\r\n");
        assert_eq!(valid.len(), bytes.len() as u64);
        assert!(!valid.is_end());
    }

    #[test]
    fn a_given_content_crc_gives_the_same_record() {
        let content = Bytes::from_static(b"Subject: hi\r\n\r\nbody\r\n");
        let mut crc = Hasher::new();
        crc.update(&content);
        let combined = Frame::new(Kind::Message, 1, b"{\"x\":1}".to_vec(), content, Some(crc));
        assert_eq!(combined.unwrap().to_bytes(3, 0), frame().to_bytes(3, 0));
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let bytes = frame().to_bytes(3, 0);
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert!(check(&bad).is_err(), "flip at {at} went unnoticed");
        }
    }

    #[test]
    fn every_cut_is_short() {
        let bytes = frame().to_bytes(3, 0);
        for cut in 1..bytes.len() {
            assert_eq!(
                check(&bytes[..cut]).unwrap_err(),
                Invalid::Short,
                "cut {cut}"
            );
        }
    }
}
