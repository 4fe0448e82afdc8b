//! Queue ids: 128 bits, time-ordered, with a node component, printed as 26 Crockford base-32
//! characters (the ULID alphabet), so ids sort by arrival and stay unique across nodes.
//!
//! Layout of the 128 bits: 48 bits of Unix milliseconds, 16 bits of node id, 64 bits of a
//! per-process sequence that starts at a random point.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A message's id in the queue.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(u128);

impl QueueId {
    /// Builds an id from its 128-bit value.
    pub const fn from_u128(value: u128) -> Self {
        Self(value)
    }

    /// The 128-bit value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }

    /// The arrival time the id carries, in Unix milliseconds.
    pub const fn millis(self) -> u64 {
        (self.0 >> 80) as u64
    }

    /// The node that made the id.
    pub const fn node(self) -> u16 {
        (self.0 >> 64) as u16
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = [0u8; 26];
        let mut v = self.0;
        for slot in out.iter_mut().rev() {
            *slot = ALPHABET[(v & 31) as usize];
            v >>= 5;
        }
        // Every byte comes from the ASCII alphabet above.
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "QueueId({self})")
    }
}

/// A string that is not a queue id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a queue id: {0:?} (26 characters of Crockford base 32 expected)")]
pub struct ParseQueueIdError(String);

impl FromStr for QueueId {
    type Err = ParseQueueIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseQueueIdError(s.to_owned());
        if s.len() != 26 {
            return Err(err());
        }
        let mut v: u128 = 0;
        for (i, c) in s.bytes().enumerate() {
            let c = c.to_ascii_uppercase();
            let digit = match c {
                b'O' => 0,
                b'I' | b'L' => 1,
                _ => ALPHABET.iter().position(|&a| a == c).ok_or_else(err)? as u128,
            };
            // The first character carries only 3 bits (26 * 5 = 130).
            if i == 0 && digit > 7 {
                return Err(err());
            }
            v = (v << 5) | digit;
        }
        Ok(Self(v))
    }
}

/// Makes queue ids for one node. Cheap to share: one atomic increment per id.
#[derive(Debug)]
pub struct QueueIdGenerator {
    node: u16,
    sequence: AtomicU64,
}

impl QueueIdGenerator {
    /// A generator for `node`, its sequence seeded from the clock and the process id so two
    /// processes on one node do not start at the same point.
    pub fn new(node: u16) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = nanos ^ (u64::from(std::process::id()) << 40) ^ 0x9E37_79B9_7F4A_7C15;
        // splitmix64 spreads nearby seeds apart.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self {
            node,
            sequence: AtomicU64::new(z ^ (z >> 31)),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> QueueId {
        let millis = crate::now_ms() & 0xFFFF_FFFF_FFFF;
        let seq = self.sequence.fetch_add(1, Ordering::Relaxed);
        QueueId((u128::from(millis) << 80) | (u128::from(self.node) << 64) | u128::from(seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let generator = QueueIdGenerator::new(7);
        for _ in 0..100 {
            let id = generator.next_id();
            let text = id.to_string();
            assert_eq!(text.len(), 26);
            assert_eq!(text.parse::<QueueId>(), Ok(id));
            assert_eq!(id.node(), 7);
        }
    }

    #[test]
    fn ids_of_later_milliseconds_sort_later() {
        let a = QueueId::from_u128(1u128 << 80);
        let b = QueueId::from_u128(2u128 << 80);
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn rejects_bad_text() {
        assert!("short".parse::<QueueId>().is_err());
        assert!("ZZZZZZZZZZZZZZZZZZZZZZZZZZ".parse::<QueueId>().is_err());
        assert!("0000000000000000000000000U".parse::<QueueId>().is_err());
    }
}
