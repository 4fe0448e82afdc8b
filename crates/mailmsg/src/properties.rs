//! Properties: the sink-defined key/value bags, and the well-known typed properties of a message.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

/// A property value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// Text.
    Text(String),
}

impl Value {
    /// The value as text, if it is text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an integer: an integer, or text that parses as one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::Text(s) => s.trim().parse().ok(),
            Self::Bool(_) => None,
        }
    }

    /// The value as a boolean: a boolean, or the text `true`/`false`/`yes`/`no`/`1`/`0`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            Self::Int(i) => Some(*i != 0),
            Self::Text(s) => parse_bool(s),
        }
    }
}

/// Postern's one reading of a boolean written as text (a property, a rule's `TLS=`):
/// `true`/`yes`/`on`/`1` or `false`/`no`/`off`/`0`, in any case, blanks around ignored.
pub fn parse_bool(text: &str) -> Option<bool> {
    const TRUE: [&str; 4] = ["true", "yes", "on", "1"];
    const FALSE: [&str; 4] = ["false", "no", "off", "0"];
    let text = text.trim();
    if TRUE.iter().any(|t| t.eq_ignore_ascii_case(text)) {
        Some(true)
    } else if FALSE.iter().any(|f| f.eq_ignore_ascii_case(text)) {
        Some(false)
    } else {
        None
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Int(i) => write!(f, "{i}"),
            Self::Text(s) => f.write_str(s),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

/// An ordered map of properties (ordered so that it prints and persists the same way each time).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Properties(BTreeMap<String, Value>);

impl Properties {
    /// An empty bag.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// The value of `key` as text (integers and booleans are not converted).
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(Value::as_str)
    }

    /// Sets `key`, returning the old value.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Value>) -> Option<Value> {
        self.0.insert(key.into(), value.into())
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key)
    }

    /// The entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Whether the bag is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

impl FromIterator<(String, Value)> for Properties {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

/// A property bag shared between sinks: the server-wide bag lives as long as the process, a
/// session bag as long as its connection. Cloning shares the same bag.
#[derive(Debug, Clone, Default)]
pub struct PropertyBag(Arc<RwLock<Properties>>);

impl PropertyBag {
    /// A new, empty bag.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the value of `key`.
    pub fn get(&self, key: &str) -> Option<Value> {
        // A poisoned lock only means a writer panicked mid-insert of a whole value; the map is
        // still consistent, so reads go on.
        let guard = self.0.read().unwrap_or_else(|e| e.into_inner());
        guard.get(key).cloned()
    }

    /// Sets `key`.
    pub fn set(&self, key: impl Into<String>, value: impl Into<Value>) {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        guard.set(key, value);
    }

    /// Removes `key`.
    pub fn remove(&self, key: &str) -> Option<Value> {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        guard.remove(key)
    }

    /// A copy of the whole bag.
    pub fn snapshot(&self) -> Properties {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The well-known typed properties of a message (the original's `IMMPID_MP_*` ids).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageInfo {
    /// When the message was accepted, in Unix milliseconds.
    pub arrival_ms: u64,
    /// The size of the content in octets, as stored.
    pub size: u64,
    /// The client's address.
    pub remote_ip: Option<IpAddr>,
    /// The client's port.
    pub remote_port: u16,
    /// The name the client gave in EHLO/HELO.
    pub helo: String,
    /// The SASL identity, when the client authenticated.
    pub auth_user: Option<String>,
    /// The TLS protocol and cipher, when the session was encrypted.
    pub tls: Option<String>,
    /// The name of this server as written in the Received: header.
    pub received_by: String,
    /// The protocol (`SMTP`, `ESMTP`, `ESMTPS`, `ESMTPA`, … RFC 3848).
    pub protocol: String,
    /// The id of the session that received the message.
    pub session_id: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_convert_as_configuration_expects() {
        assert_eq!(Value::from("42").as_int(), Some(42));
        assert_eq!(Value::from("yes").as_bool(), Some(true));
        assert_eq!(Value::from(7).to_string(), "7");
    }

    #[test]
    fn shared_bags_see_each_others_writes() {
        let bag = PropertyBag::new();
        let other = bag.clone();
        bag.set("k", "v");
        assert_eq!(other.get("k"), Some(Value::from("v")));
    }
}
