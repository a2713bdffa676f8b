use super::*;
use crate::behaviour::NodeEvent;
use crate::reading::{Measurement, SeqOrigin, Transport};
use glyco_contracts::DeviceIdentity;

fn reading(device: &str, seq: u64, mg_dl: f64, origin: SeqOrigin) -> Reading {
    Reading {
        device: DeviceIdentity::name(device).unwrap(),
        transport: Transport::Mqtt,
        seq,
        seq_origin: origin,
        device_time: Some(1_000),
        received_at: 2_000,
        measurement: Measurement::CgmGlucose { mg_dl },
        reported_unit: "mg/dL".into(),
        flags: vec![],
    }
}

fn open_at(path: &Path) -> (Journal, JournalStore) {
    super::open(path, JournalLimits::default()).unwrap()
}

fn open_temp() -> (tempfile::TempDir, Journal, JournalStore) {
    let dir = tempfile::tempdir().unwrap();
    let (journal, store) = open_at(&dir.path().join("hub.redb"));
    (dir, journal, store)
}

#[test]
fn the_journal_file_is_0600_even_if_it_was_wider() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.redb");
    drop(open_at(&path));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(open_at(&path));
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn recent_readings_are_the_newest_oldest_first() {
    let (_dir, journal, mut store) = open_temp();
    assert!(journal.recent_readings(3).unwrap().is_empty());
    let mut batch: Vec<Reading> = (1..=5)
        .map(|seq| reading("a", seq, 100.0 + seq as f64, SeqOrigin::Device))
        .collect();
    store.append(&mut batch).unwrap();
    let seqs: Vec<u64> = journal
        .recent_readings(3)
        .unwrap()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert_eq!(journal.recent_readings(10).unwrap().len(), 5);
}

#[test]
fn resends_are_duplicates_and_reused_numbers_are_replays() {
    let (_dir, journal, mut store) = open_temp();
    let mut first = [reading("a", 1, 100.0, SeqOrigin::Device)];
    assert_eq!(
        store.append(&mut first).unwrap(),
        vec![AppendOutcome::Stored {
            journal_seq: 1,
            seq: 1
        }]
    );
    // The same reading resent later (another receive time) is a duplicate.
    let mut resend = [Reading {
        received_at: 9_999,
        ..reading("a", 1, 100.0, SeqOrigin::Device)
    }];
    assert_eq!(
        store.append(&mut resend).unwrap(),
        vec![AppendOutcome::Duplicate { journal_seq: 1 }]
    );
    // Same number, different value: a replay. Another device may use it.
    let mut batch = [
        reading("a", 1, 250.0, SeqOrigin::Device),
        reading("b", 1, 250.0, SeqOrigin::Device),
    ];
    assert_eq!(
        store.append(&mut batch).unwrap(),
        vec![
            AppendOutcome::Replayed { journal_seq: 1 },
            AppendOutcome::Stored {
                journal_seq: 2,
                seq: 1
            }
        ]
    );
    assert_eq!(journal.reading_count().unwrap(), 2);
}

fn cuff(systolic_mmhg: f64, device_time: Option<i64>) -> Reading {
    Reading {
        device_time,
        measurement: Measurement::BloodPressure {
            systolic_mmhg,
            diastolic_mmhg: 80.0,
            mean_mmhg: None,
        },
        reported_unit: "mmHg".into(),
        ..reading("cuff", 0, 0.0, SeqOrigin::Hub)
    }
}

#[test]
fn a_timed_reading_sent_again_is_one_reading() {
    let (_dir, _journal, mut store) = open_temp();
    let mut batch = [cuff(120.0, Some(5_000)), cuff(120.0, None)];
    store.append(&mut batch).unwrap();
    // Re-sent at the next connection: the timed one is a duplicate;
    // one without a time cannot be told from a new one and is stored.
    let mut again = [
        Reading {
            received_at: 9_999,
            ..cuff(120.0, Some(5_000))
        },
        cuff(120.0, None),
        cuff(121.0, Some(5_000)),
    ];
    assert_eq!(
        store.append(&mut again).unwrap(),
        vec![
            AppendOutcome::Duplicate { journal_seq: 1 },
            AppendOutcome::Stored {
                journal_seq: 3,
                seq: 3
            },
            AppendOutcome::Stored {
                journal_seq: 4,
                seq: 4
            },
        ]
    );
    // CGM times over BLE are the hub's estimates: not a key.
    let mut cgm = [
        reading("cgm", 0, 100.0, SeqOrigin::Hub),
        reading("cgm", 0, 100.0, SeqOrigin::Hub),
    ];
    let outcomes = store.append(&mut cgm).unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, AppendOutcome::Stored { .. })),
        "{outcomes:?}"
    );
}

#[test]
fn a_journal_from_before_content_keys_is_filled_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.redb");
    {
        let (journal, mut store) = open_at(&path);
        store.append(&mut [cuff(130.0, Some(7_000))]).unwrap();
        // Make it look like a journal written before the table existed.
        let txn = journal.db.begin_write().unwrap();
        txn.delete_table(TIMED_CONTENT).unwrap();
        txn.open_table(META)
            .unwrap()
            .remove("timed_content_filled")
            .unwrap();
        txn.commit().unwrap();
    }
    let (_journal, mut store) = open_at(&path);
    assert_eq!(
        store.append(&mut [cuff(130.0, Some(7_000))]).unwrap(),
        vec![AppendOutcome::Duplicate { journal_seq: 1 }]
    );
}

#[test]
fn hub_assigned_numbers_continue_across_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.redb");
    {
        let (_journal, mut store) = open_at(&path);
        let mut batch = [
            reading("hr", 0, 60.0, SeqOrigin::Hub),
            reading("hr", 0, 61.0, SeqOrigin::Hub),
        ];
        store.append(&mut batch).unwrap();
        assert_eq!((batch[0].seq, batch[1].seq), (1, 2));
    }
    let (journal, mut store) = open_at(&path);
    let mut batch = [reading("hr", 0, 62.0, SeqOrigin::Hub)];
    assert_eq!(
        store.append(&mut batch).unwrap(),
        vec![AppendOutcome::Stored {
            journal_seq: 3,
            seq: 3
        }]
    );
    let stored = journal.readings_from(1, 10).unwrap();
    assert_eq!(
        stored.iter().map(|(_, r)| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[test]
fn the_last_device_sequence_number_is_per_device() {
    let (_dir, journal, mut store) = open_temp();
    let mut batch = [
        reading("a", 7, 100.0, SeqOrigin::Device),
        reading("a", 3, 100.0, SeqOrigin::Device),
        reading("b", 9, 100.0, SeqOrigin::Device),
        reading("c", 0, 100.0, SeqOrigin::Hub),
    ];
    store.append(&mut batch).unwrap();
    let seq = |name: &str| {
        journal
            .last_device_seq(&DeviceIdentity::name(name).unwrap())
            .unwrap()
    };
    assert_eq!(seq("a"), Some(7));
    assert_eq!(seq("b"), Some(9));
    assert_eq!(seq("c"), None, "hub-assigned numbers are not the device's");
    assert_eq!(seq("d"), None);
}

#[test]
fn latest_readings_are_per_device() {
    let (_dir, journal, mut store) = open_temp();
    let mut batch = [
        reading("a", 1, 100.0, SeqOrigin::Device),
        reading("a", 2, 110.0, SeqOrigin::Device),
        reading("b", 1, 90.0, SeqOrigin::Device),
    ];
    store.append(&mut batch).unwrap();
    let mut latest = journal.latest_readings().unwrap();
    latest.sort_by_key(|r| r.device.to_string());
    assert_eq!(latest.len(), 2);
    assert_eq!(latest[0].seq, 2);
    assert_eq!(latest[1].device.to_string(), "name:b");
}

fn event(i: u64, count: u64) -> NodeEvent {
    NodeEvent {
        at: i as i64,
        device: Some("x".into()),
        source: None,
        transport: Transport::Mqtt,
        reason: crate::behaviour::RefusalReason::WrongTopic,
        detail: format!("#{i}"),
        count,
    }
}

#[test]
fn events_are_counted_forever_but_kept_only_up_to_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let limits = JournalLimits {
        max_events: 3,
        ..JournalLimits::default()
    };
    let (journal, mut store) = super::open(&dir.path().join("hub.redb"), limits).unwrap();
    // A summary event stands for the refusals it summarises.
    store
        .record_events(&[event(1, 1), event(2, 1), event(3, 40), event(4, 1)])
        .unwrap();
    let counts = journal.event_counts().unwrap();
    assert_eq!(
        counts.get(&(Transport::Mqtt, crate::behaviour::RefusalReason::WrongTopic)),
        Some(&43)
    );
    assert_eq!(journal.event_count_kept().unwrap(), 3);
    let recent = journal.recent_events(1).unwrap();
    assert_eq!(recent[0].detail, "#4");
}

#[tokio::test]
async fn the_thread_groups_concurrent_appends_and_answers_each() {
    let (_dir, journal, store) = open_temp();
    let (writer, task) = store.spawn().unwrap();
    let mut pending = Vec::new();
    for seq in 1..=200 {
        let writer = writer.clone();
        pending.push(tokio::spawn(async move {
            writer
                .append(reading("a", seq, 100.0 + seq as f64, SeqOrigin::Device))
                .await
        }));
    }
    for p in pending {
        assert!(matches!(
            p.await.unwrap().unwrap(),
            AppendOutcome::Stored { .. }
        ));
    }
    assert!(writer.record_event(event(1, 1)));
    writer.save_meta("k", b"v".to_vec()).await.unwrap();
    drop(writer);
    task.wait().await.unwrap();
    assert_eq!(journal.reading_count().unwrap(), 200);
    assert_eq!(journal.meta("k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(journal.event_count_kept().unwrap(), 1);
}

#[tokio::test]
async fn an_event_flood_never_delays_a_reading() {
    let (_dir, journal, store) = open_temp();
    let (writer, task) = store.spawn().unwrap();
    let mut dropped = 0;
    for i in 0..50_000 {
        if !writer.record_event(event(i, 1)) {
            dropped += 1;
        }
    }
    writer
        .append(reading("a", 1, 100.0, SeqOrigin::Device))
        .await
        .unwrap();
    // Not a timing assertion: the reading got through a full event queue.
    assert!(dropped > 0, "the queue is bounded");
    drop(writer);
    task.wait().await.unwrap();
    assert_eq!(journal.reading_count().unwrap(), 1);
}
