//! What a listener's mode requires of its clients before MAIL (RFC 6409, RFC 8314):
//! `submission` wants STARTTLS then AUTH, `submissions` (already encrypted) wants AUTH;
//! `smtp` wants neither.

use postern_config::ListenerMode;
use postern_sink_api::Reply;

use crate::reply;
use crate::session::State;

/// The refusal of MAIL when the session has not done what its listener requires.
pub(crate) fn mail_refusal(st: &State) -> Option<Reply> {
    match st.mode {
        ListenerMode::Smtp => None,
        ListenerMode::Submission if !st.info.tls => Some(reply::must_starttls_first()),
        ListenerMode::Submission | ListenerMode::Submissions if st.info.auth_user.is_none() => {
            Some(reply::authentication_required())
        }
        ListenerMode::Submission | ListenerMode::Submissions => None,
    }
}
