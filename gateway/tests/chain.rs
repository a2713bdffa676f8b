//! The hub against contracts v2: it serves only the patient its config
//! names, checks the consortium's device-id key, signs its own consent, needs
//! the patient's delegation to register devices, and announces emergency
//! access to the patient's data.

mod support;

use glyco_contracts::testkit::accounts::*;
use glyco_contracts::{DataKinds, DeviceIdKey, EmergencyPolicy, EntityKind, SignedHubConsent};
use support::HubWorld;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn a_hub_without_its_patient_or_with_a_foreign_device_id_key_does_not_start() {
    let mut world = HubWorld::new().await;
    world.edit_config(|c| c.chain.patient = None);
    let output = world.hub_cli(&["run"]).await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("chain.patient is required"),
        "{}",
        stderr(&output)
    );

    let patient = world.patient();
    let foreign = world.dir.path().join("foreign-device-id.key");
    DeviceIdKey::generate().save_new(&foreign).unwrap();
    world.edit_config(|c| {
        c.chain.patient = Some(patient);
        c.chain.device_id_key_file = foreign;
    });
    let output = world.hub_cli(&["run"]).await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("is not the consortium's"),
        "{}",
        stderr(&output)
    );
}

#[tokio::test]
async fn the_hub_signs_its_consent_and_the_patient_submits_it() {
    let world = HubWorld::with_hub_unauthorised().await;
    let output = world.hub_cli(&["consent", "--valid-hours", "2"]).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let consent: SignedHubConsent = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(consent.hub, world.consortium.address(HUB));
    assert_eq!(consent.patient, world.patient());
    // Until the patient submits it, the hub serves nobody and says so.
    let hub = world.start_hub().await;
    hub.wait_for("the hub to report it is not authorised", |r| {
        r.chain
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("not authorised"))
    })
    .await;
    world
        .client(PATIENT)
        .authorise_hub(&consent, false)
        .await
        .unwrap();
    hub.wait_for("the hub to follow its patient", |r| {
        r.chain.last_error.is_none() && r.patient == Some(world.patient())
    })
    .await;
    // Without the patient's delegation the hub's CLI cannot register devices,
    // and says why.
    let output = world
        .hub_cli(&[
            "device",
            "add",
            "--name",
            "cuff-9",
            "--kind",
            "blood-pressure",
        ])
        .await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("has not delegated device registration"),
        "{}",
        stderr(&output)
    );
    world
        .client(PATIENT)
        .set_hub_device_power(world.consortium.address(HUB), true)
        .await
        .unwrap();
    world.register("cuff-9", "blood-pressure").await;
    hub.wait_registered("cuff-9").await;
}

#[tokio::test]
async fn a_hub_bound_to_another_patient_is_not_followed() {
    let world = HubWorld::with_hub_unauthorised().await;
    let c = &world.consortium;
    c.register_patient(PHYSICIAN, SECOND_PATIENT).await.unwrap();
    // The hub consents (by mistake) to the second patient, who binds it.
    let hub_key = world.client(HUB);
    let deadline = glyco_contracts::UnixSeconds::now().plus(std::time::Duration::from_secs(600));
    let consent = hub_key
        .sign_hub_consent(c.address(SECOND_PATIENT), deadline)
        .await
        .unwrap();
    world
        .client(SECOND_PATIENT)
        .authorise_hub(&consent, true)
        .await
        .unwrap();
    // The second patient's device is on chain; the hub must not admit it.
    let device = glyco_contracts::DeviceIdentity::name("their-cgm").unwrap();
    world
        .client(SECOND_PATIENT)
        .add_device(
            c.address(SECOND_PATIENT),
            world.device_id(&device),
            glyco_contracts::DeviceKind::Cgm,
        )
        .await
        .unwrap();
    let hub = world.start_hub().await;
    let report = hub
        .wait_for("the mismatch in the status", |r| {
            r.chain
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("but the config names"))
        })
        .await;
    assert!(report.devices.is_empty(), "{report:#?}");
}

#[tokio::test]
async fn an_emergency_access_is_announced_by_the_hub() {
    let world = HubWorld::new().await;
    let c = &world.consortium;
    c.enrol_entity(
        EMERGENCY_SERVICE,
        EntityKind::EmergencyService,
        "City Ambulance",
    )
    .await
    .unwrap();
    c.enrol_physician(PARAMEDIC, EMERGENCY_SERVICE)
        .await
        .unwrap();
    world
        .client(PATIENT)
        .set_emergency_policy(EmergencyPolicy {
            kinds: DataKinds::GLUCOSE,
            max_duration_secs: 3600,
            lookback_secs: 86_400,
            enabled: true,
        })
        .await
        .unwrap();
    let hub = world.start_hub().await;
    let (_, grant) = world
        .client(PARAMEDIC)
        .emergency_access(world.patient())
        .await
        .unwrap();
    let report = hub
        .wait_for("the emergency access in the status", |r| {
            !r.emergency_accesses.is_empty()
        })
        .await;
    let access = report.emergency_accesses[0];
    assert_eq!(access.physician, c.address(PARAMEDIC));
    assert_eq!(access.entity, c.address(EMERGENCY_SERVICE));
    assert_eq!(access.grant_id, grant);
    assert!(
        hub.log_text().contains("emergency access opened"),
        "{}",
        hub.log_text()
    );
    // It survives a restart (kept with the mirror's checkpoint), announced once.
    hub.terminate().await;
    let hub = world.start_hub().await;
    let report = hub.status().await.unwrap();
    assert_eq!(report.emergency_accesses.len(), 1);
}
