//! The DATA decoder (dot-unstuffing, end of data, smuggling flaws) and the BDAT content check.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    postern_smtp_in::fuzzing::data_decoder(data);
});
