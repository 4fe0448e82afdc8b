//! The command reader: the bounded input buffer, line splitting, command and AUTH parsing.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    postern_smtp_in::fuzzing::command_reader(data);
});
