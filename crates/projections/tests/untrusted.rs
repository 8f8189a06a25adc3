//! The fuzz target's body on stable Rust: random bytes, and inputs shaped
//! like real events with hostile values, never panic anywhere from value
//! parsing to the read models. (`fuzz/` runs the same body under
//! libFuzzer; any crash it finds is added to `SEEDS` below.)

use fangkong_projections::untrusted::exercise;
use proptest::prelude::*;

/// Hand-picked inputs: real event shapes with values at and past the edges,
/// and inputs libFuzzer has found worth keeping.
const SEEDS: &[&[u8]] = &[
    b"",
    b"\x04\x01\x01\x80{}",
    b"\x04\x01\x01\x80{\"returnee_id\":\"0190a8a6-6c1e-7d4e-9b1a-3f2c4d5e6f70\",\"zone_id\":\"0190a8a6-6c1e-7d4e-9b1a-3f2c4d5e6f71\",\"village_id\":\"0190a8a6-6c1e-7d4e-9b1a-3f2c4d5e6f72\",\"grid_id\":\"0190a8a6-6c1e-7d4e-9b1a-3f2c4d5e6f73\",\"arrival_date\":\"2020-01-24\",\"origin\":{\"region\":\"w\",\"risk\":\"high\"},\"personal\":{\"name\":\"a\",\"resident_id\":\"11010519491231002X\",\"phone\":\"13812345678\",\"address\":\"x\"}}\xFF\x07\x01\x01\x80{\"start_date\":\"2020-01-25\",\"planned_days\":60,\"planned_end\":\"2020-03-24\"}\xFF\x0c\x01\x01\x80{\"date\":\"9999-12-31\",\"description\":\"x\",\"planned_end\":\"9999-12-31\"}\xFF\x0d\x01\x01\x80{\"date\":\"-9999-01-01\",\"reason\":\"completed\"}",
    b"\x07\x01\x01\xff{\"start_date\":\"2020-01-25\",\"planned_days\":65535,\"planned_end\":\"2262-01-01\"}",
    b"\x08\x01\x01\x00{\"date\":\"2020-01-26\",\"temperature_celsius\":1e308}",
    b"\x08\x02\x01\x00{\"date\":\"2020-01-26\",\"temperature\":-0.0}",
    b"\x1d\x01\x07\x80{\"zone_id\":\"0190a8a6-6c1e-7d4e-9b1a-3f2c4d5e6f71\",\"date\":\"2020-01-25\",\"zero_report\":true,\"figures\":{\"x\":18446744073709551615},\"submitted_by\":\"a\",\"revision\":4294967295}",
    b"\x1a\x01\x05\x80{\"zone_id\":\"0190a8a6-6c1e-7d4e-9b1a-3f2c4d5e6f71\",\"date\":\"2020-01-25\",\"channel\":\"leaflet\",\"quantity\":1000000}",
    b"\x1e\x01\x08\x80{\"token_id\":\"0190a8a6-6c1e-7d4e-9b1a-3f2c4d5e6f71\",\"name\":\"a\",\"role\":\"zone_worker\",\"zones\":[],\"secret_sha256\":\"zz\"}",
    b"\xff\xff\xff\xff",
    b"+99 25:61",
];

#[test]
fn hand_picked_hostile_inputs_never_panic() {
    for seed in SEEDS {
        exercise(seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&data);
    }

    #[test]
    fn real_event_shapes_with_random_values_never_panic(
        kind in 0u8..40, version in 0u8..4, category in 0u8..10, offset in any::<u8>(),
        date in "[0-9-]{0,12}", n in any::<i64>(), f in any::<f64>(), text in "\\PC{0,20}",
    ) {
        let payload = serde_json::json!({
            "zone_id": "0190a8a6-6c1e-7d4e-9b1a-3f2c4d5e6f71", "date": date, "start_date": date,
            "planned_days": n, "planned_end": date, "temperature": f, "temperature_celsius": f,
            "quantity": n, "people": n, "reason": text, "name": text, "channel": text,
            "figures": {"returnees_registered": n}, "revision": n, "zero_report": n % 2 == 0,
        });
        let mut data = vec![kind, version, category, offset];
        data.extend(payload.to_string().bytes());
        exercise(&data);
    }
}
