//! Reading a binding's properties, with errors that name the property.

use postern_mailmsg::Properties;
use postern_sink_api::SinkError;

pub(crate) fn text<'a>(props: &'a Properties, key: &str) -> Result<Option<&'a str>, SinkError> {
    match props.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| SinkError::Config(format!("property `{key}` must be text"))),
    }
}

pub(crate) fn required<'a>(props: &'a Properties, key: &str) -> Result<&'a str, SinkError> {
    text(props, key)?.ok_or_else(|| SinkError::Config(format!("property `{key}` is required")))
}

pub(crate) fn int(props: &Properties, key: &str) -> Result<Option<i64>, SinkError> {
    match props.get(key) {
        None => Ok(None),
        Some(v) => v
            .as_int()
            .map(Some)
            .ok_or_else(|| SinkError::Config(format!("property `{key}` must be a number"))),
    }
}

pub(crate) fn boolean(props: &Properties, key: &str) -> Result<bool, SinkError> {
    match props.get(key) {
        None => Ok(false),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| SinkError::Config(format!("property `{key}` must be true or false"))),
    }
}
