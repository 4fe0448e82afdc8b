//! What a deferred message costs the process while it waits: the index keeps a small, fixed
//! amount per live message, never its envelope or content. Measured as the growth of the
//! process's resident memory while 20,000 deferred messages with full envelopes are added, with
//! a generous bound (2 KiB a message, where a whole envelope in memory took more): a measurement
//! of memory, not of time. It is the only test in this file, so that no other test's memory
//! comes and goes in the same process while it measures.

mod common;

use std::sync::Arc;

use common::{full_message, ids};
use postern_mailmsg::{QueueIdGenerator, RecipientStatus};
use postern_queue::{QueueState, Spool, SpoolOptions};

const WARM_UP: usize = 2_000;
const MESSAGES: usize = 20_000;
/// Sessions storing at once: enough for the writer to batch, as it does under load.
const SESSIONS: usize = 50;
const BOUND: u64 = 2 * 1024;

/// The process's resident set, in octets.
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024
}

/// Stores `count` messages from `SESSIONS` tasks at once, and defers each the way the transport
/// does after a failed attempt: an Update with the recipients' reasons.
async fn store_deferred(spool: &Spool, generator: &Arc<QueueIdGenerator>, count: usize) {
    let mut tasks = Vec::new();
    for session in 0..SESSIONS {
        let (spool, generator) = (spool.clone(), Arc::clone(generator));
        let share = count / SESSIONS + usize::from(session < count % SESSIONS);
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                let mut msg = full_message(generator.next_id());
                spool.store(&msg).await.unwrap();
                msg.recipients[2].status = RecipientStatus::Deferred {
                    reason: "421 4.4.2 connection timed out".into(),
                };
                let state = QueueState::Deferred {
                    until_ms: 1_700_000_600_000,
                };
                spool.update(&msg, state).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_messages_cost_the_index_a_small_fixed_amount() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let options = SpoolOptions {
        segment_size: 4 * 1024 * 1024,
        ..SpoolOptions::default()
    };
    let (spool, _) = Spool::open(dir.path(), options.clone()).await.unwrap();
    let generator = Arc::new(ids());
    // Threads, buffers and allocator arenas settle in first, so the growth is the index's.
    store_deferred(&spool, &generator, WARM_UP).await;
    spool.settle().await.unwrap();
    let before = resident();
    store_deferred(&spool, &generator, MESSAGES).await;
    spool.settle().await.unwrap();
    let after = resident();
    let per_message = after.saturating_sub(before) / MESSAGES as u64;
    eprintln!(
        "resident memory: {} KiB before, {} KiB after {MESSAGES} more deferred messages: \
         {per_message} octets a message",
        before / 1024,
        after / 1024
    );
    assert_eq!(spool.stats().live, WARM_UP + MESSAGES);
    assert!(
        per_message < BOUND,
        "{per_message} octets a deferred message (bound {BOUND})"
    );
    spool.close().await.unwrap();

    // Every one of them is resumed after a restart.
    let (spool, recovered) = Spool::open(dir.path(), options).await.unwrap();
    assert_eq!(recovered.live.len(), WARM_UP + MESSAGES);
    assert!(recovered.live.iter().all(|m| m.recipients == 3));
    spool.close().await.unwrap();
}
