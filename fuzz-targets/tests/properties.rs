//! Properties of the parsers, by proptest: no input makes one panic, and
//! what the encoders (simulated devices) write parses back to what they
//! meant.

use bytes::BytesMut;
use glyco_ble::ieee11073::MedFloat;
use glyco_ble::profiles::{blood_pressure, cgm, glucose};
use glyco_ble::testing::frames;
use glyco_contracts::DeviceIdentity;
use glyco_fuzz_targets::{MAX_PACKET, NOW_MS, Target, run};
use glyco_gateway::mqtt::{framing, wire};
use glyco_gateway::reading::Measurement;
use glyco_gateway::sim;
use proptest::prelude::*;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{Packet, Protocol, Publish};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_parser_panics_on_any_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        for target in Target::ALL {
            run(target, &data);
        }
    }

    #[test]
    fn a_glucose_record_parses_back(seq: u16, minutes in 0u64..525_600, mg_dl in 20i16..=600) {
        let time = frames::utc_minutes_ago(minutes);
        let m = glucose::parse(&frames::glucose_record(seq, time, mg_dl)).unwrap();
        prop_assert_eq!(m.sequence_number, seq);
        prop_assert_eq!(m.base_time, time);
        let kg_per_l = m.concentration.unwrap().value.finite().unwrap();
        prop_assert!((kg_per_l * 1e5 - f64::from(mg_dl)).abs() < 1e-6);
    }

    #[test]
    fn a_cgm_record_parses_back(mg_dl in 20i16..=600, offset: u16) {
        let records = cgm::parse(&frames::cgm_record(mg_dl, offset)).unwrap();
        prop_assert_eq!(records.len(), 1);
        prop_assert_eq!(records[0].glucose_mg_dl, MedFloat::Finite(f64::from(mg_dl)));
        prop_assert_eq!(records[0].time_offset_minutes, offset);
    }

    #[test]
    fn a_cuff_reading_parses_back(sys in 60i16..300, dia in 30i16..200, map in 40i16..250, pulse in 20i16..300) {
        let m = blood_pressure::parse(&frames::blood_pressure(sys, dia, map, pulse)).unwrap();
        prop_assert_eq!(m.systolic, MedFloat::Finite(f64::from(sys)));
        prop_assert_eq!(m.diastolic, MedFloat::Finite(f64::from(dia)));
        prop_assert_eq!(m.pulse_rate_bpm, Some(MedFloat::Finite(f64::from(pulse))));
    }

    #[test]
    fn a_simulated_payload_parses_back(seq: u64, age_ms in 0i64..86_400_000, tenths in 200u32..6000) {
        let device = DeviceIdentity::name("cgm-1").unwrap();
        let mg_dl = f64::from(tenths) / 10.0;
        let time = NOW_MS - age_ms;
        let reading = wire::parse_reading(&device, &sim::cgm_payload(seq, time, mg_dl), 4096, NOW_MS).unwrap();
        prop_assert_eq!(reading.seq, seq);
        prop_assert_eq!(reading.device_time, Some(time));
        prop_assert_eq!(reading.measurement, Measurement::CgmGlucose { mg_dl });
    }

    #[test]
    fn a_publish_survives_the_gatekeepers_framing(
        topic in "[a-z0-9/]{1,40}",
        payload in proptest::collection::vec(any::<u8>(), 0..4000),
    ) {
        let mut stream = BytesMut::new();
        let connect = [0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 0];
        stream.extend_from_slice(&connect);
        let publish = Publish::new(topic.clone().into_bytes(), payload.clone(), false);
        V4.write(Packet::Publish(publish, None), &mut stream).unwrap();
        let packets = framing::packets(&stream, MAX_PACKET);
        prop_assert_eq!(packets.len(), 2);
        match &packets[1] {
            Ok(Packet::Publish(p, _)) => {
                prop_assert_eq!(p.topic.as_ref(), topic.as_bytes());
                prop_assert_eq!(p.payload.as_ref(), payload.as_slice());
            }
            other => prop_assert!(false, "{other:?}"),
        }
    }
}
