//! Traceability: accesses decided and logged in one transaction from a
//! physician's signed request, and anchors keyed by (patient, root).

mod support;

use std::time::Duration;

use alloy::primitives::U256;
use glyco_contracts::bindings::AccessLog::{self, AccessLogErrors};
use glyco_contracts::bindings::Anchors::AnchorsErrors;
use glyco_contracts::bindings::Permissions::PermissionsErrors;
use glyco_contracts::client::AccessRequest;
use glyco_contracts::{
    AccessAction, AnchorOutcome, B256, BatchAnchor, ChainError, DataKinds, EmergencyPolicy, Expiry,
    GrantScope, Refusal, UnixSeconds,
};
use support::{World, accounts::*};

const POLICY: B256 = B256::repeat_byte(0x42);
const TEN_MINUTES: Duration = Duration::from_secs(600);
const HOUR_START: u64 = 1_700_000_000;

async fn granted_world() -> (World, B256) {
    let world = World::enrolled().await;
    world
        .client(PATIENT)
        .grant(
            world.addr(PHYSICIAN),
            POLICY,
            GrantScope::EVERYTHING,
            Expiry::Never,
        )
        .await
        .unwrap();
    let root = world.anchored_glucose_batch(0xb1, HOUR_START).await;
    (world, root)
}

#[tokio::test]
async fn a_proxy_records_a_signed_access_that_anyone_can_list() {
    let (world, root) = granted_world().await;
    let (patient_addr, physician_addr) = (world.addr(PATIENT), world.addr(PHYSICIAN));
    let request = world
        .client(PHYSICIAN)
        .sign_access_request(patient_addr, world.addr(PROXY), root, TEN_MINUTES)
        .await
        .unwrap();
    let outcome = world.client(PROXY).record_access(&request).await.unwrap();
    assert!(outcome.tx.is_some());
    let entry = outcome.entry;
    assert_eq!(
        (entry.patient, entry.physician),
        (patient_addr, physician_addr)
    );
    assert_eq!((entry.proxy, entry.data_id), (world.addr(PROXY), root));
    assert_eq!(entry.action, Some(AccessAction::Read));
    assert_eq!(entry.seq, 1);

    let reader = world.client(STRANGER);
    assert_eq!(reader.access_count(patient_addr).await.unwrap(), 1);
    assert_eq!(
        reader.access_log_of(patient_addr, 0).await.unwrap(),
        vec![entry]
    );
    assert_eq!(
        reader.accesses_by(physician_addr, 0).await.unwrap(),
        vec![entry]
    );
    assert!(
        reader
            .access_log_of(world.addr(SECOND_PATIENT), 0)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Exploit (v1): any hospital could log any accessor (even address zero)
/// reading any patient's data with no grant behind it, and a physician could
/// log themselves reading a patient who never granted them.
#[tokio::test]
async fn nobody_can_log_an_access_no_grant_allows() {
    let world = World::enrolled().await;
    let root = world.anchored_glucose_batch(0xb1, HOUR_START).await;
    let patient_addr = world.addr(PATIENT);
    // No grant: the proxy's call is refused, nothing is logged.
    let request = world
        .client(PHYSICIAN)
        .sign_access_request(patient_addr, world.addr(PROXY), root, TEN_MINUTES)
        .await
        .unwrap();
    assert_refused!(
        world.client(PROXY).record_access(&request).await,
        Refusal::Permissions(PermissionsErrors::NoLiveGrant(_))
    );
    // A hospital's own key, a physician, a patient: none of them is a proxy.
    for index in [HOSPITAL, PHYSICIAN, PATIENT, HUB, STRANGER] {
        let own = world
            .client(PHYSICIAN)
            .sign_access_request(patient_addr, world.addr(index), root, TEN_MINUTES)
            .await
            .unwrap();
        assert_refused!(
            world.client(index).record_access(&own).await,
            Refusal::AccessLog(AccessLogErrors::NotActiveProxy(_))
        );
    }
    // A forged request: the proxy names a physician who never signed it.
    let mut forged = request.clone();
    forged.request.physician = world.addr(LOCUM);
    assert_refused!(
        world.client(PROXY).record_access(&forged).await,
        Refusal::AccessLog(AccessLogErrors::WrongSigner(_))
    );
    let mut zero = request.clone();
    zero.request.physician = glyco_contracts::Address::ZERO;
    assert_refused!(
        world.client(PROXY).record_access(&zero).await,
        Refusal::AccessLog(AccessLogErrors::WrongSigner(_))
    );
    assert_eq!(
        world
            .client(STRANGER)
            .access_count(patient_addr)
            .await
            .unwrap(),
        0
    );
}

/// Exploit (v1): `mayReencrypt` was a view apart from logging, so a revoke
/// landing between the two let a proxy serve after the revoke. Now the log
/// entry is the decision: after the revoke there is no entry to make.
#[tokio::test]
async fn a_revoke_between_request_and_record_stops_the_access() {
    let (world, root) = granted_world().await;
    let request = world
        .client(PHYSICIAN)
        .sign_access_request(world.addr(PATIENT), world.addr(PROXY), root, TEN_MINUTES)
        .await
        .unwrap();
    world
        .client(PATIENT)
        .revoke(world.addr(PHYSICIAN))
        .await
        .unwrap();
    assert_refused!(
        world.client(PROXY).record_access(&request).await,
        Refusal::Permissions(PermissionsErrors::NoLiveGrant(_))
    );
}

#[tokio::test]
async fn a_request_is_used_once_by_the_proxy_it_names_before_its_deadline() {
    let (world, root) = granted_world().await;
    enrol_second_proxy(&world).await;
    let physician = world.client(PHYSICIAN);
    let request = physician
        .sign_access_request(world.addr(PATIENT), world.addr(PROXY), root, TEN_MINUTES)
        .await
        .unwrap();
    // Another proxy cannot use it.
    assert_refused!(
        world.client(SECOND_PROXY).record_access(&request).await,
        Refusal::AccessLog(AccessLogErrors::WrongProxy(_))
    );
    let proxy = world.client(PROXY);
    let first = proxy.record_access(&request).await.unwrap();
    // The client's retry finds its own entry instead of logging twice.
    let retry = proxy.record_access(&request).await.unwrap();
    assert!(retry.tx.is_none());
    assert_eq!(retry.entry, first.entry);
    // A raw replay is refused by the contract.
    let access_log = AccessLog::new(
        world.consortium.deployment.contracts.access_log,
        proxy.provider(),
    );
    let r = request.request;
    let raw = AccessLog::AccessRequest {
        patient: r.patient,
        physician: r.physician,
        proxy: r.proxy,
        dataId: r.data_id,
        nonce: r.nonce,
        deadline: r.deadline.get(),
    };
    let err = access_log
        .recordAccess(raw, request.signature.clone())
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err.as_decoded_interface_error::<AccessLogErrors>(),
            Some(AccessLogErrors::NonceUsed(_))
        ),
        "{err}"
    );
    assert_eq!(
        world
            .client(STRANGER)
            .access_count(world.addr(PATIENT))
            .await
            .unwrap(),
        1
    );

    // Expired, or good for longer than an hour: refused.
    let expired = physician
        .sign_access_request(world.addr(PATIENT), world.addr(PROXY), root, TEN_MINUTES)
        .await
        .unwrap();
    world.advance_time(601 + 3600).await;
    assert_refused!(
        proxy.record_access(&expired).await,
        Refusal::AccessLog(AccessLogErrors::RequestExpired(_))
    );
    let far = AccessRequest {
        patient: world.addr(PATIENT),
        physician: world.addr(PHYSICIAN),
        proxy: world.addr(PROXY),
        data_id: root,
        nonce: U256::from(7),
        deadline: UnixSeconds::new(world.chain_time().await + 2 * 3600).unwrap(),
    };
    let deployment = &world.consortium.deployment;
    let far = far
        .sign(
            &world.consortium.signer(PHYSICIAN),
            deployment.chain_id,
            deployment.contracts.access_log,
        )
        .unwrap();
    assert_refused!(
        proxy.record_access(&far).await,
        Refusal::AccessLog(AccessLogErrors::DeadlineTooFar(_))
    );
}

async fn enrol_second_proxy(world: &World) {
    world
        .consortium
        .enrol_proxy(HOSPITAL, SECOND_PROXY)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_grant_scope_and_the_anchor_decide_what_may_be_read() {
    let world = World::enrolled().await;
    let patient_addr = world.addr(PATIENT);
    let scope = GrantScope {
        kinds: DataKinds::GLUCOSE,
        data_from: HOUR_START,
        data_until: Some(HOUR_START + 2 * 3600),
    };
    world
        .client(PATIENT)
        .grant(world.addr(PHYSICIAN), POLICY, scope, Expiry::Never)
        .await
        .unwrap();
    let hub = world.client(HUB);
    let blood_pressure = BatchAnchor {
        root: B256::repeat_byte(0xc1),
        window_start: HOUR_START,
        window_end: HOUR_START + 3599,
        count: 4,
        kinds: DataKinds::BLOOD_PRESSURE,
    };
    let too_late = BatchAnchor {
        root: B256::repeat_byte(0xc2),
        window_start: HOUR_START + 2 * 3600,
        window_end: HOUR_START + 3 * 3600,
        count: 12,
        kinds: DataKinds::GLUCOSE,
    };
    for batch in [blood_pressure, too_late] {
        hub.anchor(patient_addr, batch).await.unwrap();
    }
    let in_scope = world.anchored_glucose_batch(0xc3, HOUR_START + 3600).await;
    let physician = world.client(PHYSICIAN);
    let proxy = world.client(PROXY);
    let ask =
        |root| physician.sign_access_request(patient_addr, world.addr(PROXY), root, TEN_MINUTES);
    for root in [blood_pressure.root, too_late.root] {
        assert_refused!(
            proxy.record_access(&ask(root).await.unwrap()).await,
            Refusal::Permissions(PermissionsErrors::OutOfScope(_))
        );
    }
    assert_refused!(
        proxy
            .record_access(&ask(B256::repeat_byte(0xee)).await.unwrap())
            .await,
        Refusal::AccessLog(AccessLogErrors::NotAnchored(_))
    );
    proxy
        .record_access(&ask(in_scope).await.unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_emergency_read_is_logged_as_one() {
    let world = World::with_emergency_service().await;
    world
        .client(PATIENT)
        .set_emergency_policy(EmergencyPolicy {
            kinds: DataKinds::GLUCOSE,
            max_duration_secs: 3600,
            lookback_secs: 90 * 86_400,
            enabled: true,
        })
        .await
        .unwrap();
    let recent = world.chain_time().await - 7200;
    let root = world.anchored_glucose_batch(0xd1, recent).await;
    world
        .client(PARAMEDIC)
        .emergency_access(world.addr(PATIENT))
        .await
        .unwrap();
    let request = world
        .client(PARAMEDIC)
        .sign_access_request(world.addr(PATIENT), world.addr(PROXY), root, TEN_MINUTES)
        .await
        .unwrap();
    let outcome = world.client(PROXY).record_access(&request).await.unwrap();
    assert_eq!(outcome.entry.action, Some(AccessAction::EmergencyRead));
}

#[tokio::test]
async fn a_hub_anchors_batches_exactly_once_per_patient() {
    let world = World::enrolled().await;
    let patient_addr = world.addr(PATIENT);
    let hub = world.client(HUB);
    let batch = BatchAnchor {
        root: B256::repeat_byte(0xa1),
        window_start: HOUR_START,
        window_end: HOUR_START + 3599,
        count: 60,
        kinds: DataKinds::GLUCOSE,
    };
    let AnchorOutcome::Anchored(_) = hub.anchor(patient_addr, batch).await.unwrap() else {
        panic!("a new batch is anchored")
    };
    // A retry (say, after a crash before the outbox saw the receipt) is done already.
    let AnchorOutcome::AlreadyAnchored(record) = hub.anchor(patient_addr, batch).await.unwrap()
    else {
        panic!("a repeat is recognised")
    };
    assert_eq!(
        (record.batch, record.submitter, record.seq),
        (batch, world.addr(HUB), 1)
    );
    let reader = world.client(STRANGER);
    assert_eq!(
        reader.anchor_of(patient_addr, batch.root).await.unwrap(),
        Some(record)
    );
    assert_eq!(reader.anchor_count(patient_addr).await.unwrap(), 1);
    let listed = reader.anchors_of(patient_addr, 0).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].batch, batch);
    // The same root with other contents is a conflict, never "done".
    let other = BatchAnchor { count: 61, ..batch };
    assert!(matches!(
        hub.anchor(patient_addr, other).await,
        Err(ChainError::AnchorConflict { .. })
    ));
}

/// Exploit (v1): roots were first-come across patients; anyone who saw a
/// root in the mempool could anchor it under their own patient, and the
/// victim's retry got AlreadyAnchored. Now anchors are keyed by patient.
#[tokio::test]
async fn a_root_anchored_first_by_someone_else_does_not_block_the_patient() {
    let world = World::enrolled().await;
    let batch = BatchAnchor {
        root: B256::repeat_byte(0xa7),
        window_start: HOUR_START,
        window_end: HOUR_START + 3599,
        count: 60,
        kinds: DataKinds::GLUCOSE,
    };
    world
        .client(SECOND_PATIENT)
        .anchor(world.addr(SECOND_PATIENT), batch)
        .await
        .unwrap();
    let outcome = world
        .client(HUB)
        .anchor(world.addr(PATIENT), batch)
        .await
        .unwrap();
    assert!(matches!(outcome, AnchorOutcome::Anchored(_)));
    let reader = world.client(STRANGER);
    let mine = reader
        .anchor_of(world.addr(PATIENT), batch.root)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mine.submitter, world.addr(HUB));
}

#[tokio::test]
async fn anchoring_refuses_strangers_other_patients_hubs_and_malformed_batches() {
    let world = World::enrolled().await;
    let patient_addr = world.addr(PATIENT);
    let good = BatchAnchor {
        root: B256::repeat_byte(0xa1),
        window_start: HOUR_START,
        window_end: HOUR_START + 3599,
        count: 60,
        kinds: DataKinds::GLUCOSE,
    };
    for index in [STRANGER, PHYSICIAN, PROXY, SECOND_PATIENT] {
        assert_refused!(
            world.client(index).anchor(patient_addr, good).await,
            Refusal::Anchors(AnchorsErrors::NotActingForPatient(_))
        );
    }
    let hub = world.client(HUB);
    for (bad, what) in [
        (
            BatchAnchor {
                root: B256::ZERO,
                ..good
            },
            "zero root",
        ),
        (BatchAnchor { count: 0, ..good }, "empty"),
        (
            BatchAnchor {
                window_end: HOUR_START - 1,
                ..good
            },
            "backwards",
        ),
        (
            BatchAnchor {
                kinds: DataKinds::NONE,
                ..good
            },
            "no kinds",
        ),
    ] {
        let err = hub.anchor(patient_addr, bad).await.unwrap_err();
        assert!(err.refusal().is_some(), "{what}: {err}");
    }
}

#[tokio::test]
async fn one_access_covers_a_set_of_anchored_roots_only_if_every_one_is_in_scope() {
    let world = World::enrolled().await;
    let patient_addr = world.addr(PATIENT);
    let scope = GrantScope {
        kinds: DataKinds::GLUCOSE,
        data_from: HOUR_START,
        data_until: Some(HOUR_START + 3 * 3600),
    };
    world
        .client(PATIENT)
        .grant(world.addr(PHYSICIAN), POLICY, scope, Expiry::Never)
        .await
        .unwrap();
    let day: Vec<B256> = (0u8..3).map(|h| B256::repeat_byte(0xa0 + h)).collect();
    for (i, root) in day.iter().enumerate() {
        let anchored = world
            .anchored_glucose_batch(root.0[0], HOUR_START + i as u64 * 3600)
            .await;
        assert_eq!(anchored, *root);
    }
    let late = world
        .anchored_glucose_batch(0xaf, HOUR_START + 5 * 3600)
        .await;
    let physician = world.client(PHYSICIAN);
    let proxy = world.client(PROXY);
    let ask = |roots: Vec<B256>| {
        let physician = &physician;
        let world = &world;
        async move {
            physician
                .sign_access_request(
                    patient_addr,
                    world.addr(PROXY),
                    glyco_contracts::roots_digest(&roots),
                    TEN_MINUTES,
                )
                .await
                .unwrap()
        }
    };
    // The three hours in scope: one transaction, one log entry, the roots
    // in its event.
    let request = ask(day.clone()).await;
    let outcome = proxy.record_access_set(&request, &day).await.unwrap();
    assert_eq!(outcome.entry.data_id, glyco_contracts::roots_digest(&day));
    assert_eq!(outcome.entry.physician, world.addr(PHYSICIAN));
    assert_refused!(
        proxy
            .record_access_set(&ask(day.clone()).await, &day[..2])
            .await,
        Refusal::AccessLog(AccessLogErrors::RootsMismatch(_))
    );
    // One root out of the grant's window spoils the set; so does one that
    // was never anchored.
    let mut with_late = day.clone();
    with_late.push(late);
    assert_refused!(
        proxy
            .record_access_set(&ask(with_late.clone()).await, &with_late)
            .await,
        Refusal::Permissions(PermissionsErrors::OutOfScope(_))
    );
    let mut with_unknown = day.clone();
    with_unknown.push(B256::repeat_byte(0xee));
    assert_refused!(
        proxy
            .record_access_set(&ask(with_unknown.clone()).await, &with_unknown)
            .await,
        Refusal::AccessLog(AccessLogErrors::NotAnchored(_))
    );
    assert_refused!(
        proxy.record_access_set(&ask(Vec::new()).await, &[]).await,
        Refusal::AccessLog(AccessLogErrors::TooManyRoots(_))
    );
}
