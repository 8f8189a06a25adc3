//! Untrusted bytes through value parsing, event decoding and upcasting,
//! every aggregate's fold, command decisions and the read models.
//! `cargo +nightly fuzz run untrusted_events -- -max_total_time=300`
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fangkong_projections::untrusted::exercise(data);
});
