//! IEEE 11073-20601 medical number formats as the Bluetooth SIG health
//! profiles carry them: SFLOAT (16 bit) and FLOAT (32 bit), little-endian on
//! the wire.
//!
//! Both are `mantissa × 10^exponent` with two's-complement fields:
//!
//! | type   | exponent        | mantissa         |
//! |--------|-----------------|------------------|
//! | SFLOAT | bits 15..12 (4) | bits 11..0 (12)  |
//! | FLOAT  | bits 31..24 (8) | bits 23..0 (24)  |
//!
//! Five mantissa values are not numbers (IEEE 11073-20601 §F.6, repeated in
//! the Bluetooth Personal Health Devices Transcoding white paper):
//!
//! | meaning                  | SFLOAT mantissa | FLOAT mantissa |
//! |--------------------------|-----------------|----------------|
//! | NaN                      | 0x07FF          | 0x7FFFFF       |
//! | NRes (not at resolution) | 0x0800          | 0x800000       |
//! | +INF                     | 0x07FE          | 0x7FFFFE       |
//! | −INF                     | 0x0802          | 0x800002       |
//! | reserved                 | 0x0801          | 0x800001       |
//!
//! The standard writes them with exponent 0. We recognise them by the
//! mantissa alone, whatever the exponent: a device that sets stray exponent
//! bits on a special value must never have it read as a number.

/// A decoded SFLOAT or FLOAT: a finite number or one of the special values,
/// each its own variant so that no special value can pass for a reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MedFloat {
    /// A number: `mantissa × 10^exponent`, computed so that values with up
    /// to 22 decimal digits of scale are correctly rounded.
    Finite(f64),
    /// Not a Number: the device has no valid value.
    NaN,
    /// Not at this Resolution: the value exists but cannot be represented.
    NRes,
    /// Positive infinity: above the representable range.
    PositiveInfinity,
    /// Negative infinity: below the representable range.
    NegativeInfinity,
    /// The reserved special value (reserved for future use by IEEE 11073).
    Reserved,
}

impl MedFloat {
    /// The number, if this is one.
    pub fn finite(self) -> Option<f64> {
        match self {
            MedFloat::Finite(v) => Some(v),
            _ => None,
        }
    }

    /// True for [`MedFloat::Finite`].
    pub fn is_finite(self) -> bool {
        matches!(self, MedFloat::Finite(_))
    }
}

/// `mantissa × 10^exponent`. Negative exponents divide by an exact power of
/// ten (10^k is exact in f64 up to k = 22), so 365 × 10^-1 is exactly the
/// f64 nearest 36.5, not 36.500000000000004 as multiplying by 0.1 gives.
fn scale(mantissa: i32, exponent: i32) -> f64 {
    let m = f64::from(mantissa);
    if exponent >= 0 {
        m * 10f64.powi(exponent)
    } else {
        m / 10f64.powi(-exponent)
    }
}

/// Sign-extends the low `bits` bits of `raw`.
fn sign_extend(raw: u32, bits: u32) -> i32 {
    let shift = 32 - bits;
    // Reinterpreting the bit pattern is the point: shift the field's sign
    // bit into bit 31, then shift back arithmetically.
    ((raw << shift) as i32) >> shift
}

/// Decodes a 16-bit SFLOAT (as read little-endian from the frame).
pub fn decode_sfloat(raw: u16) -> MedFloat {
    let mantissa_bits = raw & 0x0FFF;
    match mantissa_bits {
        0x07FF => return MedFloat::NaN,
        0x0800 => return MedFloat::NRes,
        0x07FE => return MedFloat::PositiveInfinity,
        0x0802 => return MedFloat::NegativeInfinity,
        0x0801 => return MedFloat::Reserved,
        _ => {}
    }
    let mantissa = sign_extend(u32::from(mantissa_bits), 12);
    let exponent = sign_extend(u32::from(raw >> 12), 4);
    MedFloat::Finite(scale(mantissa, exponent))
}

/// Decodes a 32-bit FLOAT (as read little-endian from the frame).
pub fn decode_float(raw: u32) -> MedFloat {
    let mantissa_bits = raw & 0x00FF_FFFF;
    match mantissa_bits {
        0x007F_FFFF => return MedFloat::NaN,
        0x0080_0000 => return MedFloat::NRes,
        0x007F_FFFE => return MedFloat::PositiveInfinity,
        0x0080_0002 => return MedFloat::NegativeInfinity,
        0x0080_0001 => return MedFloat::Reserved,
        _ => {}
    }
    let mantissa = sign_extend(mantissa_bits, 24);
    let exponent = sign_extend(raw >> 24, 8);
    MedFloat::Finite(scale(mantissa, exponent))
}

/// Encodes `mantissa × 10^exponent` as SFLOAT, for simulated devices and
/// tests. `None` when a field does not fit (mantissa −2048..=2047 minus the
/// special values, exponent −8..=7).
pub fn encode_sfloat(mantissa: i16, exponent: i8) -> Option<u16> {
    if !(-2048..=2047).contains(&mantissa) || !(-8..=7).contains(&exponent) {
        return None;
    }
    let m = (mantissa as u16) & 0x0FFF;
    if (0x07FE..=0x0802).contains(&m) {
        return None;
    }
    Some(((exponent as u16) << 12) | m)
}

/// Encodes `mantissa × 10^exponent` as FLOAT, for simulated devices and
/// tests. `None` when the mantissa does not fit 24 bits or is special.
pub fn encode_float(mantissa: i32, exponent: i8) -> Option<u32> {
    if !(-0x80_0000..=0x7F_FFFF).contains(&mantissa) {
        return None;
    }
    let m = (mantissa as u32) & 0x00FF_FFFF;
    if (0x007F_FFFE..=0x0080_0002).contains(&m) {
        return None;
    }
    Some((u32::from(exponent as u8) << 24) | m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sfloat_finite_values() {
        // 0x0072 = exponent 0, mantissa 114: 114 (a heart rate, say).
        assert_eq!(decode_sfloat(0x0072), MedFloat::Finite(114.0));
        // 0xF16C = exponent −1, mantissa 0x16C = 364: 36.4.
        assert_eq!(decode_sfloat(0xF16C), MedFloat::Finite(36.4));
        // 0xB05F = exponent −5, mantissa 95: 0.00095 (95 mg/dL in kg/L).
        assert_eq!(decode_sfloat(0xB05F), MedFloat::Finite(0.00095));
        // 0x2001 = exponent 2, mantissa 1: 100.
        assert_eq!(decode_sfloat(0x2001), MedFloat::Finite(100.0));
        // 0x0FFF = exponent 0, mantissa −1.
        assert_eq!(decode_sfloat(0x0FFF), MedFloat::Finite(-1.0));
        // 0xFF9C = exponent −1, mantissa −100: −10.0.
        assert_eq!(decode_sfloat(0xFF9C), MedFloat::Finite(-10.0));
        // Extremes of the mantissa: −2048 (0x800 with exponent ≠ 0 would be
        // NRes by mantissa, so the most negative usable is −2045) and 2045.
        assert_eq!(decode_sfloat(0x07FD), MedFloat::Finite(2045.0));
        assert_eq!(decode_sfloat(0x0803), MedFloat::Finite(-2045.0));
        // Extremes of the exponent: 10^7 and 10^-8.
        assert_eq!(decode_sfloat(0x7001), MedFloat::Finite(10_000_000.0));
        assert_eq!(decode_sfloat(0x8001), MedFloat::Finite(0.000_000_01));
        assert_eq!(decode_sfloat(0x0000), MedFloat::Finite(0.0));
    }

    #[test]
    fn sfloat_special_values() {
        assert_eq!(decode_sfloat(0x07FF), MedFloat::NaN);
        assert_eq!(decode_sfloat(0x0800), MedFloat::NRes);
        assert_eq!(decode_sfloat(0x07FE), MedFloat::PositiveInfinity);
        assert_eq!(decode_sfloat(0x0802), MedFloat::NegativeInfinity);
        assert_eq!(decode_sfloat(0x0801), MedFloat::Reserved);
        // Special by mantissa whatever the exponent.
        assert_eq!(decode_sfloat(0xF7FF), MedFloat::NaN);
        assert_eq!(decode_sfloat(0x3800), MedFloat::NRes);
        assert!(!decode_sfloat(0x07FF).is_finite());
        assert_eq!(decode_sfloat(0x07FF).finite(), None);
    }

    #[test]
    fn float_finite_values() {
        // 0xFF00016C = exponent −1, mantissa 364: 36.4 °C.
        assert_eq!(decode_float(0xFF00_016C), MedFloat::Finite(36.4));
        // 0xFE00_8F5C: exponent −2, mantissa 36700: 367.0.
        assert_eq!(decode_float(0xFE00_8F5C), MedFloat::Finite(367.0));
        // 0x00FF_FFFF: exponent 0, mantissa −1.
        assert_eq!(decode_float(0x00FF_FFFF), MedFloat::Finite(-1.0));
        // 0xFDFF_FFF6: exponent −3, mantissa −10: −0.01.
        assert_eq!(decode_float(0xFDFF_FFF6), MedFloat::Finite(-0.01));
        // 0x0300_0005: exponent 3, mantissa 5: 5000.
        assert_eq!(decode_float(0x0300_0005), MedFloat::Finite(5000.0));
        // 0xEC00_0001: exponent −20, mantissa 1.
        assert_eq!(decode_float(0xEC00_0001), MedFloat::Finite(1e-20));
        // The most negative exponent still decodes to a (tiny) number.
        assert!(
            decode_float(0x8000_0001)
                .finite()
                .is_some_and(|v| v > 0.0 && v < 1e-127)
        );
    }

    #[test]
    fn float_special_values() {
        assert_eq!(decode_float(0x007F_FFFF), MedFloat::NaN);
        assert_eq!(decode_float(0x0080_0000), MedFloat::NRes);
        assert_eq!(decode_float(0x007F_FFFE), MedFloat::PositiveInfinity);
        assert_eq!(decode_float(0x0080_0002), MedFloat::NegativeInfinity);
        assert_eq!(decode_float(0x0080_0001), MedFloat::Reserved);
        assert_eq!(decode_float(0xFF7F_FFFF), MedFloat::NaN);
    }

    #[test]
    fn encoders_round_trip_and_refuse_what_does_not_fit() {
        for (m, e) in [
            (0i16, 0i8),
            (364, -1),
            (-100, -1),
            (2045, 7),
            (-2045, -8),
            (95, -5),
        ] {
            let raw = encode_sfloat(m, e).expect("fits");
            assert_eq!(
                decode_sfloat(raw),
                MedFloat::Finite(scale(m.into(), e.into()))
            );
        }
        assert_eq!(encode_sfloat(2047, 0), None, "NaN's mantissa");
        assert_eq!(encode_sfloat(-2046, 0), None, "−INF's mantissa");
        assert_eq!(encode_sfloat(4000, 0), None);
        assert_eq!(encode_sfloat(1, 8), None);
        for (m, e) in [(364i32, -1i8), (-10, -3), (8_000_000, 2), (-1, 0)] {
            let raw = encode_float(m, e).expect("fits");
            assert_eq!(decode_float(raw), MedFloat::Finite(scale(m, e.into())));
        }
        assert_eq!(encode_float(0x7F_FFFF, 0), None);
        assert_eq!(encode_float(0x100_0000, 0), None);
    }
}
