//! Entry points for the fuzz targets in `fuzz/` and the stable-toolchain smoke test: each takes
//! arbitrary octets and must return without panicking, whatever they are. Not an API.

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use crate::budget::Budget;
use crate::input::{Input, Line};

/// The command reader: the bounded input buffer split into lines (the input arrives in reads
/// whose sizes the first octet chooses), each line parsed as the session parses commands, and
/// as an AUTH response.
pub fn command_reader(data: &[u8]) {
    let (step, mut rest) = match data.split_first() {
        Some((first, rest)) => (usize::from(*first).max(1) * 7, rest),
        None => return,
    };
    let mut input = Input::new(Budget::new(1 << 20));
    let waker = Waker::noop();
    let mut cx = Context::from_waker(waker);
    loop {
        while let Some(line) = input.next_line() {
            if let Line::Complete(range) = line {
                let bytes = input.bytes(range).to_vec();
                command_line(&bytes);
            }
        }
        if rest.is_empty() {
            return;
        }
        let (chunk, after) = rest.split_at(step.min(rest.len()));
        let mut source: &[u8] = chunk;
        // A slice is always ready: one poll completes the read.
        let read = pin!(input.fill(&mut source)).as_mut().poll(&mut cx);
        match read {
            Poll::Ready(Ok(n)) if n > 0 => rest = &rest[n..],
            _ => {
                rest = after;
                input.clear();
            }
        }
    }
}

/// One command line as the session reads it.
fn command_line(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let _ = postern_sink_api::Command::parse(text);
    let _ = crate::defaults::parse_request(text);
    let _ = crate::bdat::parse(text);
    crate::auth::fuzz_response(text);
}

/// The DATA decoder (dot-unstuffing, the end of data, smuggling flaws) over input split at the
/// points the first octet chooses, and the BDAT content check over the same octets.
pub fn data_decoder(data: &[u8]) {
    let (step, body) = match data.split_first() {
        Some((first, rest)) => (usize::from(*first).max(1), rest),
        None => return,
    };
    let mut decoder = crate::dot::Decoder::new(4096);
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let end = (at + step).min(body.len());
        match decoder.feed(&body[at..end], &mut out) {
            Some(used) => {
                assert!(
                    used <= end - at,
                    "the decoder consumed more than it was given"
                );
                break;
            }
            None => at = end,
        }
        assert!(out.len() <= 4096, "the decoder kept more than its limit");
    }
    let mut checker = crate::dot::Checker::default();
    for chunk in body.chunks(step) {
        checker.feed(chunk);
    }
    let _ = checker.finish();
}
