//! The BLE sessions against a real dbus-daemon with a mock BlueZ
//! (python3-dbusmock), bluer talking to it as it would to bluetoothd.
//! Each test runs in its own child process with its own bus; see
//! `glyco_ble::testing`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, SystemTime};

use glyco_ble::profiles::racp::{RacpRequest, RacpResponse, RacpResponseCode, RecordFilter};
use glyco_ble::testing::{AddressKind, MockBluez, frames, with_mock_bluez};
use glyco_ble::{
    BackoffPolicy, BdAddr, BleConfig, BleCounters, BleError, BleEvent, Characteristic,
    DisconnectReason, GLUCOSE_SERVICE, Identity, IdentityKind, Measurement, ParseErrorKind,
    Profile, SkipReason, sig_uuid,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

const METER: &str = "00:1A:7D:DA:71:13";
const WAIT: Duration = Duration::from_secs(20);

fn addr(s: &str) -> BdAddr {
    s.parse().expect("valid address")
}

fn public(s: &str) -> Identity {
    Identity {
        address: addr(s),
        kind: IdentityKind::Public,
    }
}

fn test_config() -> BleConfig {
    BleConfig {
        backoff: BackoffPolicy {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(160),
            multiplier: 2,
            jitter: 0.5,
            stable_after: Duration::from_secs(30),
        },
        connect_timeout: Duration::from_secs(5),
        setup_timeout: Duration::from_secs(5),
        racp_timeout: Duration::from_secs(5),
        ..BleConfig::default()
    }
}

/// The hub's side for a test: the event stream, its cursor, the task.
struct Hub {
    rx: mpsc::Receiver<BleEvent>,
    /// Received and not yet claimed by a wait, in arrival order.
    pending: VecDeque<BleEvent>,
    /// Everything received, for final checks and failure messages.
    seen: Vec<BleEvent>,
    cursor: Arc<Mutex<HashMap<BdAddr, u16>>>,
    counters: Arc<BleCounters>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), BleError>>,
}

impl Hub {
    fn start(config: BleConfig) -> Hub {
        let (tx, rx) = mpsc::channel(64);
        let cursor: Arc<Mutex<HashMap<BdAddr, u16>>> = Arc::default();
        let lookup = cursor.clone();
        let counters = Arc::new(BleCounters::default());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(glyco_ble::run(
            config,
            Arc::new(move |id: &Identity| lookup.lock().get(&id.address).copied()),
            tx,
            counters.clone(),
            shutdown.clone(),
        ));
        Hub {
            rx,
            pending: VecDeque::new(),
            seen: Vec::new(),
            cursor,
            counters,
            shutdown,
            task,
        }
    }

    /// Claims the first event `pick` accepts that no earlier wait claimed
    /// (so waits for different devices may come in any order), receiving
    /// more as needed.
    async fn until<T>(&mut self, what: &str, mut pick: impl FnMut(&BleEvent) -> Option<T>) -> T {
        for i in 0..self.pending.len() {
            if let Some(t) = pick(&self.pending[i]) {
                self.pending.remove(i);
                return t;
            }
        }
        let deadline = Instant::now() + WAIT;
        loop {
            match timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(event)) => {
                    self.seen.push(event.clone());
                    match pick(&event) {
                        Some(t) => return t,
                        None => self.pending.push_back(event),
                    }
                }
                Ok(None) => panic!(
                    "event channel closed while waiting for {what}; seen: {:#?}",
                    self.seen
                ),
                Err(_) => panic!("no {what} within {WAIT:?}; seen: {:#?}", self.seen),
            }
        }
    }

    async fn subscribed(&mut self, who: Identity) -> Vec<Characteristic> {
        self.until("Subscribed", |e| match e {
            BleEvent::Subscribed {
                identity,
                characteristics,
            } if *identity == who => Some(characteristics.clone()),
            _ => None,
        })
        .await
    }

    /// Waits until each of `who` has subscribed, in whatever order.
    async fn all_subscribed(&mut self, who: &[Identity]) -> HashMap<Identity, Vec<Characteristic>> {
        let mut got = HashMap::new();
        for id in who {
            got.insert(*id, self.subscribed(*id).await);
        }
        got
    }

    async fn measurement(&mut self, who: Identity) -> Measurement {
        self.dated_measurement(who).await.0
    }

    /// A measurement with the time the session dated it at, if any.
    async fn dated_measurement(&mut self, who: Identity) -> (Measurement, Option<SystemTime>) {
        self.until("a measurement", |e| match e {
            BleEvent::Measurement {
                identity,
                measurement,
                measured_at,
                ..
            } if *identity == who => Some((measurement.clone(), *measured_at)),
            _ => None,
        })
        .await
    }

    async fn racp_completed(&mut self, who: Identity) -> RacpResponse {
        self.until("RACP completion", |e| match e {
            BleEvent::RacpCompleted { identity, response } if *identity == who => Some(*response),
            _ => None,
        })
        .await
    }

    /// Stops the sessions and returns what `run` returned.
    async fn stop(mut self) -> (Result<(), BleError>, Vec<BleEvent>) {
        self.shutdown.cancel();
        let result = self.task.await.expect("run task");
        while let Ok(event) = self.rx.try_recv() {
            self.seen.push(event);
        }
        (result, self.seen)
    }
}

fn glucose_sequence(m: &Measurement) -> u16 {
    match m {
        Measurement::Glucose(g) => g.sequence_number,
        other => panic!("expected a glucose record, got {other:?}"),
    }
}

#[test]
fn glucometer_and_cgm_readings_reach_the_channel_with_their_identities() {
    with_mock_bluez(|mock: MockBluez| async move {
        mock.add_adapter("hci0").expect("adapter");
        let meter = mock.add_glucometer("hci0", METER).expect("glucometer");
        // The CGM has a static random identity address (top bits 0b11).
        let cgm_addr = "C3:55:00:00:10:01";
        let cgm = mock
            .add_device("hci0", cgm_addr, AddressKind::Random, true)
            .expect("cgm");
        let service = mock
            .add_service(&cgm, sig_uuid(0x181F), 0x0020)
            .expect("cgm service");
        let cgm_meas = mock
            .add_characteristic(
                &service,
                Characteristic::CgmMeasurement.uuid(),
                0x0021,
                &["notify"],
            )
            .expect("cgm measurement");
        // Never served: a bonded device known only by an unresolved
        // private address, and a device that is not bonded at all.
        let rpa = "4A:00:00:00:00:07";
        mock.add_device("hci0", rpa, AddressKind::Random, true)
            .expect("rpa device");
        let stranger = mock
            .add_device("hci0", "00:1A:7D:00:00:98", AddressKind::Public, false)
            .expect("unpaired");
        let stranger_service = mock
            .add_service(&stranger, sig_uuid(0x181F), 0x0020)
            .expect("service");
        mock.add_characteristic(
            &stranger_service,
            Characteristic::CgmMeasurement.uuid(),
            0x0021,
            &["notify"],
        )
        .expect("characteristic");

        // Bonded but no health device: a keyboard (HID service only) is
        // never connected; a device that lists Heart Rate but offers no
        // characteristic to subscribe to is connected once, then left alone.
        let keyboard = mock
            .add_device("hci0", "00:1A:7D:00:00:50", AddressKind::Public, true)
            .expect("keyboard");
        mock.add_service(&keyboard, sig_uuid(0x1812), 0x0030)
            .expect("HID service");
        let odd = mock
            .add_device("hci0", "00:1A:7D:00:00:51", AddressKind::Public, true)
            .expect("odd device");
        let odd_service = mock
            .add_service(&odd, sig_uuid(0x180D), 0x0040)
            .expect("HR service");
        mock.add_characteristic(
            &odd_service,
            Characteristic::HeartRateMeasurement.uuid(),
            0x0041,
            &["read"],
        )
        .expect("read-only HR");

        let meter_id = public(METER);
        let cgm_id = Identity {
            address: addr(cgm_addr),
            kind: IdentityKind::StaticRandom,
        };
        // Frequent rescans, so that the check below also covers "not
        // restarted by a rescan".
        let mut hub = Hub::start(BleConfig {
            allow: None,
            rescan_interval: Duration::from_millis(50),
            ..test_config()
        });

        let subscribed = hub.all_subscribed(&[meter_id, cgm_id]).await;
        assert_eq!(
            subscribed[&meter_id],
            [
                Characteristic::GlucoseMeasurement,
                Characteristic::GlucoseMeasurementContext,
                Characteristic::RecordAccessControlPoint
            ]
        );
        assert_eq!(subscribed[&cgm_id], [Characteristic::CgmMeasurement]);
        // First contact: the hub has no cursor, so all stored records are
        // asked for; this meter has none.
        assert_eq!(
            hub.racp_completed(meter_id).await,
            RacpResponse::ResponseCode {
                request_op_code: 0x01,
                code: RacpResponseCode::NoRecordsFound
            }
        );

        // A finger-stick of 95 mg/dL (sent as 95 × 10⁻⁵ kg/L).
        assert!(
            mock.notify(
                &meter.measurement,
                &frames::glucose_record(1, frames::TIME, 95)
            )
            .expect("notify")
        );
        match hub.measurement(meter_id).await {
            Measurement::Glucose(g) => {
                assert_eq!(g.sequence_number, 1);
                assert_eq!(
                    g.concentration.and_then(|c| c.value.finite()),
                    Some(0.00095)
                );
            }
            other => panic!("expected glucose, got {other:?}"),
        }

        // Two CGM records packed in one notification.
        let mut packed = frames::cgm_record(140, 5);
        packed.extend(frames::cgm_record(137, 10));
        assert!(mock.notify(&cgm_meas, &packed).expect("notify"));
        let mut dated = Vec::new();
        for (mg_dl, minute) in [(140.0, 5), (137.0, 10)] {
            match hub.dated_measurement(cgm_id).await {
                (Measurement::Cgm(c), Some(at)) => {
                    assert_eq!(c.glucose_mg_dl.finite(), Some(mg_dl));
                    assert_eq!(c.time_offset_minutes, minute);
                    dated.push(at);
                }
                other => panic!("expected a dated CGM record, got {other:?}"),
            }
        }
        assert_eq!(
            dated[1].duration_since(dated[0]).ok(),
            Some(Duration::from_secs(300)),
            "packed records keep their own times"
        );

        for (who, reason) in [
            (rpa, SkipReason::UnresolvedPrivateAddress),
            ("00:1A:7D:00:00:50", SkipReason::NoSupportedService),
            ("00:1A:7D:00:00:51", SkipReason::NoSupportedService),
        ] {
            let skipped = BleEvent::DeviceSkipped {
                address: addr(who),
                reason,
            };
            hub.until("the skipped device", |e| (*e == skipped).then_some(()))
                .await;
        }
        // Several backoff periods and rescans later, the device without a
        // health characteristic has still been tried only once.
        tokio::time::sleep(Duration::from_millis(300)).await;

        let counters = hub.counters.snapshot();
        let (result, seen) = hub.stop().await;
        assert_eq!(result, Ok(()));
        assert_eq!(counters.measurements, 3);
        assert_eq!(counters.skipped_devices, 3);
        let odd_id = public("00:1A:7D:00:00:51");
        for event in &seen {
            if let Some(identity) = event.identity() {
                assert!(
                    *identity == meter_id || *identity == cgm_id || *identity == odd_id,
                    "only bonded identities are served, got {event:?}"
                );
            }
        }
        assert_eq!(
            mock.connect_attempts(&stranger).expect("attempts"),
            0,
            "not bonded"
        );
        assert_eq!(
            mock.connect_attempts(&keyboard).expect("attempts"),
            0,
            "no health service"
        );
        assert_eq!(
            mock.connect_attempts(&odd).expect("attempts"),
            1,
            "tried once, not retried"
        );
        // Graceful shutdown says goodbye for each connected device.
        for id in [meter_id, cgm_id] {
            assert!(seen.contains(&BleEvent::Disconnected {
                identity: id,
                reason: DisconnectReason::Shutdown
            }));
        }
    });
}

#[test]
fn stored_records_are_fetched_from_the_cursor_after_a_reconnect_and_repeats_dropped_within_one() {
    with_mock_bluez(|mock: MockBluez| async move {
        mock.add_adapter("hci0").expect("adapter");
        let meter = mock.add_glucometer("hci0", METER).expect("glucometer");
        let records = |n: u16| -> Vec<Vec<u8>> {
            (1..=n)
                .map(|seq| {
                    frames::glucose_record(seq, frames::time_plus(seq as u8), 90 + seq as i16)
                })
                .collect()
        };
        mock.set_stored_records(&meter.device, &records(3))
            .expect("records");
        let id = public(METER);
        let mut hub = Hub::start(test_config());
        let racp_request = |e: &BleEvent| match e {
            BleEvent::RacpRequested { identity, request } if identity.address == addr(METER) => {
                Some(*request)
            }
            _ => None,
        };
        // No cursor yet: everything the meter stored.
        assert_eq!(
            hub.until("the first RACP request", racp_request).await,
            RacpRequest::ReportStoredRecords(RecordFilter::All)
        );

        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(glucose_sequence(&hub.measurement(id).await));
        }
        assert_eq!(got, [1, 2, 3]);
        assert!(matches!(
            hub.racp_completed(id).await,
            RacpResponse::ResponseCode {
                code: RacpResponseCode::Success,
                ..
            }
        ));

        // The hub's journal has stored only up to 2 when the link drops
        // (record 3 was still in flight), and the meter takes two more
        // readings while out of range.
        hub.cursor.lock().insert(addr(METER), 2);
        mock.set_reachable(&meter.device, false)
            .expect("out of range");
        hub.until("the link loss", |e| {
            matches!(
                e,
                BleEvent::Disconnected {
                    reason: DisconnectReason::LinkLost,
                    ..
                }
            )
            .then_some(())
        })
        .await;
        hub.until("a failed reconnect", |e| {
            matches!(e, BleEvent::ConnectFailed { .. }).then_some(())
        })
        .await;
        mock.set_stored_records(&meter.device, &records(5))
            .expect("records");
        mock.set_reachable(&meter.device, true)
            .expect("back in range");

        // Asked from cursor + 1 = 3: record 3 comes again, and is emitted
        // again (the hub had not stored it; its journal tells a duplicate).
        assert_eq!(
            hub.until("the RACP request after the reconnect", racp_request)
                .await,
            RacpRequest::ReportStoredRecords(RecordFilter::SequenceAtLeast(3))
        );
        for _ in 0..3 {
            got.push(glucose_sequence(&hub.measurement(id).await));
        }
        assert!(matches!(
            hub.racp_completed(id).await,
            RacpResponse::ResponseCode {
                code: RacpResponseCode::Success,
                ..
            }
        ));
        assert_eq!(got, [1, 2, 3, 3, 4, 5], "nothing unstored is held back");

        // Within one connection a repeat is dropped: the meter notifies
        // record 5 again.
        assert!(
            mock.notify(&meter.measurement, &records(5)[4])
                .expect("notify")
        );
        hub.until("the repeat dropped", |e| {
            (*e == BleEvent::DuplicateDropped {
                identity: id,
                sequence_number: 5,
            })
            .then_some(())
        })
        .await;

        let counters = hub.counters.snapshot();
        let (result, _) = hub.stop().await;
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(counters.duplicates_dropped, 1);
        assert_eq!(counters.measurements, 6);
        assert_eq!(
            mock.racp_requests(&meter.device).expect("requests"),
            [vec![0x01, 0x01], vec![0x01, 0x03, 0x01, 0x03, 0x00]],
            "all records first, then >= 3 by sequence number"
        );
    });
}

#[test]
fn a_truncated_frame_is_a_parse_error_and_the_session_goes_on() {
    with_mock_bluez(|mock: MockBluez| async move {
        mock.add_adapter("hci0").expect("adapter");
        let meter = mock.add_glucometer("hci0", METER).expect("glucometer");
        let id = public(METER);
        let mut hub = Hub::start(test_config());
        hub.subscribed(id).await;

        let full = frames::glucose_record(9, frames::TIME, 120);
        let cut = &full[..6];
        assert!(mock.notify(&meter.measurement, cut).expect("notify"));
        let (characteristic, error, frame) = hub
            .until("the parse error", |e| match e {
                BleEvent::ParseError {
                    identity,
                    characteristic,
                    error,
                    frame,
                    ..
                } if *identity == id => Some((*characteristic, error.clone(), frame.clone())),
                _ => None,
            })
            .await;
        assert_eq!(characteristic, Characteristic::GlucoseMeasurement);
        assert_eq!(error.profile, Profile::Glucose);
        assert_eq!(error.offset, 3);
        assert!(matches!(
            error.reason,
            ParseErrorKind::Truncated {
                field: "base time",
                ..
            }
        ));
        assert_eq!(frame, cut);

        // The adapter hears the meter: one signal-strength event, then
        // nothing more within the minute.
        mock.set_rssi(&meter.device, -61).expect("rssi");
        let dbm = hub
            .until("the signal strength", |e| match e {
                BleEvent::SignalStrength { identity, dbm } if *identity == id => Some(*dbm),
                _ => None,
            })
            .await;
        assert_eq!(dbm, -61);
        mock.set_rssi(&meter.device, -70).expect("rssi");

        // Same connection, next frame fine.
        assert!(mock.notify(&meter.measurement, &full).expect("notify"));
        assert_eq!(glucose_sequence(&hub.measurement(id).await), 9);
        let counters = hub.counters.snapshot();
        let (_, seen) = hub.stop().await;
        assert_eq!(counters.parse_errors, 1);
        assert_eq!(
            seen.iter()
                .filter(|e| matches!(e, BleEvent::SignalStrength { .. }))
                .count(),
            1,
            "at most one a minute"
        );
        assert_eq!(
            seen.iter()
                .filter(|e| matches!(e, BleEvent::Connected { .. }))
                .count(),
            1,
            "no reconnect was needed"
        );
    });
}

#[test]
fn the_adapter_disappears_and_returns_and_the_session_resumes() {
    with_mock_bluez(|mock: MockBluez| async move {
        mock.add_adapter("hci0").expect("adapter");
        let meter = mock.add_glucometer("hci0", METER).expect("glucometer");
        let id = public(METER);
        let mut hub = Hub::start(test_config());
        hub.subscribed(id).await;

        mock.remove_adapter("hci0").expect("remove");
        hub.until("the session's end", |e| {
            matches!(
                e,
                BleEvent::Disconnected {
                    reason: DisconnectReason::AdapterLost,
                    ..
                }
            )
            .then_some(())
        })
        .await;
        hub.until("AdapterLost", |e| {
            matches!(e, BleEvent::AdapterLost { .. }).then_some(())
        })
        .await;
        assert!(!mock.is_notifying(&meter.measurement).unwrap_or(false));

        mock.restore_adapter("hci0").expect("restore");
        hub.until("AdapterReturned", |e| {
            matches!(e, BleEvent::AdapterReturned { adapter } if adapter == "hci0").then_some(())
        })
        .await;
        hub.subscribed(id).await;
        assert!(
            mock.notify(
                &meter.measurement,
                &frames::glucose_record(2, frames::TIME, 101)
            )
            .expect("notify")
        );
        assert_eq!(glucose_sequence(&hub.measurement(id).await), 2);

        let counters = hub.counters.snapshot();
        let (result, _) = hub.stop().await;
        assert_eq!(result, Ok(()));
        assert_eq!(counters.adapter_losses, 1);
    });
}

#[test]
fn reconnects_back_off_exponentially_with_jitter() {
    with_mock_bluez(|mock: MockBluez| async move {
        mock.add_adapter("hci0").expect("adapter");
        let meter = mock.add_glucometer("hci0", METER).expect("glucometer");
        mock.set_reachable(&meter.device, false)
            .expect("out of range");
        let id = public(METER);
        let config = test_config();
        let policy = config.backoff;
        let mut hub = Hub::start(config);

        let mut delays = Vec::new();
        while delays.len() < 5 {
            let d = hub
                .until("a scheduled retry", |e| match e {
                    BleEvent::RetryScheduled {
                        identity, delay, ..
                    } if *identity == id => Some(*delay),
                    _ => None,
                })
                .await;
            delays.push(d);
        }
        // Each delay within [(1 − jitter) × step, step] of its step:
        // 20, 40, 80, 160, 160 ms.
        for (n, d) in delays.iter().enumerate() {
            let step = policy.step(n as u32);
            assert!(
                *d <= step && *d >= step.mul_f64(1.0 - policy.jitter),
                "retry {n}: {d:?} outside its jitter range below {step:?}"
            );
        }
        assert!(delays[3] > delays[0], "the delays grow: {delays:?}");
        assert!(mock.connect_attempts(&meter.device).expect("attempts") >= 5);

        mock.set_reachable(&meter.device, true)
            .expect("back in range");
        hub.subscribed(id).await;
        let (_, seen) = hub.stop().await;
        let failures = seen
            .iter()
            .filter(|e| matches!(e, BleEvent::ConnectFailed { identity, .. } if *identity == id))
            .count();
        assert!(
            failures >= 5,
            "each retry followed a failed attempt ({failures})"
        );
    });
}

/// The harness itself must be able to fail: a body that panics in the
/// child fails the test in the parent.
#[test]
#[should_panic(expected = "test child")]
fn a_failing_body_fails_the_test() {
    with_mock_bluez(|mock: MockBluez| async move {
        mock.add_adapter("hci0").expect("adapter");
        panic!("deliberate failure inside the child");
    });
}

/// CGM Session Start Time, in the characteristic's layout, for `start`
/// (UTC: time zone 0, no DST).
fn session_start_frame(start: SystemTime) -> Vec<u8> {
    let mut frame = frames::utc(start).to_bytes().to_vec();
    frame.extend([0, 0]);
    frame
}

#[test]
fn a_cgm_session_start_read_at_connect_dates_its_records_exactly() {
    with_mock_bluez(|mock: MockBluez| async move {
        mock.add_adapter("hci0").expect("adapter");
        let address = "00:1A:7D:DA:71:20";
        let cgm = mock.add_cgm("hci0", address).expect("cgm");
        // The sensor started 90 minutes and 20 seconds ago (whole seconds,
        // as the characteristic carries them); it runs 14 days.
        let now_secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(now_secs - 90 * 60 - 20);
        mock.set_value(&cgm.session_start, &session_start_frame(start))
            .expect("start");
        mock.set_value(&cgm.run_time, &336u16.to_le_bytes())
            .expect("run time");
        // Status: 90 minutes in, nothing to report.
        mock.set_value(&cgm.status, &[90, 0, 0, 0, 0])
            .expect("status");
        let id = public(address);
        let mut hub = Hub::start(test_config());
        hub.subscribed(id).await;
        let session = hub
            .until("the session read", |e| match e {
                BleEvent::CgmSession { identity, session } if *identity == id => Some(*session),
                _ => None,
            })
            .await;
        assert_eq!(session.run_time_hours, Some(336));
        assert_eq!(session.status.map(|s| s.time_offset_minutes), Some(90));
        let reported = session.start.expect("start time");
        assert_eq!(reported.utc_offset_minutes(), Some(0));

        // Two packed records, the newest (minute 90) measured about now.
        let mut frame = frames::cgm_record(121, 85);
        frame.extend(frames::cgm_record(118, 90));
        assert!(mock.notify(&cgm.measurement, &frame).expect("notify"));
        let (_, first) = hub.dated_measurement(id).await;
        let (_, second) = hub.dated_measurement(id).await;
        // Dated on the sensor's own start (to well under a second: the
        // wall and monotonic clocks are read a few microseconds apart); the
        // arrivals alone would have put them about 20 s later.
        let off_by = |dated: Option<SystemTime>, minutes: u64| {
            let expected = start + Duration::from_secs(minutes * 60);
            let dated = dated.expect("dated");
            dated
                .duration_since(expected)
                .unwrap_or_else(|e| e.duration())
        };
        assert!(off_by(first, 85) < Duration::from_millis(500), "{first:?}");
        assert!(
            off_by(second, 90) < Duration::from_millis(500),
            "{second:?}"
        );
        let (result, _) = hub.stop().await;
        result.expect("the sessions end cleanly");
    });
}

#[test]
fn a_cgm_quirk_reads_warning_first_status_octets_for_that_device_only() {
    with_mock_bluez(|mock: MockBluez| async move {
        mock.add_adapter("hci0").expect("adapter");
        let (quirky, regular) = ("00:1A:7D:DA:71:21", "00:1A:7D:DA:71:22");
        let quirky_cgm = mock.add_cgm("hci0", quirky).expect("cgm");
        let regular_cgm = mock.add_cgm("hci0", regular).expect("cgm");
        let mut hub = Hub::start(BleConfig {
            cgm_warning_first: vec![addr(quirky)],
            ..test_config()
        });
        hub.all_subscribed(&[public(quirky), public(regular)]).await;
        // Status and Warning octets present: 0x02 then 0x01.
        let frame = [0x08, 0xA0, 0x46, 0x00, 0x0A, 0x00, 0x02, 0x01];
        for cgm in [&quirky_cgm, &regular_cgm] {
            assert!(mock.notify(&cgm.measurement, &frame).expect("notify"));
        }
        let status = |m: Measurement| match m {
            Measurement::Cgm(c) => c.status,
            other => panic!("{other:?}"),
        };
        let q = status(hub.measurement(public(quirky)).await);
        let r = status(hub.measurement(public(regular)).await);
        assert!(q.session_stopped() && !q.battery_low(), "{q:?}");
        assert!(r.battery_low() && !r.session_stopped(), "{r:?}");
        let (result, _) = hub.stop().await;
        result.expect("the sessions end cleanly");
    });
}

#[test]
fn glucose_context_and_continuous_oximetry_reach_the_channel() {
    with_mock_bluez(|mock: MockBluez| async move {
        mock.add_adapter("hci0").expect("adapter");
        let meter = mock.add_glucometer("hci0", METER).expect("glucometer");
        let oximeter_address = "00:1A:7D:DA:71:30";
        let oximeter = mock
            .add_oximeter("hci0", oximeter_address)
            .expect("oximeter");
        let (meter_id, oximeter_id) = (public(METER), public(oximeter_address));
        let mut hub = Hub::start(test_config());
        let subscribed = hub.all_subscribed(&[meter_id, oximeter_id]).await;
        assert!(subscribed[&meter_id].contains(&Characteristic::GlucoseMeasurementContext));
        assert!(subscribed[&oximeter_id].contains(&Characteristic::PlxContinuousMeasurement));

        // Record 3 says a context follows (flags bit 4); the context: meal 1
        // (preprandial).
        let mut record = frames::glucose_record(3, frames::TIME, 104);
        record[0] |= 0x10;
        assert!(mock.notify(&meter.measurement, &record).expect("notify"));
        assert!(
            mock.notify(&meter.context, &[0x02, 0x03, 0x00, 0x01])
                .expect("notify")
        );
        assert_eq!(glucose_sequence(&hub.measurement(meter_id).await), 3);
        match hub.measurement(meter_id).await {
            Measurement::GlucoseContext(c) => {
                assert_eq!(c.sequence_number, 3);
                assert_eq!(
                    c.meal,
                    Some(glyco_ble::profiles::glucose_context::Meal::Preprandial)
                );
            }
            other => panic!("expected the context, got {other:?}"),
        }

        // SpO2 97 %, pulse 64 bpm.
        let frame = [0x00, 0x61, 0x00, 0x40, 0x00];
        assert!(mock.notify(&oximeter.continuous, &frame).expect("notify"));
        match hub.measurement(oximeter_id).await {
            Measurement::PlxContinuous(m) => {
                assert_eq!(m.spo2_percent.finite(), Some(97.0));
                assert_eq!(m.pulse_rate_bpm.finite(), Some(64.0));
            }
            other => panic!("expected continuous oximetry, got {other:?}"),
        }
        let (result, _) = hub.stop().await;
        result.expect("the sessions end cleanly");
    });
}

#[test]
fn a_device_left_alone_is_looked_at_again_when_bluez_lists_other_services() {
    with_mock_bluez(|mock: MockBluez| async move {
        mock.add_adapter("hci0").expect("adapter");
        let meter = mock.add_glucometer("hci0", METER).expect("glucometer");
        let id = public(METER);
        // BlueZ lists only what the bonding left (a phone's services), not
        // yet the glucose service it will resolve.
        let resolved = mock.listed_services(&meter.device).expect("uuids");
        assert!(resolved.contains(&GLUCOSE_SERVICE), "{resolved:?}");
        let before: Vec<_> = resolved
            .iter()
            .copied()
            .filter(|u| *u != GLUCOSE_SERVICE)
            .collect();
        assert!(!before.is_empty(), "the template lists a phone's services");
        mock.set_listed_services(&meter.device, &before)
            .expect("set uuids");
        let mut hub = Hub::start(BleConfig {
            rescan_interval: Duration::from_millis(50),
            ..test_config()
        });
        let skipped = BleEvent::DeviceSkipped {
            address: addr(METER),
            reason: SkipReason::NoSupportedService,
        };
        hub.until("the meter left alone", |e| (*e == skipped).then_some(()))
            .await;
        // Rescans go by and it stays alone, reported once and never
        // connected, while the list stays the same.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(mock.connect_attempts(&meter.device).unwrap(), 0);
        assert_eq!(hub.counters.snapshot().skipped_devices, 1);

        mock.set_listed_services(&meter.device, &resolved)
            .expect("set uuids");
        hub.subscribed(id).await;
        assert!(
            mock.notify(
                &meter.measurement,
                &frames::glucose_record(1, frames::TIME, 101)
            )
            .expect("notify")
        );
        assert_eq!(glucose_sequence(&hub.measurement(id).await), 1);
        let counters = hub.counters.snapshot();
        let (result, _) = hub.stop().await;
        assert_eq!(result, Ok(()));
        assert_eq!(counters.skipped_devices, 1);
    });
}
