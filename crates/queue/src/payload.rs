//! Payload layouts of the three record kinds, and what a record means to the index.
//!
//! - Message: a little-endian u32 with the length of the JSON part, the JSON of
//!   [`MessageV1`](crate::wire::MessageV1), then the content as raw octets.
//! - Update: the JSON of [`UpdateV1`](crate::wire::UpdateV1).
//! - Done: the JSON of [`DoneV1`](crate::wire::DoneV1).
//!
//! Encoding happens in the caller's task, so that the one writer thread spends its time on
//! writing and syncing, not on JSON and CRCs.

use bytes::Bytes;
use crc32fast::Hasher;
use postern_mailmsg::QueueId;

use crate::envelope::Envelope;
use crate::error::QueueError;
use crate::record::{Frame, Kind, MAX_PAYLOAD, Valid};
use crate::state::QueueState;
use crate::wire::{DoneV1, EnvelopeV1, MessageV1, UpdateV1, VERSION};

/// What a record means, decoded. Recovery and the writer apply effects to the index with the
/// same function, in log order, so the index after a restart equals the index before it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Effect {
    /// A whole message: it is (again) live, its content is where this record is.
    Message {
        id: QueueId,
        envelope: Envelope,
        state: QueueState,
        content_len: u64,
        content_crc: u32,
    },
    /// A new envelope and state for a live message.
    Update {
        id: QueueId,
        envelope: Envelope,
        state: QueueState,
    },
    /// The message leaves the queue.
    Done { id: QueueId },
}

impl Effect {
    /// The message the record is about.
    pub(crate) fn id(&self) -> QueueId {
        match self {
            Self::Message { id, .. } | Self::Update { id, .. } | Self::Done { id } => *id,
        }
    }
}

/// CRC-32 of some content, as a hasher (to combine) and as a value (to compare).
pub(crate) fn content_crc(content: &[u8]) -> (Hasher, u32) {
    let mut hasher = Hasher::new();
    hasher.update(content);
    let value = hasher.clone().finalize();
    (hasher, value)
}

/// A Message record for `id`.
pub(crate) fn message(
    id: QueueId,
    envelope: Envelope,
    state: QueueState,
    content: &Bytes,
) -> Result<(Frame, Effect), QueueError> {
    let (crc, content_crc) = content_crc(content);
    let wire = MessageV1 {
        id: id.to_string(),
        state: state.into(),
        envelope: EnvelopeV1::from(&envelope),
        content_len: content.len() as u64,
        content_crc,
    };
    let json = serde_json::to_vec(&wire).map_err(QueueError::Encode)?;
    let json_len = u32::try_from(json.len()).map_err(|_| too_large(json.len() as u64))?;
    let mut prefix = Vec::with_capacity(4 + json.len());
    prefix.extend_from_slice(&json_len.to_le_bytes());
    prefix.extend_from_slice(&json);
    let frame = Frame::new(Kind::Message, VERSION, prefix, content.clone(), Some(crc))
        .map_err(too_large)?;
    let effect = Effect::Message {
        id,
        envelope,
        state,
        content_len: content.len() as u64,
        content_crc,
    };
    Ok((frame, effect))
}

/// An Update record for `id`.
pub(crate) fn update(
    id: QueueId,
    envelope: Envelope,
    state: QueueState,
) -> Result<(Frame, Effect), QueueError> {
    let wire = UpdateV1 {
        id: id.to_string(),
        state: state.into(),
        envelope: EnvelopeV1::from(&envelope),
    };
    let json = serde_json::to_vec(&wire).map_err(QueueError::Encode)?;
    let frame = Frame::new(Kind::Update, VERSION, json, Bytes::new(), None).map_err(too_large)?;
    let effect = Effect::Update {
        id,
        envelope,
        state,
    };
    Ok((frame, effect))
}

/// A Done record for `id`.
pub(crate) fn done(id: QueueId) -> Result<(Frame, Effect), QueueError> {
    let wire = DoneV1 { id: id.to_string() };
    let json = serde_json::to_vec(&wire).map_err(QueueError::Encode)?;
    let frame = Frame::new(Kind::Done, VERSION, json, Bytes::new(), None).map_err(too_large)?;
    Ok((frame, Effect::Done { id }))
}

fn too_large(size: u64) -> QueueError {
    QueueError::TooLarge {
        size,
        max: MAX_PAYLOAD,
    }
}

/// Decodes a checked record. For a Message record, also returns the range of the content
/// within the payload. Errors are reasons for a [`QueueError::Corrupt`].
pub(crate) fn decode(
    record: &Valid<'_>,
) -> Result<(Effect, Option<std::ops::Range<usize>>), String> {
    let kind = Kind::from_code(record.kind)
        .ok_or_else(|| format!("unknown record kind {}", record.kind))?;
    if record.version != VERSION {
        return Err(format!(
            "record format version {} is not supported (this build reads {VERSION})",
            record.version
        ));
    }
    let payload = record.payload;
    match kind {
        Kind::Message => {
            let (len, rest) = payload
                .split_first_chunk::<4>()
                .ok_or("message payload shorter than its length field")?;
            let json_len = u32::from_le_bytes(*len) as usize;
            if rest.len() < json_len {
                return Err("message envelope runs past the payload".into());
            }
            let (json, content) = rest.split_at(json_len);
            let wire: MessageV1 = serde_json::from_slice(json).map_err(|e| e.to_string())?;
            if wire.content_len != content.len() as u64 {
                return Err(format!(
                    "content is {} octets, the envelope says {}",
                    content.len(),
                    wire.content_len
                ));
            }
            let start = 4 + json_len;
            let effect = Effect::Message {
                id: parse_id(&wire.id)?,
                envelope: wire.envelope.into(),
                state: wire.state.into(),
                content_len: wire.content_len,
                content_crc: wire.content_crc,
            };
            Ok((effect, Some(start..payload.len())))
        }
        Kind::Update => {
            let wire: UpdateV1 = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            let effect = Effect::Update {
                id: parse_id(&wire.id)?,
                envelope: wire.envelope.into(),
                state: wire.state.into(),
            };
            Ok((effect, None))
        }
        Kind::Done => {
            let wire: DoneV1 = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
            Ok((
                Effect::Done {
                    id: parse_id(&wire.id)?,
                },
                None,
            ))
        }
    }
}

fn parse_id(text: &str) -> Result<QueueId, String> {
    text.parse().map_err(|e| format!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::check;

    #[test]
    fn each_kind_decodes_to_the_effect_it_was_made_with() {
        let id = QueueId::from_u128(42);
        let envelope = Envelope::default();
        let content = Bytes::from_static(b"Subject: x\r\n\r\nhello\r\n");
        let made = [
            message(id, envelope.clone(), QueueState::Held, &content).unwrap(),
            update(id, envelope, QueueState::Deferred { until_ms: 9 }).unwrap(),
            done(id).unwrap(),
        ];
        for (frame, effect) in made {
            let bytes = frame.to_bytes(1, 0);
            let valid = check(&bytes).unwrap();
            let (decoded, range) = decode(&valid).unwrap();
            assert_eq!(decoded, effect);
            if let Some(range) = range {
                assert_eq!(&valid.payload[range], &content[..]);
            }
        }
    }
}
