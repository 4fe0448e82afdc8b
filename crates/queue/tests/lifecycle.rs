//! A message's way through the queue: stored, updated after transport stages, held, completed;
//! each step durable across a restart.

mod common;

use common::{assert_same, full_message, ids, open, simple_message};
use postern_mailmsg::{Content, RecipientStatus};
use postern_queue::{QueueError, QueueState, Spool, SpoolOptions};

#[tokio::test]
async fn updates_and_completions_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let generator = ids();
    let (a, b, c) = (
        generator.next_id(),
        generator.next_id(),
        generator.next_id(),
    );

    let spool = open(dir.path(), SpoolOptions::default()).await;
    for id in [a, b, c] {
        spool.store(&simple_message(id)).await.unwrap();
    }
    assert_eq!(spool.count_by_state(), [3, 0, 0]);
    // a: the first recipient deferred; retry in a minute.
    let mut msg_a = spool.load(a).await.unwrap();
    msg_a.recipients[0].status = RecipientStatus::Deferred {
        reason: "451 greylisted".into(),
    };
    msg_a.recipients[0].next_hop = Some("smtp:mx.example.com".into());
    msg_a.properties.set("attempts", 1);
    let deferred = QueueState::Deferred {
        until_ms: 1_700_000_060_000,
    };
    spool.update(&msg_a, deferred).await.unwrap();
    // b: delivered, so it leaves the queue.
    spool.complete(b).await.unwrap();
    // c: an administrator holds it.
    spool.set_state(c, QueueState::Held).await.unwrap();
    assert_eq!(
        spool.list().iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![a, c]
    );
    // Queued, deferred, held: what the queue gauge of the metrics reads.
    assert_eq!(spool.count_by_state(), [0, 1, 1]);
    spool.close().await.unwrap();

    let (spool, recovered) = Spool::open(dir.path(), SpoolOptions::default())
        .await
        .unwrap();
    let states: Vec<_> = recovered.live.iter().map(|m| (m.id, m.state)).collect();
    assert_eq!(states, vec![(a, deferred), (c, QueueState::Held)]);
    assert_same(&spool.load(a).await.unwrap(), &msg_a);
    assert_same(&spool.load(c).await.unwrap(), &simple_message(c));
    assert!(matches!(spool.load(b).await, Err(QueueError::UnknownId(id)) if id == b));
    spool.close().await.unwrap();
}

#[tokio::test]
async fn an_update_with_new_content_rewrites_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let id = ids().next_id();
    let spool = open(dir.path(), SpoolOptions::default()).await;
    let mut msg = full_message(id);
    spool.store(&msg).await.unwrap();

    msg.content
        .prepend_header("DKIM-Signature", "v=1; d=example.org")
        .unwrap();
    msg.recipients[0].status = RecipientStatus::Delivered;
    spool.update(&msg, QueueState::Queued).await.unwrap();
    assert_same(&spool.load(id).await.unwrap(), &msg);

    // Empty content means "not supplied": the stored content stays.
    let mut envelope_only = msg.clone();
    envelope_only.content = Content::default();
    envelope_only.properties.set("stage", "routed");
    spool
        .update(&envelope_only, QueueState::Queued)
        .await
        .unwrap();
    spool.close().await.unwrap();

    let spool = open(dir.path(), SpoolOptions::default()).await;
    let loaded = spool.load(id).await.unwrap();
    assert_eq!(loaded.content, msg.content);
    assert_eq!(loaded.properties, envelope_only.properties);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn misuse_is_refused_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let generator = ids();
    let spool = open(dir.path(), SpoolOptions::default()).await;
    let mut no_id = simple_message(generator.next_id());
    no_id.id = None;
    assert!(matches!(spool.store(&no_id).await, Err(QueueError::NoId)));
    let unknown = generator.next_id();
    let err = spool
        .update(&simple_message(unknown), QueueState::Queued)
        .await;
    assert!(matches!(err, Err(QueueError::UnknownId(_))));
    assert!(matches!(
        spool.complete(unknown).await,
        Err(QueueError::UnknownId(_))
    ));
    assert!(matches!(
        spool.set_state(unknown, QueueState::Held).await,
        Err(QueueError::UnknownId(_))
    ));
    assert_eq!(spool.stats().records, 0);
    spool.close().await.unwrap();
}

#[tokio::test]
async fn a_second_process_cannot_open_the_same_spool() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path(), SpoolOptions::default()).await;
    let second = Spool::open(dir.path(), SpoolOptions::default()).await;
    assert!(matches!(second, Err(QueueError::Locked(_))));
    spool.close().await.unwrap();
    open(dir.path(), SpoolOptions::default())
        .await
        .close()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_closed_spool_refuses_its_clones() {
    let dir = tempfile::tempdir().unwrap();
    let spool = open(dir.path(), SpoolOptions::default()).await;
    let clone = spool.clone();
    spool.close().await.unwrap();
    let err = clone.store(&simple_message(ids().next_id())).await;
    assert!(matches!(err, Err(QueueError::Closed)));
}

/// The index keeps where a message's latest envelope is, not the envelope: after several
/// Updates, each in a segment of its own, `load` must read the latest one back, before and after
/// a restart, and after compaction has rewritten the message into a new Message record.
#[tokio::test]
async fn an_envelope_updated_several_times_loads_back_as_the_latest() {
    let dir = tempfile::tempdir().unwrap();
    let id = ids().next_id();
    let no_compaction = SpoolOptions {
        compact: false,
        ..common::tiny_segments()
    };
    let spool = open(dir.path(), no_compaction.clone()).await;
    let mut msg = full_message(id);
    spool.store(&msg).await.unwrap();
    let mut state = QueueState::Queued;
    for attempt in 1..=3i64 {
        msg.recipients[0].status = RecipientStatus::Deferred {
            reason: format!("451 4.4.1 attempt {attempt} timed out"),
        };
        msg.recipients[0].next_hop = Some(format!("smtp:mx{attempt}.example.com"));
        msg.recipients[1].properties.set("attempts", attempt);
        msg.properties.set("attempts", attempt);
        msg.info.helo = format!("client{attempt}.example.org");
        state = QueueState::Deferred {
            until_ms: 1_700_000_000_000 + attempt.unsigned_abs() * 60_000,
        };
        spool.update(&msg, state).await.unwrap();
        assert_same(&spool.load(id).await.unwrap(), &msg);
    }
    spool.settle().await.unwrap();
    // The Message record and each Update went to segments of their own.
    assert!(spool.stats().segments >= 4, "{:?}", spool.stats());
    spool.close().await.unwrap();

    let (spool, recovered) = Spool::open(dir.path(), no_compaction.clone())
        .await
        .unwrap();
    assert_eq!(recovered.live.len(), 1);
    assert_eq!(recovered.live[0].state, state);
    assert_same(&spool.load(id).await.unwrap(), &msg);
    assert_eq!(spool.stats().relocated, 0);
    spool.close().await.unwrap();

    // Compaction rewrites the message out of its old segment, with the latest envelope.
    let spool = open(dir.path(), common::small_segments()).await;
    spool.settle().await.unwrap();
    assert_eq!(spool.stats().relocated, 1);
    assert_same(&spool.load(id).await.unwrap(), &msg);
    // A hold keeps the latest envelope too, read back by the writer.
    spool.set_state(id, QueueState::Held).await.unwrap();
    assert_same(&spool.load(id).await.unwrap(), &msg);
    spool.close().await.unwrap();

    let (spool, recovered) = Spool::open(dir.path(), common::small_segments())
        .await
        .unwrap();
    assert_eq!(recovered.live[0].state, QueueState::Held);
    assert_eq!(recovered.live[0].recipients, msg.recipients.len());
    assert_same(&spool.load(id).await.unwrap(), &msg);
    spool.close().await.unwrap();
}
