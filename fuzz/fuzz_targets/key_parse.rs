#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ciphervec::fuzzing::key_parse(data));
