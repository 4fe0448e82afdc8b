//! A message with every field set survives a store, a restart and a load unchanged.

mod common;

use common::{assert_same, full_message, ids, open};
use postern_queue::{QueueState, QueuedMessage, Spool, SpoolOptions};

#[tokio::test]
async fn every_field_survives_store_reopen_load() {
    let dir = tempfile::tempdir().unwrap();
    let id = ids().next_id();
    let msg = full_message(id);

    let spool = open(dir.path(), SpoolOptions::default()).await;
    spool.store(&msg).await.unwrap();
    assert_same(&spool.load(id).await.unwrap(), &msg);
    spool.close().await.unwrap();

    let (spool, recovered) = Spool::open(dir.path(), SpoolOptions::default())
        .await
        .unwrap();
    assert_eq!(recovered.truncated_tail, None);
    assert_eq!(
        recovered.live,
        vec![QueuedMessage {
            id,
            state: QueueState::Queued,
            sender: "alice@example.org".into(),
            recipients: 3,
            size: msg.content.len() as u64,
            arrival_ms: 1_700_000_000_123,
        }]
    );
    assert_same(&spool.load(id).await.unwrap(), &msg);
    assert_eq!(spool.list(), recovered.live);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn a_held_fate_is_stored_as_held() {
    let dir = tempfile::tempdir().unwrap();
    let id = ids().next_id();
    let mut msg = full_message(id);
    msg.fate = postern_mailmsg::Fate::Hold;
    let spool = open(dir.path(), SpoolOptions::default()).await;
    spool.store(&msg).await.unwrap();
    assert_eq!(spool.get(id).unwrap().state, QueueState::Held);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn empty_content_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let id = ids().next_id();
    let mut msg = full_message(id);
    msg.content = postern_mailmsg::Content::default();
    let spool = open(dir.path(), SpoolOptions::default()).await;
    spool.store(&msg).await.unwrap();
    spool.close().await.unwrap();
    let spool = open(dir.path(), SpoolOptions::default()).await;
    assert_same(&spool.load(id).await.unwrap(), &msg);
    spool.close().await.unwrap();
}

#[test]
fn the_spool_can_be_shared_between_tasks() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<Spool>();
}
