//! Concurrent sessions share syncs: many stores at once cost far fewer syncs than stores, and
//! every one of them is there after a restart.

mod common;

use common::{assert_same, ids, open, simple_message};
use postern_queue::SpoolOptions;

const SESSIONS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_stores_share_syncs_and_all_are_recovered() {
    // On the build's own disk rather than a RAM-backed /tmp, so syncs take real time.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let spool = open(dir.path(), SpoolOptions::default()).await;
    let generator = ids();
    let messages: Vec<_> = (0..SESSIONS)
        .map(|_| simple_message(generator.next_id()))
        .collect();

    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(SESSIONS));
    let mut sessions = Vec::new();
    for msg in messages.clone() {
        let spool = spool.clone();
        let barrier = barrier.clone();
        sessions.push(tokio::spawn(async move {
            barrier.wait().await;
            spool.store(&msg).await
        }));
    }
    for session in sessions {
        session.await.unwrap().unwrap();
    }

    let stats = spool.stats();
    eprintln!("{stats:?}");
    assert_eq!(stats.records, SESSIONS as u64);
    assert_eq!(stats.live, SESSIONS);
    assert!(
        stats.syncs * 4 <= SESSIONS as u64,
        "{} stores took {} syncs",
        SESSIONS,
        stats.syncs
    );
    assert_eq!(stats.syncs, stats.batches);
    spool.close().await.unwrap();

    let spool = open(dir.path(), SpoolOptions::default()).await;
    assert_eq!(spool.list().len(), SESSIONS);
    for msg in &messages {
        let id = msg.id.unwrap();
        assert_same(&spool.load(id).await.unwrap(), msg);
    }
    spool.close().await.unwrap();
}
