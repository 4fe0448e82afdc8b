//! The binding rule parser; a rule that parses must print as a rule that parses again.
#![no_main]

use postern_sink_host::rule::Rule;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(rule) = Rule::parse(text)
    {
        let shown = rule.to_string();
        assert!(Rule::parse(&shown).is_ok(), "{shown}");
    }
});
