//! Releases: only the consortium admin vouches for a hub bundle; a hash is
//! published once; a withdrawn release is no longer installable.

mod support;

use glyco_contracts::bindings::Releases::ReleasesErrors;
use glyco_contracts::{B256, ChainError, Refusal};
use support::{World, accounts::*};

fn refusal(result: Result<glyco_contracts::TxOutcome, ChainError>) -> ReleasesErrors {
    match result {
        Err(ChainError::Refused {
            refusal: Refusal::Releases(e),
            ..
        }) => e,
        other => panic!("expected a Releases refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn the_admin_publishes_and_withdraws_and_nobody_else_can() {
    let world = World::enrolled().await;
    let admin = world.client(ADMIN);
    let bundle = B256::repeat_byte(0xb1);

    assert_eq!(admin.release_of(bundle).await.unwrap(), None);
    assert!(!admin.is_installable(bundle).await.unwrap());
    assert!(matches!(
        refusal(
            world
                .client(HOSPITAL)
                .publish_release(bundle, "2026.12.2")
                .await
        ),
        ReleasesErrors::NotAdmin(_)
    ));
    assert!(matches!(
        refusal(admin.publish_release(B256::ZERO, "2026.12.2").await),
        ReleasesErrors::ZeroHash(_)
    ));
    assert!(matches!(
        refusal(admin.publish_release(bundle, "").await),
        ReleasesErrors::BadVersion(_)
    ));
    assert!(matches!(
        refusal(admin.publish_release(bundle, &"v".repeat(65)).await),
        ReleasesErrors::BadVersion(_)
    ));

    admin.publish_release(bundle, "2026.12.2").await.unwrap();
    let release = admin.release_of(bundle).await.unwrap().unwrap();
    assert_eq!(release.version, "2026.12.2");
    assert_eq!(release.publisher, world.consortium.address(ADMIN));
    assert_eq!((release.seq, release.withdrawn_at), (1, None));
    assert!(world.client(STRANGER).is_installable(bundle).await.unwrap());
    assert!(matches!(
        refusal(admin.publish_release(bundle, "again").await),
        ReleasesErrors::AlreadyPublished(_)
    ));

    assert!(matches!(
        refusal(world.client(STRANGER).withdraw_release(bundle).await),
        ReleasesErrors::NotAdmin(_)
    ));
    admin.withdraw_release(bundle).await.unwrap();
    assert!(!admin.is_installable(bundle).await.unwrap());
    assert!(
        admin
            .release_of(bundle)
            .await
            .unwrap()
            .unwrap()
            .withdrawn_at
            .is_some()
    );
    assert!(matches!(
        refusal(admin.withdraw_release(bundle).await),
        ReleasesErrors::AlreadyWithdrawn(_)
    ));
    assert!(matches!(
        refusal(admin.withdraw_release(B256::repeat_byte(2)).await),
        ReleasesErrors::UnknownRelease(_)
    ));
}
