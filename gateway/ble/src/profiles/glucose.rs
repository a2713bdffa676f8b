//! Glucose Measurement (0x2A18), Glucose Service 1.0 §3.106 / GATT
//! Specification Supplement:
//!
//! | octets | field                                   | present when |
//! |--------|-----------------------------------------|--------------|
//! | 1      | Flags                                   | always       |
//! | 2      | Sequence Number (uint16)                | always       |
//! | 7      | Base Time (Date Time)                   | always       |
//! | 2      | Time Offset (sint16, minutes)           | flags bit 0  |
//! | 2      | Glucose Concentration (SFLOAT)          | flags bit 1  |
//! | 1      | Type (low nibble) – Sample Location (high nibble) | flags bit 1 |
//! | 2      | Sensor Status Annunciation (uint16)     | flags bit 3  |
//!
//! Flags: bit 0 Time Offset present; bit 1 Concentration, Type and Sample
//! Location present; bit 2 concentration unit (0 = kg/L, 1 = mol/L); bit 3
//! Sensor Status Annunciation present; bit 4 a Glucose Measurement Context
//! (0x2A34) record with the same sequence number follows; bits 5–7 reserved.

use super::reader::Reader;
use super::{DateTime, ParseError, ParseErrorKind, Profile};
use crate::ieee11073::MedFloat;

const TIME_OFFSET: u8 = 0x01;
const CONCENTRATION: u8 = 0x02;
const UNIT_MOL_PER_L: u8 = 0x04;
const STATUS: u8 = 0x08;
const CONTEXT_FOLLOWS: u8 = 0x10;
const DEFINED: u8 = 0x1F;

/// One glucometer record.
#[derive(Debug, Clone, PartialEq)]
pub struct GlucoseMeasurement {
    /// Increments by one per record; the RACP cursor and the de-duplication
    /// key.
    pub sequence_number: u16,
    /// The device's clock when the record was taken.
    pub base_time: DateTime,
    /// Minutes to add to `base_time` (the device's time-zone/DST
    /// adjustments since its clock was set).
    pub time_offset_minutes: Option<i16>,
    /// The reading, absent e.g. for a record that only carries a status.
    pub concentration: Option<GlucoseConcentration>,
    /// Sensor Status Annunciation bits, when sent.
    pub sensor_status: Option<GlucoseSensorStatus>,
    /// A Glucose Measurement Context record follows (not parsed here).
    pub context_follows: bool,
}

/// The glucose value with its unit and sample as sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GlucoseConcentration {
    /// The SFLOAT as sent, in `unit`.
    pub value: MedFloat,
    /// kg/L or mol/L (1 mg/dL = 10⁻⁵ kg/L; 1 mmol/L = 10⁻³ mol/L).
    pub unit: GlucoseUnit,
    /// What was measured.
    pub sample_type: SampleType,
    /// Where the sample came from.
    pub location: SampleLocation,
}

/// Glucose concentration unit as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GlucoseUnit {
    /// kg/L (flags bit 2 clear).
    KilogramPerLitre,
    /// mol/L (flags bit 2 set).
    MolePerLitre,
}

/// The Type nibble. Reserved values (0, 11–15) are refused: the type
/// decides whether a number is blood glucose at all (control solution is
/// not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum SampleType {
    CapillaryWholeBlood,
    CapillaryPlasma,
    VenousWholeBlood,
    VenousPlasma,
    ArterialWholeBlood,
    ArterialPlasma,
    UndeterminedWholeBlood,
    UndeterminedPlasma,
    InterstitialFluid,
    ControlSolution,
}

impl SampleType {
    fn from_nibble(n: u8) -> Option<SampleType> {
        use SampleType::*;
        Some(match n {
            1 => CapillaryWholeBlood,
            2 => CapillaryPlasma,
            3 => VenousWholeBlood,
            4 => VenousPlasma,
            5 => ArterialWholeBlood,
            6 => ArterialPlasma,
            7 => UndeterminedWholeBlood,
            8 => UndeterminedPlasma,
            9 => InterstitialFluid,
            10 => ControlSolution,
            _ => return None,
        })
    }
}

/// The Sample Location nibble. Reserved values are kept as
/// [`SampleLocation::Reserved`] rather than refused: the location does not
/// change what the number means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum SampleLocation {
    Finger,
    AlternateSiteTest,
    Earlobe,
    ControlSolution,
    NotAvailable,
    /// 0 or 5–14.
    Reserved(u8),
}

impl SampleLocation {
    fn from_nibble(n: u8) -> SampleLocation {
        use SampleLocation::*;
        match n {
            1 => Finger,
            2 => AlternateSiteTest,
            3 => Earlobe,
            4 => ControlSolution,
            15 => NotAvailable,
            other => Reserved(other),
        }
    }
}

/// Sensor Status Annunciation (uint16 bit field). Bits 12–15 are reserved
/// and kept in [`GlucoseSensorStatus::bits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GlucoseSensorStatus {
    /// The raw field.
    pub bits: u16,
}

impl GlucoseSensorStatus {
    fn bit(self, n: u16) -> bool {
        self.bits & (1 << n) != 0
    }
    /// Bit 0: device battery low at time of measurement.
    pub fn battery_low(self) -> bool {
        self.bit(0)
    }
    /// Bit 1: sensor malfunction or faulting.
    pub fn sensor_malfunction(self) -> bool {
        self.bit(1)
    }
    /// Bit 2: sample size insufficient.
    pub fn sample_size_insufficient(self) -> bool {
        self.bit(2)
    }
    /// Bit 3: strip insertion error.
    pub fn strip_insertion_error(self) -> bool {
        self.bit(3)
    }
    /// Bit 4: strip type incorrect for device.
    pub fn strip_type_incorrect(self) -> bool {
        self.bit(4)
    }
    /// Bit 5: result higher than the device can process.
    pub fn result_too_high(self) -> bool {
        self.bit(5)
    }
    /// Bit 6: result lower than the device can process.
    pub fn result_too_low(self) -> bool {
        self.bit(6)
    }
    /// Bit 7: temperature too high for valid test.
    pub fn temperature_too_high(self) -> bool {
        self.bit(7)
    }
    /// Bit 8: temperature too low for valid test.
    pub fn temperature_too_low(self) -> bool {
        self.bit(8)
    }
    /// Bit 9: read interrupted (strip pulled too soon).
    pub fn read_interrupted(self) -> bool {
        self.bit(9)
    }
    /// Bit 10: general device fault.
    pub fn general_device_fault(self) -> bool {
        self.bit(10)
    }
    /// Bit 11: time fault (the base time may be wrong).
    pub fn time_fault(self) -> bool {
        self.bit(11)
    }
}

/// Parses one Glucose Measurement frame.
pub fn parse(frame: &[u8]) -> Result<GlucoseMeasurement, ParseError> {
    let mut r = Reader::new(Profile::Glucose, frame)?;
    let flags = r.u8("flags")?;
    r.check_reserved(0, flags.into(), DEFINED.into())?;
    let sequence_number = r.u16("sequence number")?;
    let base_time = r.date_time("base time")?;
    let time_offset_minutes = if flags & TIME_OFFSET != 0 {
        Some(r.i16("time offset")?)
    } else {
        None
    };
    let concentration = if flags & CONCENTRATION != 0 {
        let value = r.sfloat("glucose concentration")?;
        let at = r.offset();
        let type_location = r.u8("type-sample location")?;
        let sample_type = SampleType::from_nibble(type_location & 0x0F).ok_or_else(|| {
            r.error_at(
                at,
                ParseErrorKind::ReservedValue {
                    field: "type",
                    value: (type_location & 0x0F).into(),
                },
            )
        })?;
        Some(GlucoseConcentration {
            value,
            unit: if flags & UNIT_MOL_PER_L != 0 {
                GlucoseUnit::MolePerLitre
            } else {
                GlucoseUnit::KilogramPerLitre
            },
            sample_type,
            location: SampleLocation::from_nibble(type_location >> 4),
        })
    } else {
        None
    };
    let sensor_status = if flags & STATUS != 0 {
        Some(GlucoseSensorStatus {
            bits: r.u16("sensor status annunciation")?,
        })
    } else {
        None
    };
    r.finish()?;
    Ok(GlucoseMeasurement {
        sequence_number,
        base_time,
        time_offset_minutes,
        concentration,
        sensor_status,
        context_follows: flags & CONTEXT_FOLLOWS != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::fuzz;

    // 2024-03-15 07:30:05 as the Date Time layout.
    const BASE_TIME: [u8; 7] = [0xE8, 0x07, 3, 15, 7, 30, 5];

    fn frame(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn full_record_in_kg_per_litre() {
        // Flags 0x0B: time offset, concentration (kg/L), status.
        // Sequence 0x0102 = 258; offset +60 min; 0xB05F = 95 × 10⁻⁵ kg/L
        // (95 mg/dL); type 1 (capillary whole blood), location 1 (finger)
        // → 0x11; status 0x0001 (battery low).
        let bytes = frame(&[
            &[0x0B, 0x02, 0x01],
            &BASE_TIME,
            &[0x3C, 0x00],
            &[0x5F, 0xB0, 0x11],
            &[0x01, 0x00],
        ]);
        let m = parse(&bytes).expect("valid record");
        assert_eq!(m.sequence_number, 258);
        assert_eq!(m.base_time.year, 2024);
        assert_eq!(m.time_offset_minutes, Some(60));
        let c = m.concentration.expect("concentration");
        assert_eq!(c.value, MedFloat::Finite(0.00095));
        assert_eq!(c.unit, GlucoseUnit::KilogramPerLitre);
        assert_eq!(c.sample_type, SampleType::CapillaryWholeBlood);
        assert_eq!(c.location, SampleLocation::Finger);
        let s = m.sensor_status.expect("status");
        assert!(s.battery_low() && !s.sensor_malfunction());
        assert!(!m.context_follows);
    }

    #[test]
    fn mol_per_litre_negative_offset_and_context_flag() {
        // Flags 0x17: time offset, concentration, mol/L, context follows.
        // Offset −120 min = 0xFF88; 5.3 mmol/L = 53 × 10⁻⁴ mol/L → exponent
        // −4 (0xC), mantissa 53 (0x035): 0xC035; type 2
        // (capillary plasma), location 2 (AST) → 0x22.
        let bytes = frame(&[
            &[0x17, 0x01, 0x00],
            &BASE_TIME,
            &[0x88, 0xFF],
            &[0x35, 0xC0, 0x22],
        ]);
        let m = parse(&bytes).expect("valid record");
        assert_eq!(m.time_offset_minutes, Some(-120));
        let c = m.concentration.expect("concentration");
        assert_eq!(c.value, MedFloat::Finite(0.0053));
        assert_eq!(c.unit, GlucoseUnit::MolePerLitre);
        assert_eq!(c.sample_type, SampleType::CapillaryPlasma);
        assert_eq!(c.location, SampleLocation::AlternateSiteTest);
        assert!(m.context_follows);
        assert_eq!(m.sensor_status, None);
    }

    #[test]
    fn minimal_record_and_special_values() {
        // Flags 0: sequence and base time only.
        let m = parse(&frame(&[&[0x00, 0x07, 0x00], &BASE_TIME])).expect("valid");
        assert_eq!(m.sequence_number, 7);
        assert_eq!(m.concentration, None);
        // NaN concentration with location "not available" (0xF) and type
        // 10 (control solution) → 0xFA.
        let m = parse(&frame(&[
            &[0x02, 0x08, 0x00],
            &BASE_TIME,
            &[0xFF, 0x07, 0xFA],
        ]))
        .expect("valid");
        let c = m.concentration.expect("concentration");
        assert_eq!(c.value, MedFloat::NaN);
        assert_eq!(c.sample_type, SampleType::ControlSolution);
        assert_eq!(c.location, SampleLocation::NotAvailable);
    }

    #[test]
    fn refusals() {
        let err = parse(&[]).expect_err("empty");
        assert_eq!(err.reason, ParseErrorKind::Empty);
        assert_eq!(err.profile, Profile::Glucose);

        // Truncated inside the base time.
        let err = parse(&[0x00, 0x01, 0x00, 0xE8, 0x07]).expect_err("truncated");
        assert_eq!(err.offset, 3);
        assert!(matches!(
            err.reason,
            ParseErrorKind::Truncated {
                field: "base time",
                needed: 7,
                available: 2
            }
        ));

        // Flags announce a concentration that is not there.
        let err =
            parse(&frame(&[&[0x02, 0x01, 0x00], &BASE_TIME, &[0x5F]])).expect_err("truncated");
        assert_eq!(err.offset, 10);

        // Reserved flag bit 5.
        let err = parse(&frame(&[&[0x20, 0x01, 0x00], &BASE_TIME])).expect_err("reserved flag");
        assert_eq!(
            (err.offset, err.reason),
            (0, ParseErrorKind::ReservedFlags { bits: 0x20 })
        );

        // Reserved type 0.
        let err = parse(&frame(&[
            &[0x02, 0x01, 0x00],
            &BASE_TIME,
            &[0x5F, 0xB0, 0x10],
        ]))
        .expect_err("reserved type");
        assert_eq!(
            (err.offset, err.reason),
            (
                12,
                ParseErrorKind::ReservedValue {
                    field: "type",
                    value: 0
                }
            )
        );

        // Trailing byte.
        let err = parse(&frame(&[&[0x00, 0x01, 0x00], &BASE_TIME, &[0x00]])).expect_err("trailing");
        assert_eq!(
            (err.offset, err.reason),
            (10, ParseErrorKind::TrailingBytes { count: 1 })
        );

        // Month 13 in the base time: the record is kept, its time marked
        // impossible (the hub dates it by its own clock, flagged).
        let kept = parse(&[0x00, 0x01, 0x00, 0xE8, 0x07, 13, 1, 0, 0, 0]).expect("kept");
        assert_eq!(kept.base_time.month, 13);
        assert!(!kept.base_time.is_valid());
    }

    fn shape(buf: &mut [u8]) {
        fuzz::flags_first::<0x1F>(buf);
        fuzz::plausible_date(buf, 3);
    }

    #[test]
    fn fuzz_never_panics() {
        let ok = fuzz::never_panics(0x2A18, 24, 20_000, shape, parse);
        assert!(ok > 0, "the fuzzer should reach valid records too");
    }
}
