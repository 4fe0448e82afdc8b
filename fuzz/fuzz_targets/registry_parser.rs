//! The binding registry parser (`bindings.toml`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = postern_sink_host::registry::parse(text, std::path::Path::new("bindings.toml"));
    }
});
