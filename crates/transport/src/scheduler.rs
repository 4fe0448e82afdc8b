//! When each waiting message runs again: one task and one ordered index of (due time, queue id)
//! for the whole queue, not a task per message. The index holds ids only; a message's content
//! stays on disk until its turn, when the pass loads it from the queue.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use postern_mailmsg::QueueId;
use tokio::sync::{mpsc, watch};

/// Where schedules are sent: `(due time in Unix ms, id)`. A later schedule of the same id
/// replaces the earlier one.
pub(crate) type ScheduleTx = mpsc::UnboundedSender<(u64, QueueId)>;

/// The index of waiting messages.
#[derive(Default)]
pub(crate) struct Due {
    order: BTreeSet<(u64, QueueId)>,
    when: HashMap<QueueId, u64>,
}

impl Due {
    /// Schedules `id` at `at`, replacing an earlier schedule of it.
    pub(crate) fn insert(&mut self, at: u64, id: QueueId) {
        if let Some(before) = self.when.insert(id, at) {
            self.order.remove(&(before, id));
        }
        self.order.insert((at, id));
    }

    /// The earliest due time.
    pub(crate) fn next(&self) -> Option<u64> {
        self.order.first().map(|(at, _)| *at)
    }

    /// Takes the first id due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: u64) -> Option<QueueId> {
        let &(at, id) = self.order.first()?;
        if at > now {
            return None;
        }
        self.order.remove(&(at, id));
        self.when.remove(&id);
        Some(id)
    }

    /// How many messages wait.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }
}

/// Runs the schedule until shutdown or until every sender is gone: each id is handed to `fire`
/// when it falls due (`fire` may wait, for a free pass slot say; schedules sent meanwhile queue
/// up in the channel). `now` reads the clock in Unix ms.
pub(crate) async fn run<F, Fut>(
    mut rx: mpsc::UnboundedReceiver<(u64, QueueId)>,
    mut shutdown: watch::Receiver<bool>,
    now: fn() -> u64,
    mut fire: F,
) -> Due
where
    F: FnMut(QueueId) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut due = Due::default();
    loop {
        while let Some(id) = due.pop_due(now()) {
            fire(id).await;
        }
        let wait = due
            .next()
            .map(|at| Duration::from_millis(at.saturating_sub(now())));
        tokio::select! {
            entry = rx.recv() => match entry {
                Some((at, id)) => due.insert(at, id),
                None => break,
            },
            _ = sleep_or_never(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    due
}

async fn sleep_or_never(wait: Option<Duration>) {
    match wait {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A clock that follows tokio's (paused) time, starting at 1,000,000 ms.
    fn paused_now() -> u64 {
        static START: OnceLock<tokio::time::Instant> = OnceLock::new();
        let start = *START.get_or_init(tokio::time::Instant::now);
        1_000_000 + start.elapsed().as_millis() as u64
    }

    fn id(n: u128) -> QueueId {
        QueueId::from_u128(n)
    }

    #[tokio::test(start_paused = true)]
    async fn fires_in_due_order_at_due_time_and_reschedules_replace() {
        let base = paused_now();
        let (tx, rx) = mpsc::unbounded_channel();
        let (_stop, shutdown) = watch::channel(false);
        let fired: Arc<Mutex<Vec<(QueueId, u64)>>> = Arc::default();
        let log = fired.clone();
        let task = tokio::spawn(run(rx, shutdown, paused_now, move |id| {
            log.lock().unwrap().push((id, paused_now()));
            async {}
        }));
        tx.send((base + 300_000, id(1))).unwrap();
        tx.send((base + 60_000, id(2))).unwrap();
        tx.send((base + 120_000, id(3))).unwrap();
        // Rescheduled later: fires once, at the new time.
        tx.send((base + 600_000, id(3))).unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(tx);
        let left = task.await.unwrap();
        assert_eq!(left.len(), 0);
        let fired = fired.lock().unwrap().clone();
        let ids: Vec<QueueId> = fired.iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, vec![id(2), id(1), id(3)]);
        let offsets: Vec<u64> = fired.iter().map(|(_, at)| at - base).collect();
        assert_eq!(offsets, vec![60_000, 300_000, 600_000]);
    }

    #[test]
    fn due_pops_only_what_is_due() {
        let mut due = Due::default();
        due.insert(10, id(1));
        due.insert(5, id(2));
        assert_eq!(due.next(), Some(5));
        assert_eq!(due.pop_due(4), None);
        assert_eq!(due.pop_due(10), Some(id(2)));
        assert_eq!(due.pop_due(10), Some(id(1)));
        assert_eq!(due.pop_due(100), None);
    }
}
