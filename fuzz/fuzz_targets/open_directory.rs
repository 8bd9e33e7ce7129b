#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ciphervec::fuzzing::open_directory(data));
