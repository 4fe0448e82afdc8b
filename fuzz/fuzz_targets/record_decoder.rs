//! The queue's record framing check and payload decoder.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    postern_queue::fuzzing::record_decoder(data);
});
