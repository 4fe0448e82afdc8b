//! The envelope part of a message: what a Message record carries beside the content, and what an
//! Update record carries. Neither stays in memory: the index keeps where the latest one is.

use postern_mailmsg::{
    Content, Fate, MailMsg, MessageInfo, Properties, QueueId, Recipient, Sender,
};

/// A MailMsg without its id and content.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Envelope {
    pub(crate) sender: Option<Sender>,
    pub(crate) recipients: Vec<Recipient>,
    pub(crate) info: MessageInfo,
    pub(crate) properties: Properties,
    pub(crate) fate: Fate,
}

impl Envelope {
    /// The envelope of `msg`.
    pub(crate) fn of(msg: &MailMsg) -> Self {
        // Destructured in full so that a field added to MailMsg fails to compile here until the
        // spool decides whether to persist it, instead of being dropped silently on restart.
        let MailMsg {
            id: _,
            sender,
            recipients,
            info,
            properties,
            content: _,
            fate,
        } = msg;
        Self {
            sender: sender.clone(),
            recipients: recipients.clone(),
            info: info.clone(),
            properties: properties.clone(),
            fate: *fate,
        }
    }

    /// The whole message, given its id and content.
    pub(crate) fn into_msg(self, id: QueueId, content: Content) -> MailMsg {
        MailMsg {
            id: Some(id),
            sender: self.sender,
            recipients: self.recipients,
            info: self.info,
            properties: self.properties,
            content,
            fate: self.fate,
        }
    }
}
