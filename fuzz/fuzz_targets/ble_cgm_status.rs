#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    glyco_fuzz_targets::run(glyco_fuzz_targets::Target::BleCgmStatus, data);
});
