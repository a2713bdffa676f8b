//! CRC-16/MCRF4XX: the CCITT polynomial x¹⁶ + x¹² + x⁵ + 1 (0x1021) with
//! seed 0xFFFF, processed least-significant bit first (reflected, so the
//! table-free form uses 0x8408), no final XOR. This is the E2E-CRC of the
//! Continuous Glucose Monitoring Service (CGMS 1.0.1 §2.x "E2E-CRC"), sent
//! little-endian after the protected fields — the reading Nordic's nRF
//! Toolbox collector uses too. (Some server stacks are reported to emit the
//! two CRC octets in the other order; such a device will show CRC-mismatch
//! parse errors rather than silently pass.)

/// The CRC of `data`.
pub fn crc16_mcrf4xx(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in data {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x8408
            } else {
                crc >> 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_check_value() {
        // The CRC RevEng catalogue's check value for CRC-16/MCRF4XX.
        assert_eq!(crc16_mcrf4xx(b"123456789"), 0x6F91);
        assert_eq!(crc16_mcrf4xx(&[]), 0xFFFF);
    }
}
