//! Permissions: scoped grants that stay revoked, listable per patient and
//! per physician, and emergency access under the patient's policy.

mod support;

use glyco_contracts::bindings::Permissions::{self, PermissionsErrors};
use glyco_contracts::{
    B256, DataKinds, EmergencyPolicy, EntityKind, Expiry, GrantScope, Refusal, UnixSeconds,
};
use support::{World, accounts::*};

const POLICY: B256 = B256::repeat_byte(0x42);

#[tokio::test]
async fn a_scoped_grant_is_live_and_listed_for_the_patient_and_the_physician() {
    let world = World::enrolled().await;
    let (patient_addr, physician_addr) = (world.addr(PATIENT), world.addr(PHYSICIAN));
    let patient = world.client(PATIENT);
    let reader = world.client(STRANGER);
    assert!(!reader.can_read(patient_addr, physician_addr).await.unwrap());
    let scope = GrantScope {
        kinds: DataKinds::GLUCOSE | DataKinds::FINDINGS,
        data_from: 1_700_000_000,
        data_until: Some(1_800_000_000),
    };
    let (_, id) = patient
        .grant(physician_addr, POLICY, scope, Expiry::Never)
        .await
        .unwrap();
    assert!(reader.can_read(patient_addr, physician_addr).await.unwrap());
    assert!(reader.is_grant_live(id).await.unwrap());
    let grant = reader
        .current_grant(patient_addr, physician_addr)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.id, id);
    assert_eq!(
        (grant.patient, grant.grantee),
        (patient_addr, physician_addr)
    );
    assert_eq!((grant.entity, grant.epoch), (world.addr(HOSPITAL), 1));
    assert_eq!(grant.policy_id, POLICY);
    assert_eq!(grant.scope, scope);
    assert_eq!(grant.expiry, Expiry::Never);
    assert!(!grant.revoked && !grant.emergency);

    // A new grant to the same physician replaces (and ends) the old one.
    let (_, second) = patient
        .grant(
            physician_addr,
            POLICY,
            GrantScope::EVERYTHING,
            Expiry::Never,
        )
        .await
        .unwrap();
    world
        .client(SECOND_PATIENT)
        .grant(
            physician_addr,
            POLICY,
            GrantScope::EVERYTHING,
            Expiry::Never,
        )
        .await
        .unwrap();
    assert!(!reader.is_grant_live(id).await.unwrap());
    assert!(reader.is_grant_live(second).await.unwrap());
    let mine = reader.grants_of_patient(patient_addr).await.unwrap();
    assert_eq!(
        mine.iter().map(|g| (g.id, g.revoked)).collect::<Vec<_>>(),
        vec![(id, true), (second, false)]
    );
    let theirs = reader.grants_of_grantee(physician_addr).await.unwrap();
    assert_eq!(theirs.len(), 3);
    assert_eq!(theirs[2].patient, world.addr(SECOND_PATIENT));
    assert!(
        reader
            .grants_of_grantee(world.addr(LOCUM))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn grant_lists_are_read_a_bounded_page_at_a_time() {
    let world = World::enrolled().await;
    let patient = world.client(PATIENT);
    for grantee in [PHYSICIAN, LOCUM] {
        patient
            .grant(
                world.addr(grantee),
                POLICY,
                GrantScope::EVERYTHING,
                Expiry::Never,
            )
            .await
            .unwrap();
    }
    let permissions = Permissions::new(
        world.consortium.deployment.contracts.permissions,
        patient.provider(),
    );
    let page = permissions
        .grantsOfPatient(
            world.addr(PATIENT),
            1.try_into().unwrap(),
            10.try_into().unwrap(),
        )
        .call()
        .await
        .unwrap();
    assert_eq!(page.ids.len(), 1);
    assert_eq!(page.page[0].grantee, world.addr(LOCUM));
    let past_the_end = permissions
        .grantsOfPatient(
            world.addr(PATIENT),
            5.try_into().unwrap(),
            10.try_into().unwrap(),
        )
        .call()
        .await
        .unwrap();
    assert!(past_the_end.ids.is_empty());
    let err = permissions
        .grantsOfPatient(
            world.addr(PATIENT),
            0.try_into().unwrap(),
            101.try_into().unwrap(),
        )
        .call()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_decoded_interface_error::<PermissionsErrors>(),
            Some(PermissionsErrors::PageTooLarge(_))
        ),
        "{err}"
    );
}

/// Exploit (v1): a patient granted P; the admin revoked P; P was enrolled
/// again (even elsewhere) and could read again, with no permission event.
/// Now a grant belongs to one enrolment epoch.
#[tokio::test]
async fn a_revoked_physician_re_enrolled_starts_with_no_grants() {
    let world = World::enrolled().await;
    let (patient_addr, physician_addr) = (world.addr(PATIENT), world.addr(PHYSICIAN));
    let (_, id) = world
        .client(PATIENT)
        .grant(
            physician_addr,
            POLICY,
            GrantScope::EVERYTHING,
            Expiry::Never,
        )
        .await
        .unwrap();
    let reader = world.client(STRANGER);
    assert!(reader.can_read(patient_addr, physician_addr).await.unwrap());

    world
        .client(ADMIN)
        .revoke_physician(physician_addr)
        .await
        .unwrap();
    assert!(!reader.can_read(patient_addr, physician_addr).await.unwrap());
    // Re-enrolled at another entity: still nothing.
    world
        .consortium
        .enrol_physician(PHYSICIAN, CLINIC)
        .await
        .unwrap();
    assert!(reader.is_active_physician(physician_addr).await.unwrap());
    assert!(!reader.can_read(patient_addr, physician_addr).await.unwrap());
    assert!(!reader.is_grant_live(id).await.unwrap());
    // The patient can grant the new enrolment afresh.
    world
        .client(PATIENT)
        .grant(
            physician_addr,
            POLICY,
            GrantScope::EVERYTHING,
            Expiry::Never,
        )
        .await
        .unwrap();
    assert!(reader.can_read(patient_addr, physician_addr).await.unwrap());
}

/// Exploit (v1): revoking and re-enrolling an entity revived its physicians'
/// grants. Now the entity's epoch ends them for good.
#[tokio::test]
async fn a_revoked_entity_re_enrolled_revives_no_grant() {
    let world = World::enrolled().await;
    let (patient_addr, locum_addr) = (world.addr(PATIENT), world.addr(LOCUM));
    world
        .client(PATIENT)
        .grant(locum_addr, POLICY, GrantScope::EVERYTHING, Expiry::Never)
        .await
        .unwrap();
    let reader = world.client(STRANGER);
    world
        .client(ADMIN)
        .revoke_entity(world.addr(CLINIC))
        .await
        .unwrap();
    assert!(!reader.can_read(patient_addr, locum_addr).await.unwrap());
    let c = &world.consortium;
    c.enrol_entity(CLINIC, EntityKind::Clinic, "Riverside")
        .await
        .unwrap();
    assert!(!reader.can_read(patient_addr, locum_addr).await.unwrap());
    c.enrol_physician(LOCUM, CLINIC).await.unwrap();
    assert!(!reader.can_read(patient_addr, locum_addr).await.unwrap());
}

#[tokio::test]
async fn an_expired_or_revoked_grant_reads_false_and_only_the_patient_revokes() {
    let world = World::enrolled().await;
    let (patient_addr, physician_addr) = (world.addr(PATIENT), world.addr(PHYSICIAN));
    let patient = world.client(PATIENT);
    let expiry = Expiry::At(UnixSeconds::new(world.chain_time().await + 600).unwrap());
    patient
        .grant(physician_addr, POLICY, GrantScope::EVERYTHING, expiry)
        .await
        .unwrap();
    let reader = world.client(STRANGER);
    assert!(reader.can_read(patient_addr, physician_addr).await.unwrap());
    world.advance_time(601).await;
    assert!(!reader.can_read(patient_addr, physician_addr).await.unwrap());

    patient
        .grant(
            world.addr(LOCUM),
            POLICY,
            GrantScope::EVERYTHING,
            Expiry::Never,
        )
        .await
        .unwrap();
    // Not the hub, the physician, or another patient.
    for index in [HUB, LOCUM, SECOND_PATIENT] {
        assert!(world.client(index).revoke(world.addr(LOCUM)).await.is_err());
    }
    assert!(
        reader
            .can_read(patient_addr, world.addr(LOCUM))
            .await
            .unwrap()
    );
    patient.revoke(world.addr(LOCUM)).await.unwrap();
    assert!(
        !reader
            .can_read(patient_addr, world.addr(LOCUM))
            .await
            .unwrap()
    );
    assert_refused!(
        patient.revoke(world.addr(LOCUM)).await,
        Refusal::Permissions(PermissionsErrors::NoActiveGrant(_))
    );
}

#[tokio::test]
async fn only_patients_grant_and_only_to_active_physicians_with_valid_terms() {
    let world = World::enrolled().await;
    let physician_addr = world.addr(PHYSICIAN);
    let everything = GrantScope::EVERYTHING;
    // A stolen hub key must not widen access; strangers and physicians grant nothing.
    for index in [HUB, PHYSICIAN, STRANGER] {
        assert_refused!(
            world
                .client(index)
                .grant(physician_addr, POLICY, everything, Expiry::Never)
                .await,
            Refusal::Permissions(PermissionsErrors::NotPatient(_))
        );
    }
    let patient = world.client(PATIENT);
    for grantee in [HOSPITAL, HUB, SECOND_PATIENT, STRANGER] {
        assert_refused!(
            patient
                .grant(world.addr(grantee), POLICY, everything, Expiry::Never)
                .await,
            Refusal::Permissions(PermissionsErrors::NotActivePhysician(_))
        );
    }
    assert_refused!(
        patient
            .grant(physician_addr, B256::ZERO, everything, Expiry::Never)
            .await,
        Refusal::Permissions(PermissionsErrors::ZeroPolicyId(_))
    );
    let nothing = GrantScope {
        kinds: DataKinds::NONE,
        ..everything
    };
    assert_refused!(
        patient
            .grant(physician_addr, POLICY, nothing, Expiry::Never)
            .await,
        Refusal::Permissions(PermissionsErrors::InvalidKinds(_))
    );
    let backwards = GrantScope {
        data_from: 2_000,
        data_until: Some(1_000),
        ..everything
    };
    assert_refused!(
        patient
            .grant(physician_addr, POLICY, backwards, Expiry::Never)
            .await,
        Refusal::Permissions(PermissionsErrors::InvalidDataWindow(_))
    );
    let past = Expiry::At(UnixSeconds::new(world.chain_time().await - 1).unwrap());
    assert_refused!(
        patient
            .grant(physician_addr, POLICY, everything, past)
            .await,
        Refusal::Permissions(PermissionsErrors::ExpiryInPast(_))
    );
    // Unknown kind bits (the typed client cannot express them).
    let permissions = Permissions::new(
        world.consortium.deployment.contracts.permissions,
        patient.provider(),
    );
    let err = permissions
        .grant(physician_addr, POLICY, 0x80, 0, 0, 0)
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_decoded_interface_error::<PermissionsErrors>(),
            Some(PermissionsErrors::InvalidKinds(_))
        ),
        "{err}"
    );
}

fn emergency_policy() -> EmergencyPolicy {
    EmergencyPolicy {
        kinds: DataKinds::GLUCOSE | DataKinds::FINDINGS,
        max_duration_secs: 6 * 3600,
        lookback_secs: 7 * 86_400,
        enabled: true,
    }
}

#[tokio::test]
async fn an_emergency_physician_opens_time_limited_access_under_the_patients_policy() {
    let world = World::with_emergency_service().await;
    let (patient_addr, paramedic_addr) = (world.addr(PATIENT), world.addr(PARAMEDIC));
    let paramedic = world.client(PARAMEDIC);
    let reader = world.client(STRANGER);
    // No policy yet: no emergency access.
    assert_refused!(
        paramedic.emergency_access(patient_addr).await,
        Refusal::Permissions(PermissionsErrors::NoEmergencyPolicy(_))
    );
    world
        .client(PATIENT)
        .set_emergency_policy(emergency_policy())
        .await
        .unwrap();
    assert_eq!(
        reader.emergency_policy_of(patient_addr).await.unwrap(),
        emergency_policy()
    );
    // A physician of a hospital is not an emergency service's.
    assert_refused!(
        world.client(PHYSICIAN).emergency_access(patient_addr).await,
        Refusal::Permissions(PermissionsErrors::NotEmergencyPhysician(_))
    );
    let before = world.chain_time().await;
    let (tx, id) = paramedic.emergency_access(patient_addr).await.unwrap();
    assert!(reader.can_read(patient_addr, paramedic_addr).await.unwrap());
    let grant = reader
        .current_grant(patient_addr, paramedic_addr)
        .await
        .unwrap()
        .unwrap();
    assert!(grant.emergency);
    assert_eq!(grant.id, id);
    assert_eq!(grant.scope.kinds, emergency_policy().kinds);
    let Expiry::At(expires) = grant.expiry else {
        panic!("an emergency grant always expires")
    };
    assert!(expires.get() <= before + 6 * 3600 + 5, "{expires:?}");
    assert!(grant.scope.data_from >= before - 7 * 86_400);
    // Announced for the hub.
    let opened = reader
        .emergency_accesses(patient_addr, tx.block, None)
        .await
        .unwrap();
    assert_eq!(opened.len(), 1);
    assert_eq!(
        (opened[0].physician, opened[0].grant_id),
        (paramedic_addr, id)
    );
    assert_eq!(opened[0].entity, world.addr(EMERGENCY_SERVICE));
    // No extension while it lasts; none after it ends.
    assert_refused!(
        paramedic.emergency_access(patient_addr).await,
        Refusal::Permissions(PermissionsErrors::AlreadyGranted(_))
    );
    world.advance_time(6 * 3600 + 1).await;
    assert!(!reader.can_read(patient_addr, paramedic_addr).await.unwrap());
}

#[tokio::test]
async fn the_patient_ends_an_emergency_access_and_bounds_the_policy() {
    let world = World::with_emergency_service().await;
    let patient = world.client(PATIENT);
    let too_long = EmergencyPolicy {
        max_duration_secs: 4 * 86_400,
        ..emergency_policy()
    };
    assert_refused!(
        patient.set_emergency_policy(too_long).await,
        Refusal::Permissions(PermissionsErrors::InvalidEmergencyPolicy(_))
    );
    assert_refused!(
        world
            .client(HUB)
            .set_emergency_policy(emergency_policy())
            .await,
        Refusal::Permissions(PermissionsErrors::NotPatient(_))
    );
    patient
        .set_emergency_policy(emergency_policy())
        .await
        .unwrap();
    world
        .client(PARAMEDIC)
        .emergency_access(world.addr(PATIENT))
        .await
        .unwrap();
    patient.revoke(world.addr(PARAMEDIC)).await.unwrap();
    let reader = world.client(STRANGER);
    assert!(
        !reader
            .can_read(world.addr(PATIENT), world.addr(PARAMEDIC))
            .await
            .unwrap()
    );
    // Turned off, the policy allows nothing.
    patient
        .set_emergency_policy(EmergencyPolicy {
            enabled: false,
            ..emergency_policy()
        })
        .await
        .unwrap();
    assert_refused!(
        world
            .client(PARAMEDIC)
            .emergency_access(world.addr(PATIENT))
            .await,
        Refusal::Permissions(PermissionsErrors::NoEmergencyPolicy(_))
    );
}
