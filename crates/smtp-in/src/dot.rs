//! The DATA decoder: finds the end of the message, removes dot-stuffing and checks the content.
//!
//! Written by hand rather than with `smtp-proto`'s `DataReceiver` because the end of data is a
//! security boundary (SMTP smuggling): only `<CR><LF>.<CR><LF>` ends the message, a bare LF or
//! bare CR never starts a line for that purpose, and the decoder must report bare line ends, NUL
//! octets and over-long lines so the session can refuse such a message whole — never split it.

use memchr::memchr3;

/// RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including the CRLF.
const MAX_LINE: usize = 998;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (after CRLF, or at the start of the data).
    LineStart,
    /// A `.` at the start of a line was seen.
    Dot,
    /// `.` then CR at the start of a line.
    DotCr,
    /// Inside a line.
    Mid,
    /// A CR inside a line; an LF must follow.
    Cr,
}

/// What was wrong with the content (the first problem found is kept for the reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flaw {
    /// An LF not preceded by CR.
    BareLf,
    /// A CR not followed by LF.
    BareCr,
    /// A NUL octet.
    Nul,
    /// A line over 1000 octets.
    LongLine,
}

impl Flaw {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::BareLf => "bare LF in message, lines must end with CRLF",
            Self::BareCr => "bare CR in message, lines must end with CRLF",
            Self::Nul => "NUL octet in message",
            Self::LongLine => "a line is longer than 1000 octets",
        }
    }
}

/// Decodes one message's DATA section.
#[derive(Debug)]
pub(crate) struct Decoder {
    state: State,
    line_len: usize,
    limit: usize,
    /// Octets of content seen (after unstuffing), including any beyond the limit.
    pub(crate) seen: u64,
    /// The first flaw found.
    pub(crate) flaw: Option<Flaw>,
}

impl Decoder {
    /// A decoder that keeps at most `limit` octets of content.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            state: State::LineStart,
            line_len: 0,
            limit,
            seen: 0,
            flaw: None,
        }
    }

    /// Whether the content went past the limit (the excess was discarded).
    pub(crate) fn oversize(&self) -> bool {
        self.seen > self.limit as u64
    }

    fn flaw(&mut self, flaw: Flaw) {
        self.flaw.get_or_insert(flaw);
    }

    /// Appends content to `out` (which may be only the part not yet written to disk) up to
    /// the limit, counting all of it.
    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        let kept = usize::try_from(self.seen).unwrap_or(usize::MAX);
        let room = self.limit.saturating_sub(kept);
        self.seen += bytes.len() as u64;
        out.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Feeds input; content goes to `out`. Returns `Some(n)` when the end of data was found
    /// after consuming `n` octets of `input` (the rest belongs to the next command), `None` when
    /// all of `input` was consumed and more is needed.
    pub(crate) fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::LineStart => {
                    if b == b'.' {
                        self.state = State::Dot;
                        i += 1;
                    } else {
                        self.state = State::Mid;
                    }
                }
                State::Dot => {
                    if b == b'\r' {
                        self.state = State::DotCr;
                        i += 1;
                    } else {
                        // A stuffed dot: RFC 5321 §4.5.2 drops it. The line goes on.
                        self.line_len = 1;
                        self.state = State::Mid;
                    }
                }
                State::DotCr => {
                    if b == b'\n' {
                        return Some(i + 1);
                    }
                    // `.` CR and no LF: the CR is bare; keep the content as sent.
                    self.flaw(Flaw::BareCr);
                    self.emit(out, b"\r");
                    self.state = State::Mid;
                }
                State::Cr => {
                    if b == b'\n' {
                        self.emit(out, b"\n");
                        self.line_len = 0;
                        self.state = State::LineStart;
                        i += 1;
                    } else {
                        self.flaw(Flaw::BareCr);
                        self.state = State::Mid;
                    }
                }
                State::Mid => {
                    let rest = &input[i..];
                    let run = memchr3(b'\r', b'\n', 0, rest).unwrap_or(rest.len());
                    if run > 0 {
                        self.line_len += run;
                        if self.line_len > MAX_LINE {
                            self.flaw(Flaw::LongLine);
                        }
                        self.emit(out, &rest[..run]);
                        i += run;
                        continue;
                    }
                    match b {
                        b'\r' => {
                            self.emit(out, b"\r");
                            self.state = State::Cr;
                        }
                        b'\n' => {
                            // A bare LF never starts a line: `<LF>.<CR><LF>` cannot end the data.
                            self.flaw(Flaw::BareLf);
                            self.emit(out, b"\n");
                        }
                        _ => {
                            self.flaw(Flaw::Nul);
                            self.emit(out, b"\0");
                        }
                    }
                    i += 1;
                }
            }
        }
        None
    }
}

/// Checks content that comes without dot-stuffing (BDAT), piece by piece as it arrives, by the
/// rules DATA applies: CRLF line ends only, no NUL, lines of at most 1000 octets.
#[derive(Debug, Default)]
pub(crate) struct Checker {
    line: usize,
    /// The last octet was a CR: an LF must follow.
    cr: bool,
    flaw: Option<Flaw>,
}

impl Checker {
    /// Checks the next piece of content.
    pub(crate) fn feed(&mut self, content: &[u8]) {
        if self.flaw.is_some() {
            return;
        }
        for &b in content {
            if self.cr {
                self.cr = false;
                if b != b'\n' {
                    self.flaw = Some(Flaw::BareCr);
                    return;
                }
                self.line = 0;
                continue;
            }
            let flaw = match b {
                b'\n' => Flaw::BareLf,
                b'\r' => {
                    self.cr = true;
                    continue;
                }
                0 => Flaw::Nul,
                _ => {
                    self.line += 1;
                    if self.line <= MAX_LINE {
                        continue;
                    }
                    Flaw::LongLine
                }
            };
            self.flaw = Some(flaw);
            return;
        }
    }

    /// The first flaw of the whole content.
    pub(crate) fn finish(&self) -> Option<Flaw> {
        self.flaw.or(self.cr.then_some(Flaw::BareCr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> (Vec<u8>, Option<usize>, Option<Flaw>) {
        let mut d = Decoder::new(1 << 20);
        let mut out = Vec::new();
        for (n, chunk) in chunks.iter().enumerate() {
            if let Some(end) = d.feed(chunk, &mut out) {
                assert_eq!(n, chunks.len() - 1, "ended before the last chunk");
                return (out, Some(end), d.flaw);
            }
        }
        (out, None, d.flaw)
    }

    /// A case: name, input, where the data ends, the flaw found.
    type Case = (&'static str, &'static [u8], Option<usize>, Option<Flaw>);

    #[test]
    fn ends_only_at_crlf_dot_crlf() {
        let cases: &[Case] = &[
            ("plain", b"a\r\nb\r\n.\r\nQUIT\r\n", Some(9), None),
            ("empty message", b".\r\n", Some(3), None),
            (
                "bare LF dot CRLF does not end",
                b"a\n.\r\nb\r\n.\r\n",
                Some(11),
                Some(Flaw::BareLf),
            ),
            (
                "bare CR dot CRLF does not end",
                b"a\r.\r\nb\r\n.\r\n",
                Some(11),
                Some(Flaw::BareCr),
            ),
            (
                "LF dot LF does not end",
                b"a\n.\n",
                None,
                Some(Flaw::BareLf),
            ),
            (
                "CRLF dot LF does not end",
                b"a\r\n.\nb",
                None,
                Some(Flaw::BareLf),
            ),
            (
                "CRLF dot CR x",
                b"a\r\n.\rx\r\n.\r\n",
                Some(11),
                Some(Flaw::BareCr),
            ),
        ];
        for (name, input, end, flaw) in cases {
            let (_, got_end, got_flaw) = decode(&[input]);
            assert_eq!((got_end, got_flaw), (*end, *flaw), "{name}");
        }
    }

    #[test]
    fn bdat_content_is_checked_by_the_same_rules() {
        let check = |content: &[u8]| {
            let mut checker = Checker::default();
            // Piece by piece: a CR at the end of one piece and its LF in the next are a line end.
            for piece in content.chunks(2) {
                checker.feed(piece);
            }
            checker.finish()
        };
        assert_eq!(check(b"a\r\nb\r\n"), None);
        assert_eq!(check(b"a\r"), Some(Flaw::BareCr));
        assert_eq!(check(b"a\n.\nMAIL FROM:<x>\r\n"), Some(Flaw::BareLf));
        assert_eq!(check(b"a\r.\r\n"), Some(Flaw::BareCr));
        assert_eq!(check(b"a\0\r\n"), Some(Flaw::Nul));
        assert_eq!(check(&[b'x'; 999]), Some(Flaw::LongLine));
        assert_eq!(check(b"ends without a line end"), None);
    }

    #[test]
    fn removes_dot_stuffing() {
        let (out, end, flaw) = decode(&[b"..leading\r\n.\r\n"]);
        assert_eq!(
            (out.as_slice(), end, flaw),
            (b".leading\r\n".as_slice(), Some(14), None)
        );
    }

    #[test]
    fn finds_the_end_split_across_reads() {
        let input = b"hello\r\n.\r\n";
        for split in 1..input.len() {
            let (a, b) = input.split_at(split);
            let (out, end, _) = decode(&[a, b]);
            assert_eq!(out, b"hello\r\n", "split at {split}");
            assert_eq!(end, Some(input.len() - split), "split at {split}");
        }
    }

    #[test]
    fn flags_nul_and_long_lines() {
        assert_eq!(decode(&[b"a\0b\r\n.\r\n"]).2, Some(Flaw::Nul));
        let mut long = vec![b'x'; 999];
        long.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(decode(&[&long]).2, Some(Flaw::LongLine));
        let mut fine = vec![b'x'; 998];
        fine.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(decode(&[&fine]).2, None);
    }

    /// A small deterministic generator (xorshift), so the property tests need no dependency and
    /// fail the same way every time.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> usize {
            (self.next() % n) as usize
        }
    }

    #[test]
    fn any_stuffed_message_decodes_back_whatever_the_read_boundaries() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for case in 0..2000 {
            // Lines of bytes other than CR, LF and NUL; many start with dots.
            let mut message = Vec::new();
            for _ in 0..rng.below(12) {
                let dots = if rng.below(3) == 0 {
                    rng.below(3) + 1
                } else {
                    0
                };
                message.extend(std::iter::repeat_n(b'.', dots));
                for _ in 0..rng.below(40) {
                    let b = (rng.below(255) + 1) as u8;
                    if b != b'\r' && b != b'\n' {
                        message.push(b);
                    }
                }
                message.extend_from_slice(b"\r\n");
            }
            let mut wire = Vec::new();
            for line in message.split_inclusive(|&b| b == b'\n') {
                if line.first() == Some(&b'.') {
                    wire.push(b'.');
                }
                wire.extend_from_slice(line);
            }
            wire.extend_from_slice(b".\r\nQUIT\r\n");
            let end = wire.len() - 6;
            let mut d = Decoder::new(1 << 20);
            let mut out = Vec::new();
            let mut at = 0;
            let mut found = None;
            while at < wire.len() && found.is_none() {
                let take = (rng.below(17) + 1).min(wire.len() - at);
                if let Some(used) = d.feed(&wire[at..at + take], &mut out) {
                    found = Some(at + used);
                }
                at += take;
            }
            assert_eq!(found, Some(end), "case {case}: end of data");
            assert_eq!(out, message, "case {case}: content");
            assert_eq!(d.flaw, None, "case {case}");
        }
    }

    #[test]
    fn no_input_ends_the_data_anywhere_but_at_crlf_dot_crlf() {
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let alphabet = [b'\r', b'\n', b'.', b'a', 0];
        for _ in 0..20_000 {
            let input: Vec<u8> = (0..rng.below(24)).map(|_| alphabet[rng.below(5)]).collect();
            let mut d = Decoder::new(1 << 20);
            let mut out = Vec::new();
            if let Some(end) = d.feed(&input, &mut out) {
                // The data may only end right after <CRLF>.<CRLF> (or .<CRLF> at the start).
                let head = &input[..end];
                assert!(
                    head == b".\r\n" || head.ends_with(b"\r\n.\r\n"),
                    "ended after {head:?}"
                );
            }
        }
    }

    #[test]
    fn keeps_at_most_the_limit_and_counts_the_rest() {
        let mut d = Decoder::new(4);
        let mut out = Vec::new();
        assert_eq!(d.feed(b"abcdefgh\r\n.\r\n", &mut out), Some(13));
        assert_eq!(out, b"abcd");
        assert!(d.oversize());
        assert_eq!(d.seen, 10);
    }
}
