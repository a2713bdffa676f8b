//! Devices: a patient's registered devices (the 2020 paper's Algorithm 2).

mod support;

use glyco_contracts::bindings::Devices::DevicesErrors;
use glyco_contracts::{B256, DeviceChangeKind, DeviceId, DeviceIdentity, DeviceKind, Refusal};
use support::{World, accounts::*};

fn glucometer() -> DeviceId {
    DeviceIdentity::ble("C0:26:DA:01:02:03")
        .unwrap()
        .device_id()
}

fn cuff() -> DeviceId {
    DeviceIdentity::name("bp-cuff-1").unwrap().device_id()
}

#[tokio::test]
async fn the_patient_and_their_hub_add_and_remove_devices() {
    let world = World::enrolled().await;
    let patient_addr = world.addr(PATIENT);
    let patient = world.client(PATIENT);
    let hub = world.client(HUB);

    patient
        .add_device(patient_addr, glucometer(), DeviceKind::Glucometer)
        .await
        .unwrap();
    hub.add_device(patient_addr, cuff(), DeviceKind::BloodPressure)
        .await
        .unwrap();
    assert!(
        patient
            .is_registered(patient_addr, glucometer())
            .await
            .unwrap()
    );
    let record = patient.device_of(cuff()).await.unwrap().unwrap();
    assert_eq!(record.patient, patient_addr);
    assert_eq!(record.kind, Some(DeviceKind::BloodPressure));
    assert!(record.active);
    let mut listed = patient.devices_of(patient_addr).await.unwrap();
    listed.sort();
    let mut expected = vec![glucometer(), cuff()];
    expected.sort();
    assert_eq!(listed, expected);

    hub.remove_device(patient_addr, glucometer()).await.unwrap();
    assert!(
        !patient
            .is_registered(patient_addr, glucometer())
            .await
            .unwrap()
    );
    assert_eq!(
        patient.devices_of(patient_addr).await.unwrap(),
        vec![cuff()]
    );
    let removed = patient.device_of(glucometer()).await.unwrap().unwrap();
    assert!(!removed.active);
    assert_eq!(
        patient
            .device_of(DeviceIdentity::name("never").unwrap().device_id())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_duplicate_registration_is_refused() {
    let world = World::enrolled().await;
    let patient_addr = world.addr(PATIENT);
    let patient = world.client(PATIENT);
    patient
        .add_device(patient_addr, glucometer(), DeviceKind::Glucometer)
        .await
        .unwrap();
    assert_refused!(
        patient
            .add_device(patient_addr, glucometer(), DeviceKind::Glucometer)
            .await,
        Refusal::Devices(DevicesErrors::DuplicateDevice(_))
    );
    // The same identity written differently is still the same device.
    let same = DeviceIdentity::ble("c0:26:da:01:02:03")
        .unwrap()
        .device_id();
    assert_refused!(
        world
            .client(HUB)
            .add_device(patient_addr, same, DeviceKind::Glucometer)
            .await,
        Refusal::Devices(DevicesErrors::DuplicateDevice(_))
    );
    // A refused call costs the sender nothing and does not block its next one.
    patient
        .add_device(patient_addr, cuff(), DeviceKind::BloodPressure)
        .await
        .unwrap();
}

#[tokio::test]
async fn only_the_patient_or_their_hub_may_change_the_patients_devices() {
    let world = World::enrolled().await;
    let patient_addr = world.addr(PATIENT);
    for index in [ADMIN, HOSPITAL, PHYSICIAN, SECOND_PATIENT, STRANGER] {
        assert_refused!(
            world
                .client(index)
                .add_device(patient_addr, glucometer(), DeviceKind::Glucometer)
                .await,
            Refusal::Devices(DevicesErrors::NotActingForPatient(_))
        );
    }
    world
        .client(PATIENT)
        .add_device(patient_addr, glucometer(), DeviceKind::Glucometer)
        .await
        .unwrap();
    for index in [PHYSICIAN, SECOND_PATIENT, STRANGER] {
        assert_refused!(
            world
                .client(index)
                .remove_device(patient_addr, glucometer())
                .await,
            Refusal::Devices(DevicesErrors::NotActingForPatient(_))
        );
    }
    // Nobody adds devices for an address that is not a registered patient.
    assert_refused!(
        world
            .client(STRANGER)
            .add_device(world.addr(STRANGER), cuff(), DeviceKind::BloodPressure)
            .await,
        Refusal::Devices(DevicesErrors::NotActingForPatient(_))
    );
    // A revoked hub loses its power at once.
    world
        .client(PATIENT)
        .revoke_hub(world.addr(HUB))
        .await
        .unwrap();
    assert_refused!(
        world
            .client(HUB)
            .add_device(patient_addr, cuff(), DeviceKind::BloodPressure)
            .await,
        Refusal::Devices(DevicesErrors::NotActingForPatient(_))
    );
}

#[tokio::test]
async fn a_device_belongs_to_at_most_one_patient() {
    let world = World::enrolled().await;
    let (first, second) = (world.addr(PATIENT), world.addr(SECOND_PATIENT));
    world
        .client(PATIENT)
        .add_device(first, glucometer(), DeviceKind::Glucometer)
        .await
        .unwrap();
    let other = world.client(SECOND_PATIENT);
    assert_refused!(
        other
            .add_device(second, glucometer(), DeviceKind::Glucometer)
            .await,
        Refusal::Devices(DevicesErrors::DeviceOfAnotherPatient(_))
    );
    // The second patient cannot remove it either, naming themselves as owner.
    assert_refused!(
        other.remove_device(second, glucometer()).await,
        Refusal::Devices(DevicesErrors::DeviceOfAnotherPatient(_))
    );
    // Once the first patient removes it, the device may move to the second.
    world
        .client(HUB)
        .remove_device(first, glucometer())
        .await
        .unwrap();
    other
        .add_device(second, glucometer(), DeviceKind::Glucometer)
        .await
        .unwrap();
    assert!(other.is_registered(second, glucometer()).await.unwrap());
    assert!(!other.is_registered(first, glucometer()).await.unwrap());
}

#[tokio::test]
async fn removing_an_unknown_device_or_a_zero_id_is_refused() {
    let world = World::enrolled().await;
    let patient = world.client(PATIENT);
    let patient_addr = world.addr(PATIENT);
    assert_refused!(
        patient.remove_device(patient_addr, glucometer()).await,
        Refusal::Devices(DevicesErrors::UnknownDevice(_))
    );
    assert_refused!(
        patient
            .add_device(patient_addr, DeviceId(B256::ZERO), DeviceKind::Other)
            .await,
        Refusal::Devices(DevicesErrors::ZeroDeviceId(_))
    );
    patient
        .add_device(patient_addr, glucometer(), DeviceKind::Glucometer)
        .await
        .unwrap();
    patient
        .remove_device(patient_addr, glucometer())
        .await
        .unwrap();
    assert_refused!(
        patient.remove_device(patient_addr, glucometer()).await,
        Refusal::Devices(DevicesErrors::UnknownDevice(_))
    );
}

#[tokio::test]
async fn the_patients_list_stays_exact_through_many_removals() {
    let world = World::enrolled().await;
    let patient_addr = world.addr(PATIENT);
    let hub = world.client(HUB);
    let ids: Vec<DeviceId> = (0..6)
        .map(|i| {
            DeviceIdentity::name(&format!("sensor-{i}"))
                .unwrap()
                .device_id()
        })
        .collect();
    for id in &ids {
        hub.add_device(patient_addr, *id, DeviceKind::Other)
            .await
            .unwrap();
    }
    // Remove the first, a middle one and the last: swap-and-pop must keep the rest.
    for index in [0, 3, 5] {
        hub.remove_device(patient_addr, ids[index]).await.unwrap();
    }
    let mut listed = hub.devices_of(patient_addr).await.unwrap();
    listed.sort();
    let mut expected = vec![ids[1], ids[2], ids[4]];
    expected.sort();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn device_changes_replay_in_chain_order_for_one_patient_only() {
    let world = World::enrolled().await;
    let (first, second) = (world.addr(PATIENT), world.addr(SECOND_PATIENT));
    let hub = world.client(HUB);
    hub.add_device(first, glucometer(), DeviceKind::Glucometer)
        .await
        .unwrap();
    hub.add_device(first, cuff(), DeviceKind::BloodPressure)
        .await
        .unwrap();
    let other_device = DeviceIdentity::name("other").unwrap().device_id();
    world
        .client(SECOND_PATIENT)
        .add_device(second, other_device, DeviceKind::Other)
        .await
        .unwrap();
    hub.remove_device(first, glucometer()).await.unwrap();

    let head = hub.block_number().await.unwrap();
    let changes = hub.device_changes(first, 0, head).await.unwrap();
    let summary: Vec<_> = changes.iter().map(|c| (c.device, c.change)).collect();
    assert_eq!(
        summary,
        vec![
            (
                glucometer(),
                DeviceChangeKind::Added(Some(DeviceKind::Glucometer))
            ),
            (
                cuff(),
                DeviceChangeKind::Added(Some(DeviceKind::BloodPressure))
            ),
            (glucometer(), DeviceChangeKind::Removed),
        ]
    );
    assert!(changes.iter().all(|c| c.by == world.addr(HUB)));
    assert!(
        changes
            .windows(2)
            .all(|w| (w[0].block, w[0].log_index) < (w[1].block, w[1].log_index))
    );
    // A window that ends before the removal does not see it.
    let before = hub
        .device_changes(first, 0, changes[2].block - 1)
        .await
        .unwrap();
    assert_eq!(before.len(), 2);
}
