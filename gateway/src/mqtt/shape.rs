//! The shape of an MQTT payload, for the behaviour model: the order of its
//! keys, the string values that name things (`kind`, `unit`), how its
//! numbers are written (integer, decimals) and its spacing. Digits and
//! optional keys (`time_ms`, `mean`, `pulse`, `flags`) are left out, so a
//! device's readings share one shape and a firmware that writes them
//! differently gets another (docs/WIRE.md).

use std::hash::{Hash, Hasher};

/// Keys a device may send or leave out from one reading to the next.
const OPTIONAL: [&str; 4] = ["time_ms", "mean", "pulse", "flags"];
/// String values that are part of the shape (others are data).
const NAMING: [&str; 3] = ["kind", "unit", "v"];

/// A 64-bit hash of the payload's shape; 0 for an empty payload. Never
/// fails: what is not JSON still has a shape.
pub fn shape_of(payload: &[u8]) -> u64 {
    if payload.is_empty() {
        return 0;
    }
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let mut i = 0;
    // Depth at which an optional key's value is being skipped.
    let mut skipping: Option<usize> = None;
    let mut depth = 0usize;
    let mut last_key: Option<&[u8]> = None;
    let mut spaced = false;
    // A comma is hashed only before what follows it, so a left-out
    // optional key leaves no trace, wherever it stood.
    let mut comma = false;
    let lead = |hasher: &mut std::collections::hash_map::DefaultHasher, comma: &mut bool| {
        if std::mem::take(comma) {
            b','.hash(hasher);
        }
    };
    while i < payload.len() {
        let c = payload[i];
        match c {
            b'"' => {
                let start = i + 1;
                let mut end = start;
                while end < payload.len() && payload[end] != b'"' {
                    end += if payload[end] == b'\\' { 2 } else { 1 };
                }
                let text = &payload[start..end.min(payload.len())];
                i = end + 1;
                let mut j = i;
                while j < payload.len() && payload[j].is_ascii_whitespace() {
                    j += 1;
                }
                let is_key = payload.get(j) == Some(&b':');
                if skipping.is_some() {
                    continue;
                }
                if is_key {
                    if depth == 1 && OPTIONAL.iter().any(|k| k.as_bytes() == text) {
                        skipping = Some(depth);
                        continue;
                    }
                    lead(&mut hasher, &mut comma);
                    b'k'.hash(&mut hasher);
                    text.hash(&mut hasher);
                    last_key = Some(text);
                } else if last_key.is_some_and(|k| NAMING.iter().any(|n| n.as_bytes() == k)) {
                    lead(&mut hasher, &mut comma);
                    b's'.hash(&mut hasher);
                    text.hash(&mut hasher);
                } else {
                    lead(&mut hasher, &mut comma);
                    b's'.hash(&mut hasher);
                }
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                if skipping.is_none() {
                    lead(&mut hasher, &mut comma);
                    c.hash(&mut hasher);
                }
            }
            b'}' | b']' => {
                if skipping == Some(depth) && c == b'}' {
                    skipping = None;
                }
                depth = depth.saturating_sub(1);
                if skipping.is_none() {
                    comma = false;
                    c.hash(&mut hasher);
                }
            }
            b',' => {
                if skipping == Some(depth) {
                    skipping = None;
                } else if skipping.is_none() {
                    comma = true;
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < payload.len()
                    && matches!(payload[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                if skipping.is_none() {
                    lead(&mut hasher, &mut comma);
                    let number = &payload[start..i];
                    let decimals = number
                        .iter()
                        .position(|b| *b == b'.')
                        .map_or(0, |dot| number.len() - dot - 1);
                    let exponent = number.iter().any(|b| matches!(b, b'e' | b'E'));
                    (b'n', decimals, exponent).hash(&mut hasher);
                }
                continue;
            }
            b' ' | b'\t' | b'\n' | b'\r' => spaced = true,
            other => {
                if skipping.is_none() {
                    lead(&mut hasher, &mut comma);
                    other.hash(&mut hasher);
                }
            }
        }
        i += 1;
    }
    spaced.hash(&mut hasher);
    hasher.finish() | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_and_optional_keys_do_not_change_the_shape() {
        let a = shape_of(br#"{"v":1,"seq":7,"kind":"cgm_glucose","value":101,"unit":"mg/dL"}"#);
        let b = shape_of(br#"{"v":1,"seq":12345,"time_ms":1767225600000,"kind":"cgm_glucose","value":99,"unit":"mg/dL","flags":["low_battery"]}"#);
        assert_eq!(a, b);
        let c = shape_of(
            br#"{"time_ms":1,"v":1,"seq":3,"kind":"cgm_glucose","value":250,"unit":"mg/dL"}"#,
        );
        assert_eq!(a, c);
    }

    #[test]
    fn order_units_number_format_and_spacing_do() {
        let base = shape_of(br#"{"v":1,"seq":7,"kind":"cgm_glucose","value":101,"unit":"mg/dL"}"#);
        for other in [
            &br#"{"seq":7,"v":1,"kind":"cgm_glucose","value":101,"unit":"mg/dL"}"#[..],
            br#"{"v":1,"seq":7,"kind":"cgm_glucose","value":5.6,"unit":"mmol/L"}"#,
            br#"{"v":1,"seq":7,"kind":"cgm_glucose","value":101.0,"unit":"mg/dL"}"#,
            br#"{"v": 1, "seq": 7, "kind": "cgm_glucose", "value": 101, "unit": "mg/dL"}"#,
        ] {
            assert_ne!(shape_of(other), base, "{}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn anything_has_a_shape_without_panicking() {
        for junk in [
            &b"\""[..],
            b"{\"a\":",
            b"\\\\\"",
            b"[[[[",
            b"}}}}",
            b"-",
            &[0xff, 0xfe][..],
        ] {
            let _ = shape_of(junk);
        }
        assert_eq!(shape_of(b""), 0);
    }
}
