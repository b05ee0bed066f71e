//! The fast parse of workspace bytes (sonic-rs) against serde_json's.

use super::{RawWorkspace, ReadOptions, Workspace, json::has_negative_zero};

fn doc(numbers: &str) -> String {
    format!(
        r#"{{"channels": [{{"name": "c", "samples": [{{"name": "s", "data": [{numbers}],
            "modifiers": [{{"name": "mu", "type": "normfactor", "data": null}}]}}]}}],
          "observations": [{{"name": "c", "data": [{numbers}]}}],
          "measurements": [{{"name": "m", "config": {{"poi": "mu", "parameters": []}}}}],
          "version": "1.0.0"}}"#
    )
}

/// Numbers that need correct rounding, through both parsers: bit-identical.
#[test]
fn fast_parse_is_bit_identical_and_used() {
    let nums = "0.1, 2.2250738585072011e-308, 4.9406564584124654e-324, \
                1.7976931348623157e308, 9007199254740993, 1e23, 0.30000000000000004, \
                1.00000000000000011102230246251565404236316680908203125, \
                123456789012345678901234567890, 3.14159265358979323846264338327950288";
    let text = doc(nums);
    assert!(!has_negative_zero(text.as_bytes()));
    // the fast path itself accepts the document (so from_bytes does not fall back)
    assert!(sonic_rs::from_slice::<RawWorkspace>(text.as_bytes()).is_ok());
    let fast = Workspace::from_bytes(text.as_bytes(), "t", &ReadOptions::default()).unwrap();
    let slow = Workspace::from_str(&text, "t", &ReadOptions::default()).unwrap();
    let bits = |w: &Workspace| -> Vec<u64> {
        w.channels[0].samples[0]
            .data
            .iter()
            .map(|x| x.to_bits())
            .collect()
    };
    assert_eq!(bits(&fast), bits(&slow));
    assert_eq!(bits(&fast).len(), 10);
}

/// A negative zero keeps its sign (sonic-rs would read +0: serde_json's path).
#[test]
fn negative_zero_keeps_its_sign() {
    for z in ["-0", "-0.0", "-0.000e3", "-0E-2"] {
        let text = doc(&format!("1.5, {z}"));
        assert!(has_negative_zero(text.as_bytes()), "{z}");
        let w = Workspace::from_bytes(text.as_bytes(), "t", &ReadOptions::default()).unwrap();
        let v = w.channels[0].samples[0].data[1];
        assert!(v == 0.0 && v.is_sign_negative(), "{z}: {v}");
    }
    for nz in ["-0.5", "-0.001", "-1", "\"bin-0x\""] {
        let t = format!("[{nz}]");
        assert_eq!(has_negative_zero(t.as_bytes()), nz.contains("-0x"), "{nz}");
    }
}

/// Errors found by the fast path still name their JSON location.
#[test]
fn fast_path_errors_keep_locations() {
    let text = doc("1.0, \"x\"");
    let e = Workspace::from_bytes(text.as_bytes(), "t", &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("/channels/0/samples/0/data/1"), "{e}");
    let e = Workspace::from_bytes(b"{\"channels\": [} ", "t", &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1"), "{e}");
}
