#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| ciphervec::fuzzing::segment_decode(data));
