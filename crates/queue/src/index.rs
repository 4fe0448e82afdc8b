//! The in-memory index of live messages, rebuilt from the log at start-up and kept current by
//! the writer. It holds, per message, its state, where its records are and the few fields a
//! listing shows; never its envelope or content, which are read back from the log when needed,
//! so the memory a message takes does not grow with its envelope. It also knows which segments
//! may be deleted.
//!
//! Deletion rule: a segment may go when it is older than the active segment and older than every
//! segment that holds the latest Message record of a live message, and only after every older
//! segment is gone. Deleting oldest first keeps the surviving segments a suffix of the log, so
//! every record written after a surviving Message record survives too (its later Updates and
//! its Done); a record of a message that is Done, or a Message record superseded by a newer one,
//! cannot change what recovery rebuilds. Deleting a newer segment first could remove a Done
//! while its Message stays behind, and recovery would deliver that message again. The record a
//! live message's envelope is read from (its latest Update, or the Message record) comes after
//! its Message record in the log, so the same rule keeps it on disk.

use std::collections::BTreeMap;

use postern_mailmsg::QueueId;

use crate::envelope::Envelope;
use crate::payload::Effect;
use crate::state::{QueueState, QueuedMessage};

/// Where a record is: its segment, offset and length on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

/// What the queue keeps in memory for one live message: a fixed size, plus the sender's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The latest Message record: the content is read back from there, and its segment stays
    /// on disk while the message is live.
    pub(crate) message_at: Location,
    /// The latest record carrying the envelope: the Message record, or an Update after it. It is
    /// never older than `message_at`, so it stays on disk as long as that does.
    pub(crate) envelope_at: Location,
    pub(crate) state: QueueState,
    pub(crate) content_len: u64,
    pub(crate) content_crc: u32,
    /// What a listing shows of the latest envelope.
    pub(crate) summary: Summary,
}

/// The few fields of an envelope that [`QueuedMessage`] shows, kept compact.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Summary {
    /// The sender's address, empty for the null reverse-path.
    pub(crate) sender: Box<str>,
    pub(crate) recipients: u32,
    pub(crate) arrival_ms: u64,
}

impl Summary {
    pub(crate) fn of(envelope: &Envelope) -> Self {
        Self {
            sender: envelope
                .sender
                .as_ref()
                .map(|s| Box::from(s.address.as_str()))
                .unwrap_or_default(),
            recipients: u32::try_from(envelope.recipients.len()).unwrap_or(u32::MAX),
            arrival_ms: envelope.info.arrival_ms,
        }
    }
}

/// How many live messages have their latest Message record in a segment, and how many octets
/// those records take: what compaction would have to rewrite to free the segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Pin {
    pub(crate) messages: usize,
    pub(crate) octets: u64,
}

/// What the index knows of a segment's log: where it ends and how many records it holds.
/// Recovery fills it in from the file; the writer adds to it batch by batch. A checkpoint
/// records it, so that the next recovery can tell a segment cut short from a whole one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Extent {
    /// The offset just past the last record.
    pub(crate) log_len: u64,
    pub(crate) records: u64,
}

/// The live messages and the segments on disk.
#[derive(Debug, Default)]
pub(crate) struct Index {
    entries: BTreeMap<QueueId, Entry>,
    /// For each segment, the live messages whose latest Message record is there.
    pins: BTreeMap<u64, Pin>,
    /// The segment files on disk, by number, with the extent of their logs.
    segments: BTreeMap<u64, Extent>,
    /// The segment being appended to (the newest); it is never deleted.
    active: u64,
}

impl Index {
    /// Applies what a record at `at` says. Recovery and the writer both call this, in log order.
    /// An Update or Done for an id that is not live is ignored: it belongs to a message whose
    /// Message record went with an older, deleted segment, so the message was already Done.
    pub(crate) fn apply(&mut self, effect: Effect, at: Location) {
        let extent = self.segments.entry(at.segment).or_default();
        extent.log_len = extent.log_len.max(at.offset + at.len);
        extent.records += 1;
        match effect {
            Effect::Message {
                id,
                envelope,
                state,
                content_len,
                content_crc,
            } => {
                let entry = Entry {
                    message_at: at,
                    envelope_at: at,
                    state,
                    content_len,
                    content_crc,
                    summary: Summary::of(&envelope),
                };
                if let Some(old) = self.entries.insert(id, entry) {
                    self.unpin(old.message_at);
                }
                let pin = self.pins.entry(at.segment).or_default();
                pin.messages += 1;
                pin.octets += at.len;
            }
            Effect::Update {
                id,
                envelope,
                state,
            } => {
                if let Some(entry) = self.entries.get_mut(&id) {
                    entry.envelope_at = at;
                    entry.summary = Summary::of(&envelope);
                    entry.state = state;
                }
            }
            Effect::Done { id } => {
                if let Some(old) = self.entries.remove(&id) {
                    self.unpin(old.message_at);
                }
            }
        }
    }

    fn unpin(&mut self, at: Location) {
        if let Some(pin) = self.pins.get_mut(&at.segment) {
            pin.messages -= 1;
            pin.octets = pin.octets.saturating_sub(at.len);
            if pin.messages == 0 {
                self.pins.remove(&at.segment);
            }
        }
    }

    /// The entry of a live message.
    pub(crate) fn get(&self, id: QueueId) -> Option<&Entry> {
        self.entries.get(&id)
    }

    /// The summary of a live message.
    pub(crate) fn summary(&self, id: QueueId) -> Option<QueuedMessage> {
        self.entries.get(&id).map(|entry| summarize(id, entry))
    }

    /// Every live message, oldest id first.
    pub(crate) fn list(&self) -> Vec<QueuedMessage> {
        self.entries
            .iter()
            .map(|(id, entry)| summarize(*id, entry))
            .collect()
    }

    /// Live messages by state: queued, deferred, held (without copying any summary).
    pub(crate) fn count_by_state(&self) -> [usize; 3] {
        let mut counts = [0; 3];
        for entry in self.entries.values() {
            counts[match entry.state {
                QueueState::Queued => 0,
                QueueState::Deferred { .. } => 1,
                QueueState::Held => 2,
            }] += 1;
        }
        counts
    }

    /// The number of live messages.
    pub(crate) fn live(&self) -> usize {
        self.entries.len()
    }

    /// Records a segment file that exists (found at start-up, or made by the writer).
    pub(crate) fn add_segment(&mut self, segment: u64) {
        self.segments.entry(segment).or_default();
    }

    /// Makes `segment` the one being appended to.
    pub(crate) fn set_active(&mut self, segment: u64) {
        self.segments.entry(segment).or_default();
        self.active = segment;
    }

    /// The segment being appended to.
    pub(crate) fn active(&self) -> u64 {
        self.active
    }

    /// Every segment on disk with the extent of its log, oldest first.
    pub(crate) fn extents(&self) -> impl Iterator<Item = (u64, Extent)> + '_ {
        self.segments
            .iter()
            .map(|(&number, &extent)| (number, extent))
    }

    /// The live messages, each with where its latest Message record is.
    pub(crate) fn locations(&self) -> impl Iterator<Item = (QueueId, Location)> + '_ {
        self.entries
            .iter()
            .map(|(&id, entry)| (id, entry.message_at))
    }

    /// The oldest segment holding a live message's latest Message record, with its pin.
    pub(crate) fn oldest_pin(&self) -> Option<(u64, Pin)> {
        self.pins
            .iter()
            .next()
            .map(|(&segment, &pin)| (segment, pin))
    }

    /// Forgets a segment whose file was deleted.
    pub(crate) fn remove_segment(&mut self, segment: u64) {
        self.segments.remove(&segment);
    }

    /// The number of segment files.
    pub(crate) fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The segments that may be deleted now, oldest first (see the module doc for why only a
    /// prefix, and why in this order).
    pub(crate) fn deletable(&self) -> Vec<u64> {
        let oldest_pinned = self.pins.keys().next().copied().unwrap_or(u64::MAX);
        let limit = oldest_pinned.min(self.active);
        self.segments
            .keys()
            .copied()
            .take_while(|&segment| segment < limit)
            .collect()
    }

    /// The live messages whose latest Message record is in `segment`.
    pub(crate) fn pinning(&self, segment: u64) -> Vec<(QueueId, Entry)> {
        self.entries
            .iter()
            .filter(|(_, entry)| entry.message_at.segment == segment)
            .map(|(id, entry)| (*id, entry.clone()))
            .collect()
    }
}

fn summarize(id: QueueId, entry: &Entry) -> QueuedMessage {
    QueuedMessage {
        id,
        state: entry.state,
        sender: entry.summary.sender.to_string(),
        recipients: entry.summary.recipients as usize,
        size: entry.content_len,
        arrival_ms: entry.summary.arrival_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(segment: u64) -> Location {
        Location {
            segment,
            offset: 0,
            len: 0,
        }
    }

    fn message(id: u128) -> Effect {
        Effect::Message {
            id: QueueId::from_u128(id),
            envelope: Envelope::default(),
            state: QueueState::Queued,
            content_len: 0,
            content_crc: 0,
        }
    }

    fn done(id: u128) -> Effect {
        Effect::Done {
            id: QueueId::from_u128(id),
        }
    }

    fn index(segments: &[u64]) -> Index {
        let mut index = Index::default();
        for &segment in segments {
            index.set_active(segment);
        }
        index
    }

    #[test]
    fn a_live_message_keeps_its_segment_and_every_newer_one() {
        let mut index = index(&[1, 2, 3, 4]);
        index.apply(message(1), at(1));
        index.apply(message(2), at(2));
        index.apply(done(2), at(3));
        // Message 2 is done, but its segment is newer than message 1's.
        assert_eq!(index.deletable(), Vec::<u64>::new());
        index.apply(done(1), at(4));
        assert_eq!(index.deletable(), vec![1, 2, 3]);
    }

    #[test]
    fn a_rewritten_message_releases_its_older_segment() {
        let mut index = index(&[1, 2, 3]);
        index.apply(message(1), at(1));
        index.apply(message(1), at(2));
        assert_eq!(index.deletable(), vec![1]);
        assert_eq!(index.oldest_pin().map(|(segment, _)| segment), Some(2));
    }

    #[test]
    fn updates_and_dones_for_unknown_ids_change_nothing() {
        let mut index = index(&[1, 2]);
        index.apply(message(1), at(1));
        index.apply(done(7), at(2));
        index.apply(
            Effect::Update {
                id: QueueId::from_u128(7),
                envelope: Envelope::default(),
                state: QueueState::Held,
            },
            at(2),
        );
        assert_eq!(index.live(), 1);
        assert!(index.get(QueueId::from_u128(7)).is_none());
        assert_eq!(index.deletable(), Vec::<u64>::new());
    }

    #[test]
    fn an_update_moves_the_envelope_but_not_the_content() {
        let mut index = index(&[1, 2]);
        let id = QueueId::from_u128(1);
        index.apply(message(1), at(1));
        let envelope = Envelope {
            recipients: vec![postern_mailmsg::Recipient::new("r@example.com")],
            ..Envelope::default()
        };
        let state = QueueState::Deferred { until_ms: 5 };
        index.apply(
            Effect::Update {
                id,
                envelope,
                state,
            },
            at(2),
        );
        let entry = index.get(id).unwrap();
        assert_eq!((entry.message_at, entry.envelope_at), (at(1), at(2)));
        assert_eq!((entry.state, entry.summary.recipients), (state, 1));
        assert_eq!(index.oldest_pin().map(|(segment, _)| segment), Some(1));
    }

    #[test]
    fn the_active_segment_is_never_deletable() {
        let index = index(&[5]);
        assert_eq!(index.deletable(), Vec::<u64>::new());
    }
}
