//! The GATT identifiers this crate knows, and the dispatch from a
//! characteristic's bytes to a typed [`Measurement`].

use uuid::Uuid;

use crate::profiles::cgm::StatusOrder;
use crate::profiles::{
    ParseError, blood_pressure, cgm, glucose, glucose_context, heart_rate, plx, plx_continuous,
    temperature, weight,
};

/// The Bluetooth Base UUID with a 16-bit assigned number in it.
pub const fn sig_uuid(short: u16) -> Uuid {
    Uuid::from_u128(0x0000_0000_0000_1000_8000_0080_5f9b_34fb | ((short as u128) << 96))
}

/// Glucose service (0x1808): where the RACP that fetches glucometer
/// records lives (the CGM service has its own RACP, keyed differently).
pub const GLUCOSE_SERVICE: Uuid = sig_uuid(0x1808);

/// The services that carry the supported characteristics: Glucose
/// (0x1808), Continuous Glucose Monitoring (0x181F), Blood Pressure
/// (0x1810), Heart Rate (0x180D), Weight Scale (0x181D), Health Thermometer
/// (0x1809), Pulse Oximeter (0x1822).
pub const HEALTH_SERVICES: [Uuid; 7] = [
    sig_uuid(0x1808),
    sig_uuid(0x181F),
    sig_uuid(0x1810),
    sig_uuid(0x180D),
    sig_uuid(0x181D),
    sig_uuid(0x1809),
    sig_uuid(0x1822),
];

/// Characteristics the sessions use: measurements they subscribe to, and
/// the CGM session characteristics they read at each connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Characteristic {
    /// 0x2A18, in the Glucose service.
    GlucoseMeasurement,
    /// 0x2A34, in the Glucose service (follows a measurement that says so).
    GlucoseMeasurementContext,
    /// 0x2A52, the Glucose service's Record Access Control Point.
    RecordAccessControlPoint,
    /// 0x2AA7, in the Continuous Glucose Monitoring service.
    CgmMeasurement,
    /// 0x2A35, in the Blood Pressure service.
    BloodPressureMeasurement,
    /// 0x2A37, in the Heart Rate service.
    HeartRateMeasurement,
    /// 0x2A9D, in the Weight Scale service.
    WeightMeasurement,
    /// 0x2A1C, in the Health Thermometer service.
    TemperatureMeasurement,
    /// 0x2A5E, in the Pulse Oximeter service.
    PlxSpotCheckMeasurement,
    /// 0x2A5F, in the Pulse Oximeter service.
    PlxContinuousMeasurement,
    /// 0x2AA9, in the CGM service (read).
    CgmStatus,
    /// 0x2AAA, in the CGM service (read).
    CgmSessionStartTime,
    /// 0x2AAB, in the CGM service (read).
    CgmSessionRunTime,
}

impl Characteristic {
    /// Every characteristic the crate handles.
    pub const ALL: [Characteristic; 13] = [
        Characteristic::GlucoseMeasurement,
        Characteristic::GlucoseMeasurementContext,
        Characteristic::RecordAccessControlPoint,
        Characteristic::CgmMeasurement,
        Characteristic::BloodPressureMeasurement,
        Characteristic::HeartRateMeasurement,
        Characteristic::WeightMeasurement,
        Characteristic::TemperatureMeasurement,
        Characteristic::PlxSpotCheckMeasurement,
        Characteristic::PlxContinuousMeasurement,
        Characteristic::CgmStatus,
        Characteristic::CgmSessionStartTime,
        Characteristic::CgmSessionRunTime,
    ];

    /// Read at connect rather than subscribed to.
    pub const fn is_read(self) -> bool {
        matches!(
            self,
            Characteristic::CgmStatus
                | Characteristic::CgmSessionStartTime
                | Characteristic::CgmSessionRunTime
        )
    }

    /// The 16-bit assigned number.
    pub const fn assigned_number(self) -> u16 {
        match self {
            Characteristic::GlucoseMeasurement => 0x2A18,
            Characteristic::GlucoseMeasurementContext => 0x2A34,
            Characteristic::RecordAccessControlPoint => 0x2A52,
            Characteristic::CgmMeasurement => 0x2AA7,
            Characteristic::BloodPressureMeasurement => 0x2A35,
            Characteristic::HeartRateMeasurement => 0x2A37,
            Characteristic::WeightMeasurement => 0x2A9D,
            Characteristic::TemperatureMeasurement => 0x2A1C,
            Characteristic::PlxSpotCheckMeasurement => 0x2A5E,
            Characteristic::PlxContinuousMeasurement => 0x2A5F,
            Characteristic::CgmStatus => 0x2AA9,
            Characteristic::CgmSessionStartTime => 0x2AAA,
            Characteristic::CgmSessionRunTime => 0x2AAB,
        }
    }

    /// The full 128-bit UUID.
    pub const fn uuid(self) -> Uuid {
        sig_uuid(self.assigned_number())
    }

    /// The characteristic with this UUID, if the crate handles it.
    pub fn from_uuid(uuid: Uuid) -> Option<Characteristic> {
        Characteristic::ALL.into_iter().find(|c| c.uuid() == uuid)
    }
}

/// A parsed reading, units as the device sent them.
#[derive(Debug, Clone, PartialEq)]
pub enum Measurement {
    /// A glucometer record.
    Glucose(glucose::GlucoseMeasurement),
    /// One CGM record.
    Cgm(cgm::CgmMeasurement),
    /// A cuff reading.
    BloodPressure(blood_pressure::BloodPressureMeasurement),
    /// A heart-rate notification.
    HeartRate(heart_rate::HeartRateMeasurement),
    /// A scale reading.
    Weight(weight::WeightMeasurement),
    /// A thermometer reading.
    Temperature(temperature::TemperatureMeasurement),
    /// An oximeter spot check.
    PlxSpotCheck(plx::PlxSpotCheck),
    /// A continuous oximetry notification.
    PlxContinuous(plx_continuous::PlxContinuous),
    /// The context (meal, carbohydrate, exercise, medication, HbA1c) of a
    /// glucometer record sent just before, by sequence number.
    GlucoseContext(glucose_context::GlucoseContext),
}

/// Parses a notification of a measurement characteristic into its readings
/// (several for a CGM notification that packs records together; none for
/// the RACP, which is not a measurement — use
/// [`crate::profiles::racp::parse_response`]).
pub fn parse_measurement(
    characteristic: Characteristic,
    frame: &[u8],
) -> Result<Vec<Measurement>, ParseError> {
    parse_measurement_with(characteristic, frame, StatusOrder::Sig)
}

/// [`parse_measurement`] for a CGM that writes its status octets in
/// `cgm_status_order` (a per-device quirk).
pub fn parse_measurement_with(
    characteristic: Characteristic,
    frame: &[u8],
    cgm_status_order: StatusOrder,
) -> Result<Vec<Measurement>, ParseError> {
    Ok(match characteristic {
        Characteristic::GlucoseMeasurement => vec![Measurement::Glucose(glucose::parse(frame)?)],
        Characteristic::GlucoseMeasurementContext => {
            vec![Measurement::GlucoseContext(glucose_context::parse(frame)?)]
        }
        Characteristic::CgmMeasurement => cgm::parse_with(frame, cgm_status_order)?
            .into_iter()
            .map(Measurement::Cgm)
            .collect(),
        Characteristic::BloodPressureMeasurement => {
            vec![Measurement::BloodPressure(blood_pressure::parse(frame)?)]
        }
        Characteristic::HeartRateMeasurement => {
            vec![Measurement::HeartRate(heart_rate::parse(frame)?)]
        }
        Characteristic::WeightMeasurement => vec![Measurement::Weight(weight::parse(frame)?)],
        Characteristic::TemperatureMeasurement => {
            vec![Measurement::Temperature(temperature::parse(frame)?)]
        }
        Characteristic::PlxSpotCheckMeasurement => {
            vec![Measurement::PlxSpotCheck(plx::parse(frame)?)]
        }
        Characteristic::PlxContinuousMeasurement => {
            vec![Measurement::PlxContinuous(plx_continuous::parse(frame)?)]
        }
        Characteristic::RecordAccessControlPoint
        | Characteristic::CgmStatus
        | Characteristic::CgmSessionStartTime
        | Characteristic::CgmSessionRunTime => Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_round_trip() {
        assert_eq!(
            Characteristic::GlucoseMeasurement.uuid().to_string(),
            "00002a18-0000-1000-8000-00805f9b34fb"
        );
        assert_eq!(
            GLUCOSE_SERVICE.to_string(),
            "00001808-0000-1000-8000-00805f9b34fb"
        );
        for c in Characteristic::ALL {
            assert_eq!(Characteristic::from_uuid(c.uuid()), Some(c));
        }
        assert_eq!(
            Characteristic::from_uuid(sig_uuid(0x2A19)),
            None,
            "battery level"
        );
    }

    #[test]
    fn dispatches_to_the_right_parser() {
        let hr =
            parse_measurement(Characteristic::HeartRateMeasurement, &[0x00, 0x48]).expect("valid");
        assert!(matches!(&hr[..], [Measurement::HeartRate(m)] if m.bpm == 72));
        let err = parse_measurement(Characteristic::GlucoseMeasurement, &[0x00, 0x48])
            .expect_err("short");
        assert_eq!(err.profile, crate::profiles::Profile::Glucose);
        assert!(
            parse_measurement(Characteristic::RecordAccessControlPoint, &[0x06])
                .expect("no-op")
                .is_empty()
        );
    }
}
