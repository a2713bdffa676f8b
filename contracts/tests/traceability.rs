//! Traceability: the access log, and anchors of sealed reading batches.

mod support;

use glyco_contracts::bindings::AccessLog::AccessLogErrors;
use glyco_contracts::bindings::Anchors::AnchorsErrors;
use glyco_contracts::bindings::{Devices, Permissions};
use glyco_contracts::{
    Access, AccessAction, B256, BatchAnchor, DeviceIdentity, DeviceKind, Refusal,
};
use support::{World, accounts::*};

const DATA: B256 = B256::repeat_byte(0x99);

fn batch(root: u8, start: u64) -> BatchAnchor {
    BatchAnchor {
        root: B256::repeat_byte(root),
        window_start: start,
        window_end: start + 3599,
        count: 60,
    }
}

#[tokio::test]
async fn a_hospital_proxy_and_a_physician_record_accesses_that_anyone_can_list() {
    let world = World::enrolled().await;
    let (patient_addr, physician_addr) = (world.addr(PATIENT), world.addr(PHYSICIAN));
    world
        .client(HOSPITAL)
        .log_access(patient_addr, physician_addr, DATA, AccessAction::Reencrypt)
        .await
        .unwrap();
    world
        .client(PHYSICIAN)
        .log_access(patient_addr, physician_addr, DATA, AccessAction::Read)
        .await
        .unwrap();

    let reader = world.client(STRANGER);
    assert_eq!(reader.access_count(patient_addr).await.unwrap(), 2);
    let entries = reader.access_log_of(patient_addr, 0).await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].recorder, world.addr(HOSPITAL));
    assert_eq!(entries[0].action, Some(AccessAction::Reencrypt));
    assert_eq!(entries[1].recorder, physician_addr);
    assert_eq!(entries[1].action, Some(AccessAction::Read));
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(entry.patient, patient_addr);
        assert_eq!(entry.accessor, physician_addr);
        assert_eq!(entry.data_id, DATA);
        assert_eq!(entry.seq, i as u64 + 1);
        assert!(entry.at > 0);
    }
    assert!(
        reader
            .access_log_of(world.addr(SECOND_PATIENT), 0)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn only_hospitals_or_the_accessing_physician_may_record_and_only_for_patients() {
    let world = World::enrolled().await;
    let (patient_addr, physician_addr) = (world.addr(PATIENT), world.addr(PHYSICIAN));
    // A physician cannot write entries in another physician's name; a clinic
    // is not a proxy; patients, hubs and strangers record nothing.
    for index in [LOCUM, CLINIC, PATIENT, HUB, STRANGER, ADMIN] {
        assert_refused!(
            world
                .client(index)
                .log_access(patient_addr, physician_addr, DATA, AccessAction::Read)
                .await,
            Refusal::AccessLog(AccessLogErrors::NotRecorder(_))
        );
    }
    assert_refused!(
        world
            .client(HOSPITAL)
            .log_access(
                world.addr(STRANGER),
                physician_addr,
                DATA,
                AccessAction::Read
            )
            .await,
        Refusal::AccessLog(AccessLogErrors::NotPatient(_))
    );
    // A revoked hospital stops being a recorder.
    world
        .client(ADMIN)
        .revoke_entity(world.addr(HOSPITAL))
        .await
        .unwrap();
    assert_refused!(
        world
            .client(HOSPITAL)
            .log_access(patient_addr, physician_addr, DATA, AccessAction::Denied)
            .await,
        Refusal::AccessLog(AccessLogErrors::NotRecorder(_))
    );
    assert_eq!(
        world
            .client(ADMIN)
            .access_count(patient_addr)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_hub_anchors_batches_that_can_be_found_by_patient_and_by_root() {
    let world = World::enrolled().await;
    let patient_addr = world.addr(PATIENT);
    let hub = world.client(HUB);
    hub.anchor(patient_addr, batch(0xa1, 1_700_000_000))
        .await
        .unwrap();
    world
        .client(PATIENT)
        .anchor(patient_addr, batch(0xa2, 1_700_003_600))
        .await
        .unwrap();

    let reader = world.client(STRANGER);
    assert_eq!(reader.anchor_count(patient_addr).await.unwrap(), 2);
    let record = reader
        .anchor_of(B256::repeat_byte(0xa1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.patient, patient_addr);
    assert_eq!(record.submitter, world.addr(HUB));
    assert_eq!(record.batch, batch(0xa1, 1_700_000_000));
    assert_eq!(record.seq, 1);
    assert!(record.anchored_at > 0);
    assert_eq!(
        reader.anchor_of(B256::repeat_byte(0xee)).await.unwrap(),
        None
    );

    let found = reader.anchors_of(patient_addr, 0).await.unwrap();
    let roots: Vec<_> = found.iter().map(|a| (a.batch.root, a.seq)).collect();
    assert_eq!(
        roots,
        vec![(B256::repeat_byte(0xa1), 1), (B256::repeat_byte(0xa2), 2)]
    );
    assert_eq!(found[0], record);
    assert!(
        reader
            .anchors_of(world.addr(SECOND_PATIENT), 0)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn anchoring_refuses_strangers_other_patients_hubs_repeats_and_malformed_batches() {
    let world = World::enrolled().await;
    let patient_addr = world.addr(PATIENT);
    for index in [STRANGER, PHYSICIAN, HOSPITAL, SECOND_PATIENT] {
        assert_refused!(
            world
                .client(index)
                .anchor(patient_addr, batch(0xa1, 1))
                .await,
            Refusal::Anchors(AnchorsErrors::NotActingForPatient(_))
        );
    }
    // This patient's hub does not act for the second patient.
    let hub = world.client(HUB);
    assert_refused!(
        hub.anchor(world.addr(SECOND_PATIENT), batch(0xa1, 1)).await,
        Refusal::Anchors(AnchorsErrors::NotActingForPatient(_))
    );
    hub.anchor(patient_addr, batch(0xa1, 1)).await.unwrap();
    // A resend of the same root is refused: anchoring happens exactly once.
    assert_refused!(
        hub.anchor(patient_addr, batch(0xa1, 1)).await,
        Refusal::Anchors(AnchorsErrors::AlreadyAnchored(_))
    );
    let zero_root = BatchAnchor {
        root: B256::ZERO,
        ..batch(0, 1)
    };
    assert_refused!(
        hub.anchor(patient_addr, zero_root).await,
        Refusal::Anchors(AnchorsErrors::ZeroRoot(_))
    );
    let empty = BatchAnchor {
        count: 0,
        ..batch(0xb1, 1)
    };
    assert_refused!(
        hub.anchor(patient_addr, empty).await,
        Refusal::Anchors(AnchorsErrors::EmptyBatch(_))
    );
    let backwards = BatchAnchor {
        window_start: 10,
        window_end: 9,
        ..batch(0xb2, 1)
    };
    assert_refused!(
        hub.anchor(patient_addr, backwards).await,
        Refusal::Anchors(AnchorsErrors::InvalidWindow(_))
    );
    assert_eq!(hub.anchor_count(patient_addr).await.unwrap(), 1);
}

#[tokio::test]
async fn device_and_permission_changes_emit_indexed_events() {
    let world = World::enrolled().await;
    let (patient_addr, physician_addr) = (world.addr(PATIENT), world.addr(PHYSICIAN));
    let patient = world.client(PATIENT);
    let device = DeviceIdentity::name("cgm-1").unwrap().device_id();
    patient
        .add_device(patient_addr, device, DeviceKind::Cgm)
        .await
        .unwrap();
    patient.remove_device(patient_addr, device).await.unwrap();
    patient
        .grant(physician_addr, B256::repeat_byte(7), Access::READ, None)
        .await
        .unwrap();
    patient.revoke(physician_addr).await.unwrap();

    let contracts = world.consortium.deployment.contracts;
    let devices = Devices::new(contracts.devices, patient.provider());
    let by_device = devices
        .DeviceAdded_filter()
        .topic2(device.0)
        .from_block(0)
        .query()
        .await
        .unwrap();
    assert_eq!(by_device.len(), 1);
    let removed = devices
        .DeviceRemoved_filter()
        .from_block(0)
        .query()
        .await
        .unwrap();
    assert_eq!(removed.len(), 1);

    let permissions = Permissions::new(contracts.permissions, patient.provider());
    let granted = permissions
        .PermissionGranted_filter()
        .topic2(physician_addr.into_word())
        .from_block(0)
        .query()
        .await
        .unwrap();
    assert_eq!(granted.len(), 1);
    assert_eq!(granted[0].0.policyId, B256::repeat_byte(7));
    let revoked = permissions
        .PermissionRevoked_filter()
        .topic1(patient_addr.into_word())
        .from_block(0)
        .query()
        .await
        .unwrap();
    assert_eq!(revoked.len(), 1);
}
