//! BLE end to end: the real `glyco-hub` binary against a real dbus-daemon
//! with a mock BlueZ (python3-dbusmock), a real anvil chain, and simulated
//! bonded devices — a glucometer with stored records, a CGM, and a bonded
//! glucometer the patient never registered. Each test runs in a child
//! process with its own private system bus (`with_mock_bluez`); the hub it
//! starts inherits `DBUS_SYSTEM_BUS_ADDRESS`.

mod support;

use std::time::Duration;

use glyco_ble::testing::{MockBluez, frames, with_mock_bluez};
use glyco_contracts::{DeviceIdentity, DeviceKind};
use glyco_gateway::reading::{Measurement, SeqOrigin, Transport};
use glyco_gateway::registry::Standing;
use glyco_gateway::status::StatusReport;
use support::HubWorld;

const METER: &str = "C0:26:DA:01:02:03";
const CGM: &str = "C0:26:DA:0A:0B:0C";
const STRANGER: &str = "C0:26:DA:99:99:99";

/// A glucometer record `minutes_ago` minutes old.
fn record(seq: u16, minutes_ago: u64, mg_dl: i16) -> Vec<u8> {
    frames::glucose_record(seq, frames::utc_minutes_ago(minutes_ago), mg_dl)
}

fn find_device<'a>(
    world: &HubWorld,
    report: &'a StatusReport,
    address: &str,
) -> Option<&'a glyco_gateway::status::DeviceStatus> {
    let id = world.device_id(&DeviceIdentity::ble(address).unwrap());
    report.devices.iter().find(|d| d.device_id == id)
}

fn device_report<'a>(
    world: &HubWorld,
    report: &'a StatusReport,
    address: &str,
) -> &'a glyco_gateway::status::DeviceStatus {
    find_device(world, report, address)
        .unwrap_or_else(|| panic!("{address} not in the status: {report:#?}"))
}

fn last_seq(world: &HubWorld, report: &StatusReport, address: &str) -> Option<u64> {
    find_device(world, report, address)?
        .last_reading
        .as_ref()
        .map(|r| r.seq)
}

fn ble_refusals(report: &StatusReport, reason: &str) -> u64 {
    report
        .refusals
        .iter()
        .filter(|r| r.transport == Transport::Ble && r.reason.as_str() == reason)
        .map(|r| r.count)
        .sum()
}

async fn wait_notifying(mock: &MockBluez, characteristic: &glyco_ble::testing::MockCharacteristic) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !mock.is_notifying(characteristic).unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the hub never subscribed; mock calls:\n{}",
            mock.call_log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn ble_readings_reach_the_journal_and_a_restart_fetches_only_new_records() {
    with_mock_bluez(|mock: MockBluez| async move {
        mock.add_adapter("hci0").unwrap();
        let meter = mock.add_glucometer("hci0", METER).unwrap();
        mock.set_stored_records(
            &meter.device,
            &[record(1, 40, 104), record(2, 30, 131), record(3, 20, 97)],
        )
        .unwrap();
        let cgm = mock.add_cgm("hci0", CGM).unwrap();
        let stranger = mock.add_glucometer("hci0", STRANGER).unwrap();
        // A control-solution test is among the stranger meter's records.
        let mut control = record(2, 10, 100);
        control[12] = 0x4A;
        mock.set_stored_records(&stranger.device, &[record(1, 15, 150), control])
            .unwrap();

        let mut world = HubWorld::new().await;
        world
            .add_on_chain(&DeviceIdentity::ble(METER).unwrap(), DeviceKind::Glucometer)
            .await;
        world
            .add_on_chain(&DeviceIdentity::ble(CGM).unwrap(), DeviceKind::Cgm)
            .await;
        world.edit_config(|c| c.ble.enabled = true);
        let hub = world.start_hub().await;

        // The meter's stored records arrive through the RACP fetch.
        let report = hub
            .wait_for("the meter's three stored records", |r| {
                last_seq(&world, r, METER) == Some(3)
            })
            .await;
        let last = device_report(&world, &report, METER)
            .last_reading
            .clone()
            .unwrap();
        assert_eq!(last.transport, Transport::Ble);
        assert_eq!(last.seq_origin, SeqOrigin::Device);
        assert!(
            matches!(last.measurement, Measurement::CapillaryGlucose { mg_dl } if (mg_dl - 97.0).abs() < 1e-9),
            "{last:?}"
        );
        assert!(
            device_report(&world, &report, METER).connected,
            "{report:#?}"
        );

        // A live record, then a CGM notification packing the three records
        // the sensor kept while the hub was connecting. (One notification:
        // two in quick succession with offsets 5 minutes apart would tell
        // the hub the sensor's clock ran 5 minutes in a moment.)
        wait_notifying(&mock, &meter.measurement).await;
        assert!(mock.notify(&meter.measurement, &record(4, 1, 88)).unwrap());
        wait_notifying(&mock, &cgm.measurement).await;
        let mut packed = frames::cgm_record(142, 600);
        packed.extend(frames::cgm_record(139, 605));
        packed.extend(frames::cgm_record(135, 610));
        assert!(mock.notify(&cgm.measurement, &packed).unwrap());
        let report = hub
            .wait_for("the live glucose record and three CGM readings", |r| {
                last_seq(&world, r, METER) == Some(4) && r.readings_stored == 7
            })
            .await;
        let cgm_last = device_report(&world, &report, CGM)
            .last_reading
            .clone()
            .unwrap();
        assert_eq!(
            cgm_last.measurement,
            Measurement::CgmGlucose { mg_dl: 135.0 }
        );

        // A truncated CGM frame and a NaN glucose value: refused, counted,
        // and the sessions go on.
        assert!(mock.notify(&cgm.measurement, &[0x06, 0x00, 0x8e]).unwrap());
        let mut nan = record(5, 0, 100);
        nan[10..12].copy_from_slice(&0x07FFu16.to_le_bytes());
        assert!(mock.notify(&meter.measurement, &nan).unwrap());
        let report = hub
            .wait_for(
                "the malformed frame, the NaN and the control test counted",
                |r| {
                    ble_refusals(r, "malformed_frame") == 1
                        && ble_refusals(r, "invalid_reading") == 2
                },
            )
            .await;
        // The bonded but unregistered meter's record never got in.
        assert!(ble_refusals(&report, "unregistered") >= 1, "{report:#?}");
        assert_eq!(report.readings_stored, 7);
        // Packed CGM records keep distinct times (5 minutes apart), so the
        // monitor takes every reading and sees no clock jump.
        let report = hub
            .wait_for("every stored reading analysed", |r| {
                r.analysis.readings_analysed == 7
            })
            .await;
        assert_eq!(report.analysis.errors, 0, "{:#?}", report.analysis);
        // The BLE devices' sessions and readings reach their behaviour
        // models (the unregistered meter's refusal has none).
        assert!(report.node_watch.devices >= 2, "{:?}", report.node_watch);
        assert!(
            report.node_watch.observations >= 9,
            "{:?}",
            report.node_watch
        );
        assert!(
            !report
                .analysis
                .counts
                .iter()
                .any(|(kind, _, _)| kind.contains("clock")),
            "{:#?}",
            report.analysis
        );
        let cgm_time = cgm_last.device_time.expect("CGM records are dated");
        assert!(
            cgm_time <= cgm_last.received_at && cgm_last.received_at - cgm_time < 60_000,
            "the newest CGM record is dated about when it arrived: {cgm_last:?}"
        );
        assert!(hub.log_text().contains("refused"), "refusals are logged");

        // The patient registers the stranger meter after all. At its next
        // connection the record it was refused for is asked for again and
        // gets in: what the hub never stored is never held back.
        world
            .add_on_chain(
                &DeviceIdentity::ble(STRANGER).unwrap(),
                DeviceKind::Glucometer,
            )
            .await;
        hub.wait_for("the stranger registered in the mirror", |r| {
            find_device(&world, r, STRANGER).is_some_and(|d| d.standing == Standing::Registered)
        })
        .await;
        mock.set_reachable(&stranger.device, false).unwrap();
        hub.wait_for("the stranger out of range", |r| {
            find_device(&world, r, STRANGER).is_some_and(|d| !d.connected)
        })
        .await;
        mock.set_reachable(&stranger.device, true).unwrap();
        let report = hub
            .wait_for("the stranger's record after its reconnect", |r| {
                last_seq(&world, r, STRANGER) == Some(1)
            })
            .await;
        assert_eq!(report.readings_stored, 8);
        // The control test came again with it, and was not counted again.
        assert_eq!(ble_refusals(&report, "invalid_reading"), 2, "{report:#?}");

        // SIGKILL. While the hub is down the meter takes two more readings.
        hub.kill().await;
        mock.set_reachable(&meter.device, false).unwrap();
        mock.set_stored_records(
            &meter.device,
            &[
                record(1, 40, 104),
                record(2, 30, 131),
                record(3, 20, 97),
                record(4, 1, 88),
                record(6, 1, 120),
                record(7, 0, 126),
            ],
        )
        .unwrap();
        mock.set_reachable(&meter.device, true).unwrap();
        let hub = world.start_hub().await;
        let report = hub
            .wait_for("only the two new records after the restart", |r| {
                last_seq(&world, r, METER) == Some(7)
            })
            .await;
        assert_eq!(report.readings_stored, 10, "nothing stored twice");
        // The anomaly monitors got their history back from the journal.
        assert!(hub.log_text().contains("replayed=8"), "{}", hub.log_text());
        let requests = mock.racp_requests(&meter.device).unwrap();
        assert_eq!(
            requests.last().unwrap(),
            &vec![0x01, 0x03, 0x01, 0x05, 0x00],
            "the restarted hub asks for records from 5 on (after the journal's 4): {requests:x?}"
        );
        assert_eq!(
            requests.first().unwrap(),
            &vec![0x01, 0x01],
            "the first connection asked for all records"
        );
        let status = hub.terminate().await;
        assert!(status.success(), "{status:?}");
    });
}

#[test]
fn the_hub_follows_the_adapter_as_it_appears_disappears_and_returns() {
    with_mock_bluez(|mock: MockBluez| async move {
        let mut world = HubWorld::new().await;
        world
            .add_on_chain(&DeviceIdentity::ble(METER).unwrap(), DeviceKind::Glucometer)
            .await;
        world.edit_config(|c| c.ble.enabled = true);
        // A dongle with a bonded meter, unplugged: BlueZ brings the meter
        // back from its storage, whole, when the dongle returns. (Built
        // here rather than while the hub watches, which would let the hub
        // look at a meter whose services are still being added.)
        mock.add_adapter("hci0").unwrap();
        let meter = mock.add_glucometer("hci0", METER).unwrap();
        mock.set_stored_records(&meter.device, &[record(1, 10, 101)])
            .unwrap();
        mock.remove_adapter("hci0").unwrap();
        // No adapter yet: the hub runs (MQTT serves) and waits for one.
        let hub = world.start_hub().await;
        let report = hub.wait_for("the hub's status", |r| r.ble.enabled).await;
        assert!(!report.ble.state.contains("ready"), "{}", report.ble.state);

        mock.restore_adapter("hci0").unwrap();
        hub.wait_for("the adapter's first record", |r| {
            r.ble.state.contains("adapter hci0 ready") && last_seq(&world, r, METER) == Some(1)
        })
        .await;

        mock.remove_adapter("hci0").unwrap();
        hub.wait_for("the adapter reported lost", |r| {
            r.ble.state.contains("lost")
        })
        .await;
        // The meter records while the adapter is gone.
        mock.restore_adapter("hci0").unwrap();
        let meter_path = meter.device.clone();
        mock.set_stored_records(&meter_path, &[record(1, 10, 101), record(2, 1, 109)])
            .unwrap();
        let report = hub
            .wait_for("the record kept while the adapter was away", |r| {
                last_seq(&world, r, METER) == Some(2)
            })
            .await;
        assert_eq!(report.readings_stored, 2);
        assert!(
            report.ble.state.contains("adapter hci0 ready"),
            "{}",
            report.ble.state
        );
        assert!(hub.terminate().await.success());
    });
}

/// A glucometer the patient pairs from the Devices page.
const NEW_METER: &str = "00:1A:7D:DA:71:20";
const NEW_METER_PASSKEY: u32 = 314_159;

#[test]
fn a_glucometer_paired_on_the_devices_page_with_its_passkey_is_registered_and_read() {
    with_mock_bluez(|mock: MockBluez| async move {
        use support::web::{Browser, csrf};

        mock.add_adapter("hci0").unwrap();
        let meter = mock
            .add_glucometer_bonded("hci0", NEW_METER, false)
            .unwrap();
        mock.require_passkey(&meter.device, NEW_METER_PASSKEY)
            .unwrap();
        mock.set_stored_records(&meter.device, &[record(1, 30, 121), record(2, 20, 109)])
            .unwrap();
        let mut world = HubWorld::new().await;
        world.edit_config(|c| c.ble.enabled = true);
        world
            .hub_cli_with_input(&["web", "set-pin"], "271828\n")
            .await;
        let hub = world.start_hub().await;
        let report = hub
            .wait_for("the web app", |r| r.web.listen.is_some())
            .await;
        let base = format!("http://{}", report.web.listen.unwrap());
        let mut browser = Browser::new(base.clone());
        browser.sign_in("271828").await;
        let page = browser.get("/devices").await.text().await.unwrap();
        assert!(page.contains("Pair a Bluetooth device"), "{page}");
        let token = csrf(&page);

        // The scan lists the meter in pairing mode.
        let found = browser
            .post(
                "/devices/bluetooth/scan",
                &[("csrf", &token), ("seconds", "1")],
                Some(&base),
            )
            .await;
        assert_eq!(found.status(), 200);
        let found = found.text().await.unwrap();
        assert!(found.contains(NEW_METER), "{found}");
        let pair = |passkey: &'static str| {
            let (browser, token, base) = (&browser, token.clone(), base.clone());
            async move {
                let response = browser
                    .post(
                        "/devices/bluetooth/pair",
                        &[
                            ("csrf", &token),
                            ("address", NEW_METER),
                            ("kind", "glucometer"),
                            ("passkey", passkey),
                        ],
                        Some(&base),
                    )
                    .await;
                (response.status(), response.text().await.unwrap())
            }
        };
        let identity = DeviceIdentity::ble(NEW_METER).unwrap();
        let id = world.device_id(&identity);
        let on_chain = || async {
            world
                .client(glyco_contracts::testkit::accounts::PATIENT)
                .device_of(id)
                .await
                .unwrap()
                .is_some_and(|d| d.active)
        };

        // A passkey that is not six digits never reaches BlueZ; a wrong one
        // is refused by the device: not bonded, not on chain.
        let (status, _) = pair("31415").await;
        assert_eq!(status, 400);
        let (status, text) = pair("000000").await;
        assert_eq!(status, 502, "{text}");
        assert!(text.contains("not paired"), "{text}");
        assert!(!mock.is_paired(&meter.device).unwrap());
        assert!(!on_chain().await);

        // The passkey the meter shows: bonded through the hub's agent,
        // registered on chain, then admitted and read like any bonded meter.
        let (status, text) = pair("314159").await;
        assert_eq!(status, 200, "{text}");
        assert!(
            text.contains(&format!("Paired and registered: {identity}")),
            "{text}"
        );
        assert!(mock.is_paired(&meter.device).unwrap());
        assert!(on_chain().await);
        let report = hub
            .wait_for("the paired meter's stored records", |r| {
                last_seq(&world, r, NEW_METER) == Some(2)
            })
            .await;
        assert_eq!(
            device_report(&world, &report, NEW_METER).kind,
            Some(DeviceKind::Glucometer)
        );

        // Removed on the page: off the chain, and the bond forgotten.
        let removed = browser
            .post(
                "/devices/remove",
                &[("csrf", &token), ("identity", &identity.to_string())],
                Some(&base),
            )
            .await;
        assert_eq!(removed.status(), 303);
        assert!(!on_chain().await);
        let actions = browser.get("/hub").await.text().await.unwrap();
        assert!(actions.contains("bond forgotten"), "{actions}");
        assert!(
            mock.is_paired(&meter.device).is_err(),
            "BlueZ's device object is gone with the bond"
        );
        assert_eq!(hub.terminate().await.code(), Some(0));
    });
}
