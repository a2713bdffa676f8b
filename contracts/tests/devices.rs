//! Devices: a patient's registered devices (the 2020 paper's Algorithm 2),
//! changed only by the patient or a hub the patient delegated to, under ids
//! keyed by the consortium's device-id key, with a dispute path.

mod support;

use glyco_contracts::bindings::Devices::DevicesErrors;
use glyco_contracts::{B256, DeviceChangeKind, DeviceId, DeviceKind, Refusal};
use support::{World, accounts::*};

const GLUCOMETER: &str = "ble:C0:26:DA:01:02:03";
const CUFF: &str = "name:bp-cuff-1";

#[tokio::test]
async fn the_patient_and_a_delegated_hub_add_and_remove_devices() {
    let world = World::enrolled().await;
    let (glucometer, cuff) = (world.device(GLUCOMETER), world.device(CUFF));
    let patient_addr = world.addr(PATIENT);
    let patient = world.client(PATIENT);
    let hub = world.client(HUB);

    patient
        .add_device(patient_addr, glucometer, DeviceKind::Glucometer)
        .await
        .unwrap();
    hub.add_device(patient_addr, cuff, DeviceKind::BloodPressure)
        .await
        .unwrap();
    assert!(
        patient
            .is_registered(patient_addr, glucometer)
            .await
            .unwrap()
    );
    let record = patient.device_of(cuff).await.unwrap().unwrap();
    assert_eq!(record.patient, patient_addr);
    assert_eq!(record.kind, Some(DeviceKind::BloodPressure));
    assert!(record.active);
    let mut listed = patient.devices_of(patient_addr).await.unwrap();
    listed.sort();
    let mut expected = vec![glucometer, cuff];
    expected.sort();
    assert_eq!(listed, expected);

    hub.remove_device(patient_addr, glucometer).await.unwrap();
    assert!(
        !patient
            .is_registered(patient_addr, glucometer)
            .await
            .unwrap()
    );
    assert_eq!(patient.devices_of(patient_addr).await.unwrap(), vec![cuff]);
    assert!(!patient.device_of(glucometer).await.unwrap().unwrap().active);
    assert_eq!(
        patient.device_of(world.device("name:never")).await.unwrap(),
        None
    );
}

/// Exploit (v1): the hub could add and remove the patient's devices though
/// the 2018 paper gives that power to the patient alone. Now a hub needs the
/// patient's explicit, revocable delegation.
#[tokio::test]
async fn a_hub_changes_devices_only_while_the_patient_delegates_it() {
    let world = World::enrolled().await;
    let patient_addr = world.addr(PATIENT);
    let (patient, hub) = (world.client(PATIENT), world.client(HUB));
    patient
        .set_hub_device_power(world.addr(HUB), false)
        .await
        .unwrap();
    assert_refused!(
        hub.add_device(patient_addr, world.device(CUFF), DeviceKind::BloodPressure)
            .await,
        Refusal::Devices(DevicesErrors::NotAllowedForPatient(_))
    );
    // The hub still anchors for its patient: that power is not device power.
    assert!(hub.acts_for(world.addr(HUB), patient_addr).await.unwrap());
    patient
        .set_hub_device_power(world.addr(HUB), true)
        .await
        .unwrap();
    hub.add_device(patient_addr, world.device(CUFF), DeviceKind::BloodPressure)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_duplicate_registration_is_refused_under_the_keyed_id() {
    let world = World::enrolled().await;
    let patient_addr = world.addr(PATIENT);
    let patient = world.client(PATIENT);
    patient
        .add_device(
            patient_addr,
            world.device(GLUCOMETER),
            DeviceKind::Glucometer,
        )
        .await
        .unwrap();
    // The same identity written differently is still the same device.
    assert_refused!(
        world
            .client(HUB)
            .add_device(
                patient_addr,
                world.device("ble:c0:26:da:01:02:03"),
                DeviceKind::Glucometer
            )
            .await,
        Refusal::Devices(DevicesErrors::DuplicateDevice(_))
    );
    // A refused call costs the sender nothing and does not block its next one.
    patient
        .add_device(patient_addr, world.device(CUFF), DeviceKind::BloodPressure)
        .await
        .unwrap();
}

#[tokio::test]
async fn only_the_patient_or_a_delegated_hub_may_change_the_patients_devices() {
    let world = World::enrolled().await;
    let glucometer = world.device(GLUCOMETER);
    let patient_addr = world.addr(PATIENT);
    for index in [ADMIN, HOSPITAL, PHYSICIAN, PROXY, SECOND_PATIENT, STRANGER] {
        assert_refused!(
            world
                .client(index)
                .add_device(patient_addr, glucometer, DeviceKind::Glucometer)
                .await,
            Refusal::Devices(DevicesErrors::NotAllowedForPatient(_))
        );
    }
    world
        .client(PATIENT)
        .add_device(patient_addr, glucometer, DeviceKind::Glucometer)
        .await
        .unwrap();
    for index in [PHYSICIAN, SECOND_PATIENT, STRANGER] {
        assert_refused!(
            world
                .client(index)
                .remove_device(patient_addr, glucometer)
                .await,
            Refusal::Devices(DevicesErrors::NotAllowedForPatient(_))
        );
    }
    // A patient's hub acts for that patient only.
    let second = world.addr(SECOND_PATIENT);
    assert_refused!(
        world
            .client(HUB)
            .add_device(second, world.device(CUFF), DeviceKind::BloodPressure)
            .await,
        Refusal::Devices(DevicesErrors::NotAllowedForPatient(_))
    );
}

#[tokio::test]
async fn a_device_belongs_to_at_most_one_patient() {
    let world = World::enrolled().await;
    let glucometer = world.device(GLUCOMETER);
    let (first, second) = (world.addr(PATIENT), world.addr(SECOND_PATIENT));
    world
        .client(PATIENT)
        .add_device(first, glucometer, DeviceKind::Glucometer)
        .await
        .unwrap();
    let other = world.client(SECOND_PATIENT);
    assert_refused!(
        other
            .add_device(second, glucometer, DeviceKind::Glucometer)
            .await,
        Refusal::Devices(DevicesErrors::DeviceOfAnotherPatient(_))
    );
    assert_refused!(
        other.remove_device(second, glucometer).await,
        Refusal::Devices(DevicesErrors::DeviceOfAnotherPatient(_))
    );
    world
        .client(PATIENT)
        .remove_device(first, glucometer)
        .await
        .unwrap();
    other
        .add_device(second, glucometer, DeviceKind::Glucometer)
        .await
        .unwrap();
    assert!(other.is_registered(second, glucometer).await.unwrap());
}

/// Exploit (v1): another patient registered a victim's broadcast BLE address
/// first, with no way back. Now the squatting patient's registering
/// physician (or the consortium) releases it after checking.
#[tokio::test]
async fn a_squatted_device_is_released_by_the_squatters_physician_or_the_admin() {
    let world = World::enrolled().await;
    let victim_cgm = world.device("ble:C0:26:DA:0A:0B:0C");
    let (victim, squatter) = (world.addr(PATIENT), world.addr(SECOND_PATIENT));
    world
        .client(SECOND_PATIENT)
        .add_device(squatter, victim_cgm, DeviceKind::Cgm)
        .await
        .unwrap();
    // Not the victim, not the victim's physician, not a stranger.
    for index in [PATIENT, PHYSICIAN, HUB, STRANGER] {
        assert_refused!(
            world.client(index).release_device(victim_cgm).await,
            Refusal::Devices(DevicesErrors::NotAllowed(_))
        );
    }
    // The squatter's registering physician (the locum) releases it.
    world
        .client(LOCUM)
        .release_device(victim_cgm)
        .await
        .unwrap();
    world
        .client(PATIENT)
        .add_device(victim, victim_cgm, DeviceKind::Cgm)
        .await
        .unwrap();
    // The admin may release too (the consortium, once governance holds it).
    world
        .client(ADMIN)
        .release_device(victim_cgm)
        .await
        .unwrap();
    assert!(
        !world
            .client(STRANGER)
            .is_registered(victim, victim_cgm)
            .await
            .unwrap()
    );
    assert_refused!(
        world.client(ADMIN).release_device(victim_cgm).await,
        Refusal::Devices(DevicesErrors::UnknownDevice(_))
    );
    let head = world.client(STRANGER).block_number().await.unwrap();
    let changes = world
        .client(STRANGER)
        .device_changes(victim, 0, head)
        .await
        .unwrap();
    assert_eq!(changes.last().unwrap().change, DeviceChangeKind::Released);
}

#[tokio::test]
async fn removing_an_unknown_device_or_a_zero_id_is_refused() {
    let world = World::enrolled().await;
    let glucometer = world.device(GLUCOMETER);
    let patient = world.client(PATIENT);
    let patient_addr = world.addr(PATIENT);
    assert_refused!(
        patient.remove_device(patient_addr, glucometer).await,
        Refusal::Devices(DevicesErrors::UnknownDevice(_))
    );
    assert_refused!(
        patient
            .add_device(patient_addr, DeviceId(B256::ZERO), DeviceKind::Other)
            .await,
        Refusal::Devices(DevicesErrors::ZeroDeviceId(_))
    );
    patient
        .add_device(patient_addr, glucometer, DeviceKind::Glucometer)
        .await
        .unwrap();
    patient
        .remove_device(patient_addr, glucometer)
        .await
        .unwrap();
    assert_refused!(
        patient.remove_device(patient_addr, glucometer).await,
        Refusal::Devices(DevicesErrors::UnknownDevice(_))
    );
}

#[tokio::test]
async fn the_patients_list_stays_exact_through_removals_and_is_bounded() {
    let world = World::enrolled().await;
    let patient_addr = world.addr(PATIENT);
    let hub = world.client(HUB);
    let ids: Vec<DeviceId> = (0..64)
        .map(|i| world.device(&format!("name:sensor-{i}")))
        .collect();
    for id in &ids {
        hub.add_device(patient_addr, *id, DeviceKind::Other)
            .await
            .unwrap();
    }
    assert_refused!(
        hub.add_device(
            patient_addr,
            world.device("name:one-too-many"),
            DeviceKind::Other
        )
        .await,
        Refusal::Devices(DevicesErrors::TooManyDevices(_))
    );
    // Remove the first, a middle one and the last: swap-and-pop must keep the rest.
    for index in [0, 31, 63] {
        hub.remove_device(patient_addr, ids[index]).await.unwrap();
    }
    let mut listed = hub.devices_of(patient_addr).await.unwrap();
    listed.sort();
    let mut expected: Vec<DeviceId> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| ![0, 31, 63].contains(i))
        .map(|(_, id)| *id)
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn device_changes_replay_in_chain_order_for_one_patient_only_in_bounded_chunks() {
    let world = World::enrolled().await;
    let (glucometer, cuff) = (world.device(GLUCOMETER), world.device(CUFF));
    let (first, second) = (world.addr(PATIENT), world.addr(SECOND_PATIENT));
    // One block per eth_getLogs request: the chunking must still find every change.
    let hub = world.client(HUB).with_log_chunk_blocks(1);
    hub.add_device(first, glucometer, DeviceKind::Glucometer)
        .await
        .unwrap();
    hub.add_device(first, cuff, DeviceKind::BloodPressure)
        .await
        .unwrap();
    world
        .client(SECOND_PATIENT)
        .add_device(second, world.device("name:other"), DeviceKind::Other)
        .await
        .unwrap();
    hub.remove_device(first, glucometer).await.unwrap();

    let head = hub.block_number().await.unwrap();
    let changes = hub.device_changes(first, 0, head).await.unwrap();
    let summary: Vec<_> = changes.iter().map(|c| (c.device, c.change)).collect();
    assert_eq!(
        summary,
        vec![
            (
                glucometer,
                DeviceChangeKind::Added(Some(DeviceKind::Glucometer))
            ),
            (
                cuff,
                DeviceChangeKind::Added(Some(DeviceKind::BloodPressure))
            ),
            (glucometer, DeviceChangeKind::Removed),
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
