//! Permissions: grants with a policy id and optional expiry, revocation, and
//! the view a re-encryption proxy asks (the 2020 paper's Algorithm 3).

mod support;

use glyco_contracts::bindings::Permissions::PermissionsErrors;
use glyco_contracts::{Access, B256, Refusal};
use support::{World, accounts::*};

const POLICY: B256 = B256::repeat_byte(0x42);

#[tokio::test]
async fn a_patient_grants_read_and_the_proxy_may_reencrypt_under_that_policy() {
    let world = World::enrolled().await;
    let (patient_addr, physician_addr) = (world.addr(PATIENT), world.addr(PHYSICIAN));
    let patient = world.client(PATIENT);
    assert!(
        !patient
            .can_read(patient_addr, physician_addr)
            .await
            .unwrap()
    );
    assert_eq!(
        patient
            .grant_of(patient_addr, physician_addr)
            .await
            .unwrap(),
        None
    );

    patient
        .grant(physician_addr, POLICY, Access::READ, None)
        .await
        .unwrap();
    let proxy = world.client(HOSPITAL);
    assert!(proxy.can_read(patient_addr, physician_addr).await.unwrap());
    assert!(!proxy.can_write(patient_addr, physician_addr).await.unwrap());
    assert!(
        proxy
            .may_reencrypt(patient_addr, physician_addr, POLICY)
            .await
            .unwrap()
    );
    // A different policy id, or another physician, gets nothing.
    assert!(
        !proxy
            .may_reencrypt(patient_addr, physician_addr, B256::repeat_byte(1))
            .await
            .unwrap()
    );
    assert!(
        !proxy
            .may_reencrypt(patient_addr, world.addr(LOCUM), POLICY)
            .await
            .unwrap()
    );
    // Nor does the grant leak to another patient's data.
    assert!(
        !proxy
            .can_read(world.addr(SECOND_PATIENT), physician_addr)
            .await
            .unwrap()
    );

    let grant = proxy
        .grant_of(patient_addr, physician_addr)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.policy_id, POLICY);
    assert_eq!(grant.access, Access::READ);
    assert_eq!(grant.expires_at, None);
    assert!(grant.active);
}

#[tokio::test]
async fn a_revoked_permission_reads_false() {
    let world = World::enrolled().await;
    let (patient_addr, physician_addr) = (world.addr(PATIENT), world.addr(PHYSICIAN));
    let patient = world.client(PATIENT);
    patient
        .grant(physician_addr, POLICY, Access::READ_WRITE, None)
        .await
        .unwrap();
    patient.revoke(physician_addr).await.unwrap();
    assert!(
        !patient
            .can_read(patient_addr, physician_addr)
            .await
            .unwrap()
    );
    assert!(
        !patient
            .can_write(patient_addr, physician_addr)
            .await
            .unwrap()
    );
    assert!(
        !patient
            .may_reencrypt(patient_addr, physician_addr, POLICY)
            .await
            .unwrap()
    );
    assert!(
        !patient
            .grant_of(patient_addr, physician_addr)
            .await
            .unwrap()
            .unwrap()
            .active
    );
    assert_refused!(
        patient.revoke(physician_addr).await,
        Refusal::Permissions(PermissionsErrors::NoActiveGrant(_))
    );
    // Granting again restores access.
    patient
        .grant(physician_addr, POLICY, Access::READ, None)
        .await
        .unwrap();
    assert!(
        patient
            .can_read(patient_addr, physician_addr)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn an_expired_permission_reads_false() {
    let world = World::enrolled().await;
    let (patient_addr, locum_addr) = (world.addr(PATIENT), world.addr(LOCUM));
    let patient = world.client(PATIENT);
    let expires_at = world.chain_time().await + 3600;
    patient
        .grant(locum_addr, POLICY, Access::READ, Some(expires_at))
        .await
        .unwrap();
    assert!(patient.can_read(patient_addr, locum_addr).await.unwrap());
    assert!(
        patient
            .may_reencrypt(patient_addr, locum_addr, POLICY)
            .await
            .unwrap()
    );

    world.advance_time(3601).await;
    assert!(world.chain_time().await >= expires_at);
    assert!(!patient.can_read(patient_addr, locum_addr).await.unwrap());
    assert!(
        !patient
            .may_reencrypt(patient_addr, locum_addr, POLICY)
            .await
            .unwrap()
    );
    // The record remains (for the audit), only its effect ended.
    let grant = patient
        .grant_of(patient_addr, locum_addr)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.expires_at, Some(expires_at));
}

#[tokio::test]
async fn revoking_the_physician_or_their_hospital_ends_their_grants() {
    let world = World::enrolled().await;
    let (patient_addr, physician_addr) = (world.addr(PATIENT), world.addr(PHYSICIAN));
    world
        .client(PATIENT)
        .grant(physician_addr, POLICY, Access::READ, None)
        .await
        .unwrap();
    let admin = world.client(ADMIN);
    admin.revoke_entity(world.addr(HOSPITAL)).await.unwrap();
    assert!(!admin.can_read(patient_addr, physician_addr).await.unwrap());
    assert!(
        !admin
            .may_reencrypt(patient_addr, physician_addr, POLICY)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn write_only_grants_do_not_allow_reading() {
    let world = World::enrolled().await;
    let (patient_addr, physician_addr) = (world.addr(PATIENT), world.addr(PHYSICIAN));
    let patient = world.client(PATIENT);
    let write_only = Access {
        read: false,
        write: true,
    };
    patient
        .grant(physician_addr, POLICY, write_only, None)
        .await
        .unwrap();
    assert!(
        patient
            .can_write(patient_addr, physician_addr)
            .await
            .unwrap()
    );
    assert!(
        !patient
            .can_read(patient_addr, physician_addr)
            .await
            .unwrap()
    );
    assert!(
        !patient
            .may_reencrypt(patient_addr, physician_addr, POLICY)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn only_patients_grant_and_only_to_active_physicians_with_valid_terms() {
    let world = World::enrolled().await;
    let physician_addr = world.addr(PHYSICIAN);
    // Not a hub (a stolen hub key must not widen access), not a physician, not a stranger.
    for index in [HUB, PHYSICIAN, HOSPITAL, STRANGER] {
        assert_refused!(
            world
                .client(index)
                .grant(physician_addr, POLICY, Access::READ, None)
                .await,
            Refusal::Permissions(PermissionsErrors::NotPatient(_))
        );
    }
    let patient = world.client(PATIENT);
    for grantee in [
        world.addr(HOSPITAL),
        world.addr(STRANGER),
        world.addr(SECOND_PATIENT),
    ] {
        assert_refused!(
            patient.grant(grantee, POLICY, Access::READ, None).await,
            Refusal::Permissions(PermissionsErrors::NotActivePhysician(_))
        );
    }
    assert_refused!(
        patient
            .grant(physician_addr, B256::ZERO, Access::READ, None)
            .await,
        Refusal::Permissions(PermissionsErrors::ZeroPolicyId(_))
    );
    assert_refused!(
        patient
            .grant(physician_addr, POLICY, Access::default(), None)
            .await,
        Refusal::Permissions(PermissionsErrors::NothingGranted(_))
    );
    let past = world.chain_time().await - 1;
    assert_refused!(
        patient
            .grant(physician_addr, POLICY, Access::READ, Some(past))
            .await,
        Refusal::Permissions(PermissionsErrors::ExpiryInPast(_))
    );
    assert_refused!(
        world.client(SECOND_PATIENT).revoke(physician_addr).await,
        Refusal::Permissions(PermissionsErrors::NoActiveGrant(_))
    );
}
