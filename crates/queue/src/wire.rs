//! The spool's wire format: versioned serde structs of the queue's own, converted to and from
//! `postern_mailmsg` types. The JSON field names here are the format; the domain types may be
//! renamed freely without breaking a spool. A change that old readers cannot ignore is a new
//! struct (`MessageV2`) and a new version number in the record header, never an edit of a V1.
//!
//! Fields added to a V1 struct later must carry `#[serde(default)]`, so that records written
//! before them still read.

use std::collections::BTreeMap;
use std::net::IpAddr;

use postern_mailmsg::{
    Body, DsnNotify, DsnRet, Fate, MailParams, MessageInfo, Properties, RcptParams, Recipient,
    RecipientStatus, Sender, Value,
};
use serde::{Deserialize, Serialize};

use crate::envelope::Envelope;
use crate::state::QueueState;

/// The payload format version these structs write.
pub(crate) const VERSION: u8 = 1;

/// The JSON part of a Message record; the content follows it raw.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MessageV1 {
    /// The queue id, in its 26-character text form.
    pub(crate) id: String,
    pub(crate) state: StateV1,
    pub(crate) envelope: EnvelopeV1,
    /// The length of the content that follows, a cross-check on the framing.
    pub(crate) content_len: u64,
    /// CRC-32 of the content alone: lets `update` notice changed content without reading it back.
    pub(crate) content_crc: u32,
}

/// The payload of an Update record: the envelope and state after a transport stage.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct UpdateV1 {
    pub(crate) id: String,
    pub(crate) state: StateV1,
    pub(crate) envelope: EnvelopeV1,
}

/// The payload of a Done record.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct DoneV1 {
    pub(crate) id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum StateV1 {
    Queued,
    Deferred { until_ms: u64 },
    Held,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EnvelopeV1 {
    pub(crate) sender: Option<SenderV1>,
    pub(crate) recipients: Vec<RecipientV1>,
    pub(crate) info: InfoV1,
    pub(crate) properties: BTreeMap<String, ValueV1>,
    pub(crate) fate: FateV1,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SenderV1 {
    pub(crate) address: String,
    pub(crate) size: Option<u64>,
    pub(crate) body: BodyV1,
    pub(crate) smtputf8: bool,
    pub(crate) ret: Option<RetV1>,
    pub(crate) envid: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) enum BodyV1 {
    #[serde(rename = "7bit")]
    SevenBit,
    #[serde(rename = "8bitmime")]
    EightBitMime,
    #[serde(rename = "binarymime")]
    BinaryMime,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RetV1 {
    Full,
    Hdrs,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RecipientV1 {
    pub(crate) address: String,
    pub(crate) original: String,
    pub(crate) notify: NotifyV1,
    pub(crate) orcpt: Option<String>,
    pub(crate) status: StatusV1,
    pub(crate) next_hop: Option<String>,
    pub(crate) properties: BTreeMap<String, ValueV1>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct NotifyV1 {
    pub(crate) success: bool,
    pub(crate) failure: bool,
    pub(crate) delay: bool,
    pub(crate) never: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum StatusV1 {
    Pending,
    Delivered,
    Deferred { reason: String },
    Failed { reason: String },
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct InfoV1 {
    pub(crate) arrival_ms: u64,
    pub(crate) size: u64,
    pub(crate) remote_ip: Option<IpAddr>,
    pub(crate) remote_port: u16,
    pub(crate) helo: String,
    pub(crate) auth_user: Option<String>,
    pub(crate) tls: Option<String>,
    pub(crate) received_by: String,
    pub(crate) protocol: String,
    pub(crate) session_id: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum ValueV1 {
    Bool(bool),
    Int(i64),
    Text(String),
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FateV1 {
    Normal,
    Abort,
    Badmail,
    Quarantine,
    Hold,
}

impl From<QueueState> for StateV1 {
    fn from(state: QueueState) -> Self {
        match state {
            QueueState::Queued => Self::Queued,
            QueueState::Deferred { until_ms } => Self::Deferred { until_ms },
            QueueState::Held => Self::Held,
        }
    }
}

impl From<StateV1> for QueueState {
    fn from(state: StateV1) -> Self {
        match state {
            StateV1::Queued => Self::Queued,
            StateV1::Deferred { until_ms } => Self::Deferred { until_ms },
            StateV1::Held => Self::Held,
        }
    }
}

impl From<&Envelope> for EnvelopeV1 {
    fn from(envelope: &Envelope) -> Self {
        Self {
            sender: envelope.sender.as_ref().map(SenderV1::from),
            recipients: envelope.recipients.iter().map(RecipientV1::from).collect(),
            info: InfoV1::from(&envelope.info),
            properties: properties_to_wire(&envelope.properties),
            fate: envelope.fate.into(),
        }
    }
}

impl From<EnvelopeV1> for Envelope {
    fn from(wire: EnvelopeV1) -> Self {
        Self {
            sender: wire.sender.map(Sender::from),
            recipients: wire.recipients.into_iter().map(Recipient::from).collect(),
            info: wire.info.into(),
            properties: properties_from_wire(wire.properties),
            fate: wire.fate.into(),
        }
    }
}

impl From<&Sender> for SenderV1 {
    fn from(sender: &Sender) -> Self {
        let Sender {
            address,
            params:
                MailParams {
                    size,
                    body,
                    smtputf8,
                    ret,
                    envid,
                },
        } = sender;
        Self {
            address: address.clone(),
            size: *size,
            body: match body {
                Body::SevenBit => BodyV1::SevenBit,
                Body::EightBitMime => BodyV1::EightBitMime,
                Body::BinaryMime => BodyV1::BinaryMime,
            },
            smtputf8: *smtputf8,
            ret: ret.map(|ret| match ret {
                DsnRet::Full => RetV1::Full,
                DsnRet::Headers => RetV1::Hdrs,
            }),
            envid: envid.clone(),
        }
    }
}

impl From<SenderV1> for Sender {
    fn from(wire: SenderV1) -> Self {
        Self {
            address: wire.address,
            params: MailParams {
                size: wire.size,
                body: match wire.body {
                    BodyV1::SevenBit => Body::SevenBit,
                    BodyV1::EightBitMime => Body::EightBitMime,
                    BodyV1::BinaryMime => Body::BinaryMime,
                },
                smtputf8: wire.smtputf8,
                ret: wire.ret.map(|ret| match ret {
                    RetV1::Full => DsnRet::Full,
                    RetV1::Hdrs => DsnRet::Headers,
                }),
                envid: wire.envid,
            },
        }
    }
}

impl From<&Recipient> for RecipientV1 {
    fn from(recipient: &Recipient) -> Self {
        let Recipient {
            address,
            original,
            params: RcptParams { notify, orcpt },
            status,
            next_hop,
            properties,
        } = recipient;
        let DsnNotify {
            success,
            failure,
            delay,
            never,
        } = *notify;
        Self {
            address: address.clone(),
            original: original.clone(),
            notify: NotifyV1 {
                success,
                failure,
                delay,
                never,
            },
            orcpt: orcpt.clone(),
            status: match status {
                RecipientStatus::Pending => StatusV1::Pending,
                RecipientStatus::Delivered => StatusV1::Delivered,
                RecipientStatus::Deferred { reason } => StatusV1::Deferred {
                    reason: reason.clone(),
                },
                RecipientStatus::Failed { reason } => StatusV1::Failed {
                    reason: reason.clone(),
                },
            },
            next_hop: next_hop.clone(),
            properties: properties_to_wire(properties),
        }
    }
}

impl From<RecipientV1> for Recipient {
    fn from(wire: RecipientV1) -> Self {
        Self {
            address: wire.address,
            original: wire.original,
            params: RcptParams {
                notify: DsnNotify {
                    success: wire.notify.success,
                    failure: wire.notify.failure,
                    delay: wire.notify.delay,
                    never: wire.notify.never,
                },
                orcpt: wire.orcpt,
            },
            status: match wire.status {
                StatusV1::Pending => RecipientStatus::Pending,
                StatusV1::Delivered => RecipientStatus::Delivered,
                StatusV1::Deferred { reason } => RecipientStatus::Deferred { reason },
                StatusV1::Failed { reason } => RecipientStatus::Failed { reason },
            },
            next_hop: wire.next_hop,
            properties: properties_from_wire(wire.properties),
        }
    }
}

impl From<&MessageInfo> for InfoV1 {
    fn from(info: &MessageInfo) -> Self {
        // Destructured in full: a new MessageInfo field must be given a place here.
        let MessageInfo {
            arrival_ms,
            size,
            remote_ip,
            remote_port,
            helo,
            auth_user,
            tls,
            received_by,
            protocol,
            session_id,
        } = info;
        Self {
            arrival_ms: *arrival_ms,
            size: *size,
            remote_ip: *remote_ip,
            remote_port: *remote_port,
            helo: helo.clone(),
            auth_user: auth_user.clone(),
            tls: tls.clone(),
            received_by: received_by.clone(),
            protocol: protocol.clone(),
            session_id: *session_id,
        }
    }
}

impl From<InfoV1> for MessageInfo {
    fn from(wire: InfoV1) -> Self {
        Self {
            arrival_ms: wire.arrival_ms,
            size: wire.size,
            remote_ip: wire.remote_ip,
            remote_port: wire.remote_port,
            helo: wire.helo,
            auth_user: wire.auth_user,
            tls: wire.tls,
            received_by: wire.received_by,
            protocol: wire.protocol,
            session_id: wire.session_id,
        }
    }
}

impl From<Fate> for FateV1 {
    fn from(fate: Fate) -> Self {
        match fate {
            Fate::Normal => Self::Normal,
            Fate::Abort => Self::Abort,
            Fate::Badmail => Self::Badmail,
            Fate::Quarantine => Self::Quarantine,
            Fate::Hold => Self::Hold,
        }
    }
}

impl From<FateV1> for Fate {
    fn from(wire: FateV1) -> Self {
        match wire {
            FateV1::Normal => Self::Normal,
            FateV1::Abort => Self::Abort,
            FateV1::Badmail => Self::Badmail,
            FateV1::Quarantine => Self::Quarantine,
            FateV1::Hold => Self::Hold,
        }
    }
}

fn properties_to_wire(properties: &Properties) -> BTreeMap<String, ValueV1> {
    properties
        .iter()
        .map(|(key, value)| {
            let value = match value {
                Value::Bool(b) => ValueV1::Bool(*b),
                Value::Int(i) => ValueV1::Int(*i),
                Value::Text(s) => ValueV1::Text(s.clone()),
            };
            (key.to_owned(), value)
        })
        .collect()
}

fn properties_from_wire(wire: BTreeMap<String, ValueV1>) -> Properties {
    wire.into_iter()
        .map(|(key, value)| {
            let value = match value {
                ValueV1::Bool(b) => Value::Bool(b),
                ValueV1::Int(i) => Value::Int(i),
                ValueV1::Text(s) => Value::Text(s),
            };
            (key, value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_names_are_the_format() {
        // A rename in postern-mailmsg must not show up here; this pins the V1 spelling.
        let state = serde_json::to_string(&StateV1::Deferred { until_ms: 5 }).unwrap();
        assert_eq!(state, r#"{"kind":"deferred","until_ms":5}"#);
        let status = serde_json::to_string(&StatusV1::Failed {
            reason: "550".into(),
        })
        .unwrap();
        assert_eq!(status, r#"{"kind":"failed","reason":"550"}"#);
        assert_eq!(
            serde_json::to_string(&BodyV1::EightBitMime).unwrap(),
            r#""8bitmime""#
        );
        let values: BTreeMap<String, ValueV1> =
            serde_json::from_str(r#"{"a":true,"b":7,"c":"x"}"#).unwrap();
        assert!(matches!(values["a"], ValueV1::Bool(true)));
        assert!(matches!(values["b"], ValueV1::Int(7)));
        assert!(matches!(&values["c"], ValueV1::Text(s) if s == "x"));
    }

    /// An Update record's JSON as version 1 wrote it. If this stops reading, spools on disk
    /// stop reading: make a V2 instead of changing V1.
    const UPDATE_V1: &str = r#"{
      "id": "00000001000000000000000000",
      "state": {"kind": "deferred", "until_ms": 1700000060000},
      "envelope": {
        "sender": {"address": "alice@example.org", "size": 4096, "body": "8bitmime",
                   "smtputf8": false, "ret": "hdrs", "envid": "env-1"},
        "recipients": [{
          "address": "joe@example.com", "original": "Joe@example.com",
          "notify": {"success": false, "failure": true, "delay": false, "never": false},
          "orcpt": null,
          "status": {"kind": "deferred", "reason": "451 4.7.1 greylisted"},
          "next_hop": "smtp:mx.example.com",
          "properties": {"mailbox": "joe"}
        }],
        "info": {"arrival_ms": 1700000000123, "size": 1234, "remote_ip": "192.0.2.7",
                 "remote_port": 52525, "helo": "client.example.org", "auth_user": null,
                 "tls": "TLSv1.3", "received_by": "mx.example.net", "protocol": "ESMTPS",
                 "session_id": 77},
        "properties": {"spam.score": 3},
        "fate": "quarantine"
      }
    }"#;

    #[test]
    fn a_version_1_update_still_reads() {
        let wire: UpdateV1 = serde_json::from_str(UPDATE_V1).unwrap();
        assert_eq!(
            QueueState::from(wire.state),
            QueueState::Deferred {
                until_ms: 1_700_000_060_000
            }
        );
        let envelope = Envelope::from(wire.envelope);
        let sender = envelope.sender.unwrap();
        assert_eq!(sender.params.body, Body::EightBitMime);
        assert_eq!(sender.params.ret, Some(DsnRet::Headers));
        let rcpt = &envelope.recipients[0];
        assert_eq!(rcpt.original, "Joe@example.com");
        assert!(rcpt.params.notify.failure && !rcpt.params.notify.success);
        assert_eq!(
            rcpt.status,
            RecipientStatus::Deferred {
                reason: "451 4.7.1 greylisted".into()
            }
        );
        assert_eq!(rcpt.properties.get_str("mailbox"), Some("joe"));
        assert_eq!(envelope.info.remote_ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(envelope.info.session_id, 77);
        assert_eq!(envelope.properties.get("spam.score"), Some(&Value::Int(3)));
        assert_eq!(envelope.fate, Fate::Quarantine);
    }
}
