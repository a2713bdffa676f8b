//! From a parsed Bluetooth SIG measurement (units as the device sent them)
//! to the hub's [`Reading`]s in canonical units. Pure: no clock, no I/O.
//!
//! A measurement the hub cannot use as a patient value — an IEEE-11073
//! special value (NaN, NRes, ±INF), a control-solution test, a scale that
//! could not weigh — is an [`Unusable`] with the reason, counted by the
//! caller like any other refused reading.

use glyco_ble::ieee11073::MedFloat;
use glyco_ble::profiles::DateTime;
use glyco_ble::profiles::blood_pressure::{BloodPressureMeasurement, PressureUnit};
use glyco_ble::profiles::cgm::CgmMeasurement;
use glyco_ble::profiles::glucose::{GlucoseMeasurement, GlucoseUnit, SampleLocation, SampleType};
use glyco_ble::profiles::heart_rate::{HeartRateMeasurement, SensorContact};
use glyco_ble::profiles::plx::PlxSpotCheck;
use glyco_ble::profiles::temperature::{TemperatureMeasurement, TemperatureUnit};
use glyco_ble::profiles::weight::{Weight, WeightMeasurement, WeightUnits};
use glyco_contracts::DeviceIdentity;

use crate::reading::{
    MGDL_PER_MMOLL, Measurement, Reading, SensorFlag, SeqOrigin, Transport, UnixMillis,
};

/// mmHg per kPa.
const MMHG_PER_KPA: f64 = 7.500_615_758;
/// kg per pound (exact by definition).
const KG_PER_LB: f64 = 0.453_592_37;

/// Why a measurement gives no reading.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Unusable {
    #[error("{field} is {value:?}, not a number (IEEE-11073 special value)")]
    SpecialValue {
        field: &'static str,
        value: MedFloat,
    },
    #[error("a glucose record without a concentration (sequence number {seq})")]
    NoConcentration { seq: u16 },
    #[error("a control-solution test (sequence number {seq}), not a patient reading")]
    ControlSolution { seq: u16 },
    #[error("the scale reported an unsuccessful measurement")]
    UnsuccessfulWeighing,
    #[error("the heart-rate sensor reports no skin contact")]
    NoSkinContact,
}

/// How the hub reads device clocks: BLE times carry no zone, so the offset
/// of the devices' clocks from UTC is configured (0 when they keep UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceClock {
    pub utc_offset_minutes: i32,
}

impl DeviceClock {
    /// Unix milliseconds for a device date-time, `None` when the device did
    /// not know the date (year, month or day 0) or the fields are impossible.
    pub fn to_millis(self, time: DateTime) -> Option<UnixMillis> {
        let local_secs = time.unix_seconds()?;
        Some((local_secs - i64::from(self.utc_offset_minutes) * 60) * 1000)
    }
}

fn finite(field: &'static str, value: MedFloat) -> Result<f64, Unusable> {
    value
        .finite()
        .ok_or(Unusable::SpecialValue { field, value })
}

/// The flags whose condition holds, in the order given.
fn raised<const N: usize>(conditions: [(bool, SensorFlag); N]) -> Vec<SensorFlag> {
    conditions
        .into_iter()
        .filter_map(|(on, flag)| on.then_some(flag))
        .collect()
}

/// The parts every reading from one notification shares.
struct Origin<'a> {
    device: &'a DeviceIdentity,
    received_at: UnixMillis,
    measured_at: Option<UnixMillis>,
    clock: DeviceClock,
}

impl Origin<'_> {
    fn reading(
        &self,
        measurement: Measurement,
        unit: &str,
        device_time: Option<UnixMillis>,
        flags: Vec<SensorFlag>,
    ) -> Reading {
        Reading {
            device: self.device.clone(),
            transport: Transport::Ble,
            // Filled in by the journal (hub-numbered) unless set after.
            seq: 0,
            seq_origin: SeqOrigin::Hub,
            device_time,
            received_at: self.received_at,
            measurement,
            reported_unit: unit.to_owned(),
            flags,
        }
    }

    /// A device time in unix milliseconds. A date the device says it does
    /// not know (year, month or day 0) is no time; a date that cannot be (a
    /// month of 13, February 30th) is no time either, and the reading is
    /// flagged `time_fault`: kept, dated by the hub's receive time.
    fn time(&self, time: Option<DateTime>, flags: &mut Vec<SensorFlag>) -> Option<UnixMillis> {
        let time = time?;
        let millis = self.clock.to_millis(time);
        let unknown = !time.is_complete() && time.is_valid();
        if millis.is_none() && !unknown && !flags.contains(&SensorFlag::TimeFault) {
            flags.push(SensorFlag::TimeFault);
        }
        millis
    }
}

/// The readings in one BLE measurement. `measured_at` is the session's
/// estimate for a record that carries only a relative time (a CGM record's
/// minutes since its session started); records with their own date-time
/// use that, through `clock`.
pub fn readings(
    device: &DeviceIdentity,
    received_at: UnixMillis,
    measured_at: Option<UnixMillis>,
    clock: DeviceClock,
    measurement: &glyco_ble::Measurement,
) -> Result<Vec<Reading>, Unusable> {
    let origin = Origin {
        device,
        received_at,
        measured_at,
        clock,
    };
    use glyco_ble::Measurement as Ble;
    match measurement {
        Ble::Glucose(m) => glucose(&origin, m).map(|r| vec![r]),
        Ble::Cgm(m) => cgm(&origin, m).map(|r| vec![r]),
        Ble::BloodPressure(m) => blood_pressure(&origin, m),
        Ble::HeartRate(m) => heart_rate(&origin, m).map(|r| vec![r]),
        Ble::Weight(m) => weight(&origin, m).map(|r| vec![r]),
        Ble::Temperature(m) => temperature(&origin, m).map(|r| vec![r]),
        Ble::PlxSpotCheck(m) => spo2(&origin, m).map(|r| vec![r]),
        Ble::PlxContinuous(m) => spo2_continuous(&origin, m).map(|r| vec![r]),
        // The meal, carbohydrate, exercise, medication or HbA1c of a meter
        // record: not a reading of its own (logged by the BLE ingest; the
        // journal has no place for it yet).
        Ble::GlucoseContext(_) => Ok(Vec::new()),
    }
}

/// Flags from an oximeter's status fields (spot check or continuous).
fn oximeter_flags(
    device_status: Option<glyco_ble::profiles::plx::PlxDeviceStatus>,
    measurement_status: Option<glyco_ble::profiles::plx::PlxMeasurementStatus>,
) -> Vec<SensorFlag> {
    let mut flags = Vec::new();
    if let Some(status) = device_status {
        if status.poor_signal() || status.low_perfusion() {
            flags.push(SensorFlag::PoorSignal);
        }
        if status.equipment_malfunction() || status.sensor_malfunctioning() {
            flags.push(SensorFlag::SensorMalfunction);
        }
    }
    if measurement_status.is_some_and(|s| s.questionable() || s.invalid()) {
        flags.push(SensorFlag::DeviceFault);
    }
    flags
}

/// A continuous oximetry notification: the normal-averaged pair, measured
/// when it arrived.
fn spo2_continuous(
    origin: &Origin<'_>,
    m: &glyco_ble::profiles::plx_continuous::PlxContinuous,
) -> Result<Reading, Unusable> {
    let percent = finite("SpO2", m.spo2_percent)?;
    let pulse_bpm = m.pulse_rate_bpm.finite();
    let flags = oximeter_flags(m.device_status, m.measurement_status);
    Ok(origin.reading(Measurement::Spo2 { percent, pulse_bpm }, "%", None, flags))
}

fn glucose(origin: &Origin<'_>, m: &GlucoseMeasurement) -> Result<Reading, Unusable> {
    let seq = m.sequence_number;
    let concentration = m.concentration.ok_or(Unusable::NoConcentration { seq })?;
    // Either field can say it: meters differ in which one they set.
    if concentration.sample_type == SampleType::ControlSolution
        || concentration.location == SampleLocation::ControlSolution
    {
        return Err(Unusable::ControlSolution { seq });
    }
    let value = finite("glucose concentration", concentration.value)?;
    let (mg_dl, unit) = match concentration.unit {
        // kg/L → mg/dL: 1 kg/L = 10^6 mg / 10 dL.
        GlucoseUnit::KilogramPerLitre => (value * 1e5, "kg/L"),
        // mol/L → mmol/L → mg/dL.
        GlucoseUnit::MolePerLitre => (value * 1e3 * MGDL_PER_MMOLL, "mol/L"),
    };
    let measurement = if concentration.sample_type == SampleType::InterstitialFluid {
        Measurement::CgmGlucose { mg_dl }
    } else {
        Measurement::CapillaryGlucose { mg_dl }
    };
    let mut flags = match m.sensor_status {
        None => Vec::new(),
        Some(status) => raised([
            (status.battery_low(), SensorFlag::LowBattery),
            (status.sensor_malfunction(), SensorFlag::SensorMalfunction),
            (
                status.sample_size_insufficient(),
                SensorFlag::SampleSizeInsufficient,
            ),
            (
                status.strip_insertion_error() || status.strip_type_incorrect(),
                SensorFlag::StripInsertionError,
            ),
            (
                status.temperature_too_high() || status.temperature_too_low(),
                SensorFlag::TemperatureOutOfRange,
            ),
            (
                status.general_device_fault() || status.read_interrupted(),
                SensorFlag::DeviceFault,
            ),
            // The value is the meter's limit ("HI"/"LO"), not a measurement
            // of the true level, which lies beyond it.
            (
                status.result_too_high() || status.result_too_low(),
                SensorFlag::ResultOutOfRange,
            ),
        ]),
    };
    // A meter that says its clock is wrong gets the hub's receive time
    // instead, flagged: a record fetched later is then dated late, never
    // wrongly, and the analysis knows not to take it as current.
    let time_fault = m.sensor_status.is_some_and(|status| status.time_fault());
    if time_fault {
        flags.push(SensorFlag::TimeFault);
    }
    let base_time = (!time_fault).then_some(m.base_time);
    let device_time = origin
        .time(base_time, &mut flags)
        .map(|base| base + i64::from(m.time_offset_minutes.unwrap_or(0)) * 60_000);
    let mut reading = origin.reading(measurement, unit, device_time, flags);
    // The meter's record number names the record: resends after a
    // reconnect carry it again, so the journal can tell them apart.
    reading.seq = u64::from(seq);
    reading.seq_origin = SeqOrigin::Device;
    Ok(reading)
}

fn cgm(origin: &Origin<'_>, m: &CgmMeasurement) -> Result<Reading, Unusable> {
    let mg_dl = finite("CGM glucose", m.glucose_mg_dl)?;
    let status = m.status;
    let flags = raised([
        (status.session_stopped(), SensorFlag::SessionStopped),
        (status.battery_low(), SensorFlag::LowBattery),
        (status.sensor_malfunction(), SensorFlag::SensorMalfunction),
        (
            status.sensor_type_incorrect() || status.general_device_fault(),
            SensorFlag::DeviceFault,
        ),
        (
            status.calibration_required(),
            SensorFlag::CalibrationRequired,
        ),
        (
            status.temperature_too_high() || status.temperature_too_low(),
            SensorFlag::TemperatureOutOfRange,
        ),
        (
            status.below_device_range() || status.above_device_range(),
            SensorFlag::ResultOutOfRange,
        ),
    ]);
    Ok(origin.reading(
        Measurement::CgmGlucose { mg_dl },
        "mg/dL",
        origin.measured_at,
        flags,
    ))
}

fn blood_pressure(
    origin: &Origin<'_>,
    m: &BloodPressureMeasurement,
) -> Result<Vec<Reading>, Unusable> {
    let (factor, unit) = match m.unit {
        PressureUnit::MillimetreOfMercury => (1.0, "mmHg"),
        PressureUnit::Kilopascal => (MMHG_PER_KPA, "kPa"),
    };
    let systolic_mmhg = finite("systolic pressure", m.systolic)? * factor;
    let diastolic_mmhg = finite("diastolic pressure", m.diastolic)? * factor;
    // Some cuffs send NaN for the mean; it is optional in the reading.
    let mean_mmhg = m.mean_arterial.finite().map(|v| v * factor);
    let mut flags = match m.status {
        None => Vec::new(),
        Some(status) => raised([
            (status.body_movement(), SensorFlag::BodyMovement),
            (status.cuff_too_loose(), SensorFlag::CuffLoose),
            (status.irregular_pulse(), SensorFlag::IrregularPulse),
        ]),
    };
    let device_time = origin.time(m.time_stamp, &mut flags);
    let mut out = vec![origin.reading(
        Measurement::BloodPressure {
            systolic_mmhg,
            diastolic_mmhg,
            mean_mmhg,
        },
        unit,
        device_time,
        flags.clone(),
    )];
    // The cuff's pulse is a heart-rate reading of its own.
    if let Some(bpm) = m.pulse_rate_bpm.and_then(MedFloat::finite) {
        out.push(origin.reading(Measurement::HeartRate { bpm }, "bpm", device_time, flags));
    }
    Ok(out)
}

fn heart_rate(origin: &Origin<'_>, m: &HeartRateMeasurement) -> Result<Reading, Unusable> {
    if m.contact == SensorContact::NotDetected {
        return Err(Unusable::NoSkinContact);
    }
    Ok(origin.reading(
        Measurement::HeartRate {
            bpm: f64::from(m.bpm),
        },
        "bpm",
        None,
        Vec::new(),
    ))
}

fn weight(origin: &Origin<'_>, m: &WeightMeasurement) -> Result<Reading, Unusable> {
    let Weight::Measured(value) = m.weight else {
        return Err(Unusable::UnsuccessfulWeighing);
    };
    let (kg, unit) = match m.units {
        WeightUnits::Si => (value, "kg"),
        WeightUnits::Imperial => (value * KG_PER_LB, "lb"),
    };
    let mut flags = Vec::new();
    let device_time = origin.time(m.time_stamp, &mut flags);
    Ok(origin.reading(Measurement::Weight { kg }, unit, device_time, flags))
}

fn temperature(origin: &Origin<'_>, m: &TemperatureMeasurement) -> Result<Reading, Unusable> {
    let value = finite("temperature", m.value)?;
    let (celsius, unit) = match m.unit {
        TemperatureUnit::Celsius => (value, "°C"),
        TemperatureUnit::Fahrenheit => ((value - 32.0) * 5.0 / 9.0, "°F"),
    };
    let mut flags = Vec::new();
    let device_time = origin.time(m.time_stamp, &mut flags);
    Ok(origin.reading(
        Measurement::Temperature { celsius },
        unit,
        device_time,
        flags,
    ))
}

fn spo2(origin: &Origin<'_>, m: &PlxSpotCheck) -> Result<Reading, Unusable> {
    let percent = finite("SpO2", m.spo2_percent)?;
    let pulse_bpm = m.pulse_rate_bpm.finite();
    let mut flags = oximeter_flags(m.device_status, m.measurement_status);
    let device_time = if m.clock_not_set {
        None
    } else {
        origin.time(m.time_stamp, &mut flags)
    };
    Ok(origin.reading(
        Measurement::Spo2 { percent, pulse_bpm },
        "%",
        device_time,
        flags,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use glyco_ble::profiles::{blood_pressure, cgm, glucose, plx, temperature, weight};
    use glyco_ble::testing::frames;

    const NOW: UnixMillis = 1_763_856_000_000; // 2025-11-23T00:00:00Z

    fn meter() -> DeviceIdentity {
        DeviceIdentity::ble("C0:26:DA:01:02:03").unwrap()
    }

    fn convert(m: glyco_ble::Measurement) -> Result<Vec<Reading>, Unusable> {
        readings(&meter(), NOW, None, DeviceClock::default(), &m)
    }

    #[test]
    fn a_reading_with_an_impossible_date_is_kept_dated_by_the_hub_and_flagged() {
        // A cuff (flags 0x06: time stamp, pulse) whose clock says month 13.
        let mut frame = vec![0x06];
        for v in [128i16, 82, 97] {
            frame.extend(
                glyco_ble::ieee11073::encode_sfloat(v, 0)
                    .unwrap()
                    .to_le_bytes(),
            );
        }
        frame.extend([0xE9, 0x07, 13, 1, 8, 0, 0]);
        frame.extend(
            glyco_ble::ieee11073::encode_sfloat(71, 0)
                .unwrap()
                .to_le_bytes(),
        );
        let m = blood_pressure::parse(&frame).expect("kept, not refused");
        let readings = convert(glyco_ble::Measurement::BloodPressure(m)).unwrap();
        assert_eq!(readings[0].device_time, None);
        assert_eq!(readings[0].flags, vec![SensorFlag::TimeFault]);
        // A date the device says it does not know is no fault.
        let mut unknown = frame.clone();
        unknown[7..14].copy_from_slice(&[0, 0, 0, 0, 8, 0, 0]);
        let m = blood_pressure::parse(&unknown).unwrap();
        let readings = convert(glyco_ble::Measurement::BloodPressure(m)).unwrap();
        assert!(readings[0].flags.is_empty());
    }

    #[test]
    fn continuous_oximetry_becomes_spo2_and_a_glucose_context_no_reading() {
        let m = glyco_ble::profiles::plx_continuous::parse(&[
            0x08, 0x61, 0x00, 0x40, 0x00, 0x10, 0x00, 0x00,
        ])
        .unwrap();
        let [r] = convert(glyco_ble::Measurement::PlxContinuous(m))
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            r.measurement,
            Measurement::Spo2 {
                percent: 97.0,
                pulse_bpm: Some(64.0)
            }
        );
        assert_eq!(r.flags, vec![SensorFlag::PoorSignal]);
        let context =
            glyco_ble::profiles::glucose_context::parse(&[0x02, 0x03, 0x00, 0x01]).unwrap();
        assert!(
            convert(glyco_ble::Measurement::GlucoseContext(context))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn civil_dates_match_known_unix_times() {
        let utc = DeviceClock::default();
        let at = |year, month, day, hours, minutes, seconds| DateTime {
            year,
            month,
            day,
            hours,
            minutes,
            seconds,
        };
        assert_eq!(utc.to_millis(at(1970, 1, 1, 0, 0, 0)), Some(0));
        assert_eq!(
            utc.to_millis(at(2024, 3, 15, 7, 30, 0)),
            Some(1_710_487_800_000)
        );
        assert_eq!(
            utc.to_millis(at(2000, 2, 29, 23, 59, 59)),
            Some(951_868_799_000)
        );
        // Unknown date parts and impossible dates give no time, not a wrong one.
        assert_eq!(utc.to_millis(at(0, 3, 15, 7, 30, 0)), None);
        assert_eq!(utc.to_millis(at(2023, 2, 29, 0, 0, 0)), None);
        assert_eq!(utc.to_millis(at(2024, 13, 1, 0, 0, 0)), None);
        // A device clock two hours ahead of UTC.
        let cet = DeviceClock {
            utc_offset_minutes: 120,
        };
        assert_eq!(
            cet.to_millis(at(2024, 3, 15, 9, 30, 0)),
            Some(1_710_487_800_000)
        );
    }

    #[test]
    fn a_glucose_record_keeps_its_sequence_number_and_time() {
        let frame = frames::glucose_record(42, frames::TIME, 112);
        let m = glucose::parse(&frame).unwrap();
        let [reading] = convert(glyco_ble::Measurement::Glucose(m))
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(reading.seq, 42);
        assert_eq!(reading.seq_origin, SeqOrigin::Device);
        assert_eq!(reading.transport, Transport::Ble);
        assert_eq!(reading.device_time, Some(1_710_487_800_000));
        assert_eq!(reading.reported_unit, "kg/L");
        let Measurement::CapillaryGlucose { mg_dl } = reading.measurement else {
            panic!("{:?}", reading.measurement)
        };
        assert!((mg_dl - 112.0).abs() < 1e-9, "{mg_dl}");
    }

    #[test]
    fn mol_per_litre_glucose_becomes_mg_per_dl() {
        // Flags 0x06: time offset absent, concentration in mol/L present.
        let mut frame = vec![0x06, 0x07, 0x00];
        frame.extend(frames::TIME.to_bytes());
        // 6.2 mmol/L = 0.0062 mol/L = 62 × 10^-4.
        frame.extend(
            glyco_ble::ieee11073::encode_sfloat(62, -4)
                .unwrap()
                .to_le_bytes(),
        );
        frame.push(0x11);
        let m = glucose::parse(&frame).unwrap();
        let readings = convert(glyco_ble::Measurement::Glucose(m)).unwrap();
        let Measurement::CapillaryGlucose { mg_dl } = readings[0].measurement else {
            panic!()
        };
        assert!((mg_dl - 6.2 * MGDL_PER_MMOLL).abs() < 1e-6, "{mg_dl}");
        assert_eq!(readings[0].reported_unit, "mol/L");
    }

    #[test]
    fn special_values_and_control_solution_are_unusable_not_numbers() {
        let mut frame = frames::glucose_record(7, frames::TIME, 100);
        // The SFLOAT at bytes 10..12 becomes NaN (0x07FF).
        frame[10..12].copy_from_slice(&0x07FFu16.to_le_bytes());
        let m = glucose::parse(&frame).unwrap();
        assert_eq!(
            convert(glyco_ble::Measurement::Glucose(m)),
            Err(Unusable::SpecialValue {
                field: "glucose concentration",
                value: MedFloat::NaN
            })
        );
        let mut control = frames::glucose_record(8, frames::TIME, 100);
        control[12] = 0x4A; // type 10: control solution, location 4
        let m = glucose::parse(&control).unwrap();
        assert_eq!(
            convert(glyco_ble::Measurement::Glucose(m)),
            Err(Unusable::ControlSolution { seq: 8 })
        );
        let cgm_nan = {
            let mut f = frames::cgm_record(100, 5);
            f[2..4].copy_from_slice(&0x0800u16.to_le_bytes()); // NRes
            f
        };
        let m = cgm::parse(&cgm_nan).unwrap().remove(0);
        assert!(matches!(
            convert(glyco_ble::Measurement::Cgm(m)),
            Err(Unusable::SpecialValue {
                value: MedFloat::NRes,
                ..
            })
        ));
    }

    #[test]
    fn control_solution_is_refused_by_either_field() {
        let mut control = frames::glucose_record(9, frames::TIME, 100);
        control[12] = 0x41; // type 1 capillary, but location 4: control solution
        let m = glucose::parse(&control).unwrap();
        assert_eq!(
            convert(glyco_ble::Measurement::Glucose(m)),
            Err(Unusable::ControlSolution { seq: 9 })
        );
    }

    /// A glucose record with a Sensor Status Annunciation (flags bit 3).
    fn glucose_with_status(status: u16) -> glyco_ble::Measurement {
        let mut frame = frames::glucose_record(11, frames::TIME, 600);
        frame[0] |= 0x08;
        frame.extend(status.to_le_bytes());
        glyco_ble::Measurement::Glucose(glucose::parse(&frame).unwrap())
    }

    #[test]
    fn a_meter_at_its_limit_is_flagged_and_a_clock_fault_drops_its_time() {
        let [hi] = convert(glucose_with_status(1 << 5))
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(hi.flags, vec![SensorFlag::ResultOutOfRange]);
        assert_eq!(hi.device_time, Some(1_710_487_800_000));
        let [unsure] = convert(glucose_with_status(1 << 11))
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(
            unsure.device_time, None,
            "the meter said its clock is wrong"
        );
        assert_eq!(unsure.flags, vec![SensorFlag::TimeFault]);
    }

    #[test]
    fn cgm_status_bits_become_flags_and_the_session_dates_the_record() {
        // Flags 0xE0: all three annunciation octets, in the SIG order
        // Status, Cal/Temp, Warning.
        let mut frame = vec![0x09, 0xE0];
        frame.extend(
            glyco_ble::ieee11073::encode_sfloat(400, 0)
                .unwrap()
                .to_le_bytes(),
        );
        frame.extend(30u16.to_le_bytes());
        frame.extend([1 << 0 | 1 << 1, 1 << 4, 1 << 7]);
        let m = cgm::parse(&frame).unwrap().remove(0);
        let [r] = readings(
            &meter(),
            NOW,
            Some(NOW - 20_000),
            DeviceClock::default(),
            &glyco_ble::Measurement::Cgm(m),
        )
        .unwrap()
        .try_into()
        .unwrap();
        assert_eq!(
            r.flags,
            vec![
                SensorFlag::SessionStopped,
                SensorFlag::LowBattery,
                SensorFlag::TemperatureOutOfRange,
                SensorFlag::ResultOutOfRange,
            ]
        );
        assert_eq!(r.device_time, Some(NOW - 20_000));
        assert_eq!(r.received_at, NOW);
    }

    #[test]
    fn a_cuff_reading_gives_pressure_and_pulse() {
        let m = blood_pressure::parse(&frames::blood_pressure(128, 82, 97, 71)).unwrap();
        let readings = convert(glyco_ble::Measurement::BloodPressure(m)).unwrap();
        assert_eq!(readings.len(), 2);
        assert_eq!(
            readings[0].measurement,
            Measurement::BloodPressure {
                systolic_mmhg: 128.0,
                diastolic_mmhg: 82.0,
                mean_mmhg: Some(97.0)
            }
        );
        assert_eq!(
            readings[1].measurement,
            Measurement::HeartRate { bpm: 71.0 }
        );
        assert!(readings.iter().all(|r| r.seq_origin == SeqOrigin::Hub));
    }

    #[test]
    fn imperial_and_fahrenheit_units_are_converted() {
        // Weight, imperial (flags 0x01), 15000 × 0.01 lb = 150 lb.
        let mut frame = vec![0x01];
        frame.extend(15000u16.to_le_bytes());
        let m = weight::parse(&frame).unwrap();
        let readings = convert(glyco_ble::Measurement::Weight(m)).unwrap();
        let Measurement::Weight { kg } = readings[0].measurement else {
            panic!()
        };
        assert!((kg - 68.038_855_5).abs() < 1e-6, "{kg}");
        assert_eq!(readings[0].reported_unit, "lb");
        // Unsuccessful weighing (0xFFFF).
        let m = weight::parse(&[0x00, 0xFF, 0xFF]).unwrap();
        assert_eq!(
            convert(glyco_ble::Measurement::Weight(m)),
            Err(Unusable::UnsuccessfulWeighing)
        );
        // Temperature 98.6 °F (FLOAT 986 × 10^-1), flags 0x01.
        let mut frame = vec![0x01];
        frame.extend(
            glyco_ble::ieee11073::encode_float(986, -1)
                .unwrap()
                .to_le_bytes(),
        );
        let m = temperature::parse(&frame).unwrap();
        let readings = convert(glyco_ble::Measurement::Temperature(m)).unwrap();
        let Measurement::Temperature { celsius } = readings[0].measurement else {
            panic!()
        };
        assert!((celsius - 37.0).abs() < 1e-9, "{celsius}");
    }

    #[test]
    fn an_oximeter_spot_check_gives_spo2_with_pulse() {
        let mut frame = vec![0x00];
        frame.extend(
            glyco_ble::ieee11073::encode_sfloat(97, 0)
                .unwrap()
                .to_le_bytes(),
        );
        frame.extend(
            glyco_ble::ieee11073::encode_sfloat(64, 0)
                .unwrap()
                .to_le_bytes(),
        );
        let m = plx::parse(&frame).unwrap();
        let readings = convert(glyco_ble::Measurement::PlxSpotCheck(m)).unwrap();
        assert_eq!(
            readings[0].measurement,
            Measurement::Spo2 {
                percent: 97.0,
                pulse_bpm: Some(64.0)
            }
        );
    }
}
