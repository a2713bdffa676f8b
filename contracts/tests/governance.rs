//! Governance: the consortium admin as an M-of-N of enrolled hospitals.

mod support;

use glyco_contracts::bindings::Consortium::{self, ConsortiumErrors};
use glyco_contracts::bindings::Roles::{self, RolesErrors};
use glyco_contracts::deploy::deploy_consortium;
use glyco_contracts::{Address, EntityKind, GlycoClient, Refusal, Role};
use support::{World, accounts::*};

/// Three hospitals, the admin handed to a 2-of-3 consortium.
struct Governed {
    world: World,
    consortium: Address,
}

impl Governed {
    async fn start() -> Self {
        let mut world = World::enrolled().await;
        let c = &world.consortium;
        c.enrol_entity(SECOND_HOSPITAL, EntityKind::Hospital, "Mercy General")
            .await
            .unwrap();
        c.enrol_entity(THIRD_HOSPITAL, EntityKind::Hospital, "Royal Infirmary")
            .await
            .unwrap();
        let (consortium, _) =
            deploy_consortium(c.devnet.rpc_url(), c.signer(ADMIN), &c.deployment, 2)
                .await
                .unwrap();
        world.consortium.deployment.contracts.consortium = Some(consortium);
        let governed = Self { world, consortium };
        governed
            .client(ADMIN)
            .transfer_admin(consortium)
            .await
            .unwrap();
        let id = governed.propose(HOSPITAL, &Roles::acceptAdminCall {}).await;
        governed
            .client(SECOND_HOSPITAL)
            .approve_proposal(id)
            .await
            .unwrap();
        governed
            .client(HOSPITAL)
            .execute_proposal(id)
            .await
            .unwrap();
        governed
    }

    fn client(&self, index: u32) -> GlycoClient {
        self.world.client(index)
    }

    fn roles(&self) -> Address {
        self.world.consortium.deployment.contracts.roles
    }

    async fn propose<C: alloy::sol_types::SolCall>(&self, by: u32, call: &C) -> u64 {
        self.client(by).propose(self.roles(), call).await.unwrap().1
    }
}

#[tokio::test]
async fn the_admin_is_handed_to_the_hospitals_and_the_old_key_loses_its_powers() {
    let g = Governed::start().await;
    let reader = g.client(STRANGER);
    assert_eq!(reader.admin().await.unwrap(), g.consortium);
    assert_eq!(reader.consortium_threshold().await.unwrap(), 2);
    assert_refused!(
        g.client(ADMIN)
            .offer_entity(g.world.addr(STRANGER), EntityKind::Lab, "Lab")
            .await,
        Refusal::Roles(RolesErrors::NotAdmin(_))
    );
    // An enrolment is now a proposal two hospitals approve.
    let offer = Roles::offerPhysicianCall {
        account: g.world.addr(NEXT_ADMIN),
        entity: g.world.addr(HOSPITAL),
    };
    let id = g.propose(SECOND_HOSPITAL, &offer).await;
    assert_refused!(
        g.client(SECOND_HOSPITAL).execute_proposal(id).await,
        Refusal::Consortium(ConsortiumErrors::NotEnoughApprovals(_))
    );
    g.client(THIRD_HOSPITAL).approve_proposal(id).await.unwrap();
    g.client(THIRD_HOSPITAL).execute_proposal(id).await.unwrap();
    g.client(NEXT_ADMIN)
        .accept_role(g.consortium, Role::Physician)
        .await
        .unwrap();
    assert!(
        reader
            .is_active_physician(g.world.addr(NEXT_ADMIN))
            .await
            .unwrap()
    );
    // Executed once.
    assert_refused!(
        g.client(HOSPITAL).execute_proposal(id).await,
        Refusal::Consortium(ConsortiumErrors::ProposalClosed(_))
    );
}

#[tokio::test]
async fn only_active_hospitals_propose_approve_and_execute_and_each_approves_once() {
    let g = Governed::start().await;
    let revoke = Roles::revokePhysicianCall {
        physician: g.world.addr(LOCUM),
    };
    for index in [CLINIC, PHYSICIAN, PATIENT, PROXY, STRANGER, ADMIN] {
        assert_refused!(
            g.client(index).propose(g.roles(), &revoke).await,
            Refusal::Consortium(ConsortiumErrors::NotActiveHospital(_))
        );
    }
    let id = g.propose(HOSPITAL, &revoke).await;
    assert_refused!(
        g.client(HOSPITAL).approve_proposal(id).await,
        Refusal::Consortium(ConsortiumErrors::AlreadyApproved(_))
    );
    assert_refused!(
        g.client(CLINIC).approve_proposal(id).await,
        Refusal::Consortium(ConsortiumErrors::NotActiveHospital(_))
    );
    assert_refused!(
        g.client(SECOND_HOSPITAL).cancel_proposal(id).await,
        Refusal::Consortium(ConsortiumErrors::NotProposer(_))
    );
    assert_refused!(
        g.client(SECOND_HOSPITAL).approve_proposal(99).await,
        Refusal::Consortium(ConsortiumErrors::UnknownProposal(_))
    );
    g.client(HOSPITAL).cancel_proposal(id).await.unwrap();
    assert_refused!(
        g.client(SECOND_HOSPITAL).approve_proposal(id).await,
        Refusal::Consortium(ConsortiumErrors::ProposalClosed(_))
    );
}

#[tokio::test]
async fn approvals_of_revoked_hospitals_do_not_count_and_proposals_expire() {
    let g = Governed::start().await;
    // Revoke the third hospital through governance (2 of 3).
    let revoke_third = Roles::revokeEntityCall {
        entity: g.world.addr(THIRD_HOSPITAL),
    };
    let offer = Roles::offerEntityCall {
        account: g.world.addr(STRANGER),
        kind: 3,
        name: "Lab".into(),
    };
    let pending = g.propose(THIRD_HOSPITAL, &offer).await;
    let id = g.propose(HOSPITAL, &revoke_third).await;
    g.client(SECOND_HOSPITAL)
        .approve_proposal(id)
        .await
        .unwrap();
    g.client(SECOND_HOSPITAL)
        .execute_proposal(id)
        .await
        .unwrap();
    // The revoked hospital's approval of `pending` no longer counts.
    g.client(HOSPITAL).approve_proposal(pending).await.unwrap();
    let reader = g.client(STRANGER);
    assert_eq!(reader.approval_count(pending).await.unwrap(), 1);
    assert_refused!(
        g.client(HOSPITAL).execute_proposal(pending).await,
        Refusal::Consortium(ConsortiumErrors::NotEnoughApprovals(_))
    );
    g.world.advance_time(8 * 86_400).await;
    assert_refused!(
        g.client(SECOND_HOSPITAL).approve_proposal(pending).await,
        Refusal::Consortium(ConsortiumErrors::ProposalExpired(_))
    );
}

#[tokio::test]
async fn the_threshold_changes_only_by_proposal_and_never_locks_the_consortium() {
    let g = Governed::start().await;
    let consortium = Consortium::new(g.consortium, g.client(HOSPITAL).provider().clone());
    let err = consortium.setThreshold(1).send().await.unwrap_err();
    assert!(
        matches!(
            err.as_decoded_interface_error::<ConsortiumErrors>(),
            Some(ConsortiumErrors::OnlyByProposal(_))
        ),
        "{err}"
    );
    let too_many = Consortium::setThresholdCall { newThreshold: 4 };
    let (_, id) = g
        .client(HOSPITAL)
        .propose(g.consortium, &too_many)
        .await
        .unwrap();
    g.client(SECOND_HOSPITAL)
        .approve_proposal(id)
        .await
        .unwrap();
    assert_refused!(
        g.client(HOSPITAL).execute_proposal(id).await,
        Refusal::Consortium(ConsortiumErrors::InvalidThreshold(_))
    );
    let three = Consortium::setThresholdCall { newThreshold: 3 };
    let (_, id) = g
        .client(HOSPITAL)
        .propose(g.consortium, &three)
        .await
        .unwrap();
    g.client(SECOND_HOSPITAL)
        .approve_proposal(id)
        .await
        .unwrap();
    g.client(HOSPITAL).execute_proposal(id).await.unwrap();
    assert_eq!(g.client(STRANGER).consortium_threshold().await.unwrap(), 3);
    // With 3 of 3 needed, revoking a hospital would leave the consortium unable to act.
    let revoke = Roles::revokeEntityCall {
        entity: g.world.addr(THIRD_HOSPITAL),
    };
    let id = g.propose(HOSPITAL, &revoke).await;
    g.client(SECOND_HOSPITAL)
        .approve_proposal(id)
        .await
        .unwrap();
    g.client(THIRD_HOSPITAL).approve_proposal(id).await.unwrap();
    assert_refused!(
        g.client(HOSPITAL).execute_proposal(id).await,
        Refusal::Consortium(ConsortiumErrors::WouldLockConsortium(_))
    );
}

#[tokio::test]
async fn a_proposal_refused_by_roles_reports_the_roles_error() {
    let g = Governed::start().await;
    let bad = Roles::offerPhysicianCall {
        account: g.world.addr(PATIENT),
        entity: g.world.addr(HOSPITAL),
    };
    let id = g.propose(HOSPITAL, &bad).await;
    g.client(SECOND_HOSPITAL)
        .approve_proposal(id)
        .await
        .unwrap();
    assert_refused!(
        g.client(HOSPITAL).execute_proposal(id).await,
        Refusal::Roles(RolesErrors::RoleTaken(_))
    );
}
