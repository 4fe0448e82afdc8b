//! Hand-run measurements, not tests: they assert nothing about time and are ignored by default.
//! They run on the build's own disk (not a RAM-backed /tmp):
//!
//! ```text
//! cargo test -p postern-queue --test measure -- --ignored --nocapture --test-threads 1
//! ```

mod common;

use std::time::{Duration, Instant};

use common::{ids, simple_message};
use postern_queue::{Spool, SpoolOptions};

const STORES: u32 = 1_000;
/// Rounds of each variant, alternated, so a change in the machine's load hits both alike.
const ROUNDS: usize = 3;

/// 1,000 sequential single-record stores, each waiting for its own sync: the latency one SMTP
/// session sees per transaction. Pre-written segments against segments that grow
/// (`spare_segments: 0`, the way every segment was written before spares).
#[tokio::test]
#[ignore = "a measurement to run by hand"]
async fn sequential_single_record_stores() {
    for _ in 0..ROUNDS {
        for spares in [2, 0] {
            let options = SpoolOptions {
                spare_segments: spares,
                ..SpoolOptions::default()
            };
            let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            let started = Instant::now();
            let (spool, _) = Spool::open(dir.path(), options).await.unwrap();
            let opened = started.elapsed();
            // The preparer zero-fills the next spare in the background after the start; let it
            // finish, so the stores are measured alone.
            let started = Instant::now();
            spool.settle().await.unwrap();
            let settled = started.elapsed();
            let generator = ids();
            let started = Instant::now();
            for _ in 0..STORES {
                let msg = simple_message(generator.next_id());
                spool.store(&msg).await.unwrap();
            }
            let elapsed = started.elapsed();
            eprintln!(
                "spares {spares}: open {}, spare ready {} later; {}; {:?}",
                ms(opened),
                ms(settled),
                per_store(elapsed),
                spool.stats()
            );
            spool.close().await.unwrap();
        }
    }
}

/// The same with small segments and each message completed right after it is stored, so that
/// segments fill, rotate and are spent all the time: the steady state of a busy server, where
/// recycled segments serve as spares.
#[tokio::test]
#[ignore = "a measurement to run by hand"]
async fn sequential_stores_with_rotation() {
    for _ in 0..ROUNDS {
        for spares in [2, 0] {
            let options = SpoolOptions {
                segment_size: 64 * 1024,
                spare_segments: spares,
                ..SpoolOptions::default()
            };
            let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
            let (spool, _) = Spool::open(dir.path(), options).await.unwrap();
            spool.settle().await.unwrap();
            let generator = ids();
            let started = Instant::now();
            for _ in 0..STORES {
                let msg = simple_message(generator.next_id());
                spool.store(&msg).await.unwrap();
                spool.complete(msg.id.unwrap()).await.unwrap();
            }
            let elapsed = started.elapsed();
            eprintln!(
                "spares {spares}: store + complete: {}; {:?}",
                per_store(elapsed),
                spool.stats()
            );
            spool.close().await.unwrap();
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn per_store(elapsed: Duration) -> String {
    format!(
        "{STORES} in {}: {:.0} µs each",
        ms(elapsed),
        elapsed.as_secs_f64() * 1e6 / f64::from(STORES)
    )
}
