//! The pool that runs blocking sinks: threads of their own, at most [`THREADS`].
//!
//! Blocking sinks do not use tokio's blocking pool: the queue, the Maildir writes and message
//! intake run there, and a binding whose sink blocks (or hangs past its timeout, since a thread
//! cannot be stopped) would take those threads from them. Here a slow sink can only make other
//! blocking sinks wait — each call still bounded by its binding's timeout — and the server's
//! own work goes on. A call whose caller gave up before a thread took it is not run at all.
//! Threads are started as calls need them and then kept.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, OnceLock};

/// The most threads the pool runs.
pub const THREADS: usize = 32;

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Pool {
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job.
    idle: usize,
    /// Threads started.
    started: usize,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(State::default()),
        ready: Condvar::new(),
    })
}

/// Runs `job` on the pool. A thread is started when every idle one already has a job waiting
/// and the pool is not full; otherwise the job waits for a thread.
pub(crate) fn run(job: impl FnOnce() + Send + 'static) {
    let pool = pool();
    let mut state = pool.state.lock().unwrap_or_else(|e| e.into_inner());
    state.jobs.push_back(Box::new(job));
    if state.jobs.len() > state.idle && state.started < THREADS {
        let spawned = std::thread::Builder::new()
            .name("postern-sink".into())
            .spawn(work);
        // Without a new thread the job waits for a busy one: late, not lost.
        if spawned.is_ok() {
            state.started += 1;
        }
    }
    drop(state);
    pool.ready.notify_one();
}

fn work() {
    let pool = pool();
    let mut state = pool.state.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if let Some(job) = state.jobs.pop_front() {
            drop(state);
            // A panic is caught by the job itself; this guard only keeps the thread alive.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            state = pool.state.lock().unwrap_or_else(|e| e.into_inner());
            continue;
        }
        state.idle += 1;
        state = pool.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        state.idle -= 1;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn jobs_beyond_the_threads_wait_and_all_run() {
        let (tx, rx) = mpsc::channel();
        let n = super::THREADS * 2;
        for i in 0..n {
            let tx = tx.clone();
            super::run(move || {
                std::thread::sleep(Duration::from_millis(5));
                let _ = tx.send(i);
            });
        }
        let mut seen: Vec<usize> = (0..n)
            .map(|_| rx.recv_timeout(Duration::from_secs(30)).unwrap())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..n).collect::<Vec<_>>());
    }
}
