//! Reading a binding's properties, with errors that name the property.

use std::borrow::Cow;

use postern_mailmsg::Properties;
use postern_sink_api::SinkError;

/// A property as text; a number or boolean is taken as its text (`--prop text=404` is text).
pub(crate) fn text<'a>(
    props: &'a Properties,
    key: &str,
) -> Result<Option<Cow<'a, str>>, SinkError> {
    Ok(props.get(key).map(|v| match v.as_str() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(v.to_string()),
    }))
}

pub(crate) fn required<'a>(props: &'a Properties, key: &str) -> Result<Cow<'a, str>, SinkError> {
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
