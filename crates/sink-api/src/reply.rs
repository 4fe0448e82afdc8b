//! An SMTP reply as a value: a code, an optional enhanced status code (RFC 3463) and text lines.

use std::fmt;

/// An enhanced status code `class.subject.detail` (RFC 3463).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedCode {
    /// 2, 4 or 5.
    pub class: u8,
    /// The subject (0–999).
    pub subject: u16,
    /// The detail (0–999).
    pub detail: u16,
}

impl EnhancedCode {
    /// Builds a code.
    pub const fn new(class: u8, subject: u16, detail: u16) -> Self {
        Self {
            class,
            subject,
            detail,
        }
    }

    /// Parses `X.Y.Z`.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.');
        let class: u8 = parts.next()?.parse().ok()?;
        let subject: u16 = parts.next()?.parse().ok()?;
        let detail: u16 = parts.next()?.parse().ok()?;
        if parts.next().is_some() || !matches!(class, 2 | 4 | 5) || subject > 999 || detail > 999 {
            return None;
        }
        Some(Self::new(class, subject, detail))
    }
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// An SMTP reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code (200–599).
    pub code: u16,
    /// The enhanced status code, sent when the session advertised ENHANCEDSTATUSCODES.
    pub enhanced: Option<EnhancedCode>,
    /// The text, one entry per line (no CR or LF inside).
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, enhanced: Option<EnhancedCode>, text: impl Into<String>) -> Self {
        Self {
            code,
            enhanced,
            lines: vec![sanitize(text.into())],
        }
    }

    /// A reply with several lines.
    pub fn multiline(code: u16, enhanced: Option<EnhancedCode>, lines: Vec<String>) -> Self {
        Self {
            code,
            enhanced,
            lines: lines.into_iter().map(sanitize).collect(),
        }
    }

    /// 2xx or 3xx: the command succeeded or may go on.
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// 4xx.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// 5xx.
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Adds a line at the end.
    pub fn push_line(&mut self, line: impl Into<String>) {
        self.lines.push(sanitize(line.into()));
    }

    /// Writes the reply on the wire, with the enhanced code on every line when `enhanced` is on
    /// (RFC 2034 §3) and the code matches the reply's class.
    pub fn write_to(&self, out: &mut Vec<u8>, enhanced: bool) {
        use std::io::Write;
        let code = self.code.clamp(200, 599);
        let esc = self
            .enhanced
            .filter(|e| enhanced && u16::from(e.class) == code / 100);
        let count = self.lines.len().max(1);
        for i in 0..count {
            let sep = if i + 1 == count { ' ' } else { '-' };
            let text = self.lines.get(i).map_or("", String::as_str);
            // Writing into a Vec cannot fail.
            let _ = match esc {
                Some(e) => write!(out, "{code}{sep}{e} {text}\r\n"),
                None => write!(out, "{code}{sep}{text}\r\n"),
            };
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.write_to(&mut out, true);
        f.write_str(String::from_utf8_lossy(&out).trim_end())
    }
}

/// Reply text is one line: CR and LF would let a sink's text forge further replies.
fn sanitize(mut text: String) -> String {
    if text.contains(['\r', '\n']) {
        text = text.replace(['\r', '\n'], " ");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_multiline_replies_with_enhanced_codes() {
        let reply = Reply::multiline(
            250,
            Some(EnhancedCode::new(2, 0, 0)),
            vec!["first".into(), "second".into()],
        );
        let mut out = Vec::new();
        reply.write_to(&mut out, true);
        assert_eq!(out, b"250-2.0.0 first\r\n250 2.0.0 second\r\n");
        out.clear();
        reply.write_to(&mut out, false);
        assert_eq!(out, b"250-first\r\n250 second\r\n");
    }

    #[test]
    fn text_cannot_forge_a_second_reply() {
        let reply = Reply::new(550, None, "no\r\n250 ok");
        let mut out = Vec::new();
        reply.write_to(&mut out, false);
        assert_eq!(out, b"550 no  250 ok\r\n");
    }

    #[test]
    fn parses_enhanced_codes() {
        assert_eq!(
            EnhancedCode::parse("5.7.1"),
            Some(EnhancedCode::new(5, 7, 1))
        );
        assert_eq!(EnhancedCode::parse("3.0.0"), None);
        assert_eq!(EnhancedCode::parse("5.7"), None);
    }
}
