//! Entry points for the fuzz targets in `fuzz/` and the stable-toolchain smoke test: each takes
//! arbitrary octets and must return without panicking. Not an API.

use crate::record::{self, HEADER_LEN, Valid};

/// The record decoder. The octets are read twice: as they are, through the framing check
/// (magic, length, CRC) and, when that passes, the payload decoder; and as a payload behind a
/// valid frame (kind and version from the first two octets), since random octets almost never
/// carry a matching CRC and the payload decoder (JSON envelopes, content ranges) would
/// otherwise go untested.
pub fn record_decoder(data: &[u8]) {
    if let Ok(valid) = record::check(data) {
        assert!(valid.len() <= data.len() as u64);
        decode(&valid);
    }
    if let [kind, version, payload @ ..] = data {
        let valid = Valid {
            kind: *kind % 5,
            version: *version % 3,
            segment: 1,
            batch_offset: 0,
            payload,
        };
        decode(&valid);
        // And framed for real: the check must accept a well-made frame and give back the
        // same fields.
        let Ok(len) = u32::try_from(payload.len()) else {
            return;
        };
        let mut framed = vec![0u8; HEADER_LEN];
        framed[..4].copy_from_slice(&record::MAGIC);
        framed[4] = valid.kind;
        framed[5] = valid.version;
        framed[8..16].copy_from_slice(&7u64.to_le_bytes());
        framed[16..20].copy_from_slice(&len.to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&framed[4..24]);
        crc.update(payload);
        framed[24..28].copy_from_slice(&crc.finalize().to_le_bytes());
        framed.extend_from_slice(payload);
        let checked = record::check(&framed).map(|v| (v.kind, v.segment, v.payload.len()));
        assert_eq!(checked, Ok((valid.kind, 7, payload.len())));
    }
}

fn decode(valid: &Valid<'_>) {
    if valid.is_end() {
        return;
    }
    if let Ok((_, Some(range))) = crate::payload::decode(valid) {
        assert!(range.end <= valid.payload.len() && range.start <= range.end);
    }
}
