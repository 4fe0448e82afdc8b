//! Free space on the spool's file system, and the reserve the spool leaves there.
//!
//! Below the reserve the spool says it is not accepting ([`Spool::accepting`]): the SMTP session
//! answers MAIL with 452 4.3.1, while the writer goes on writing the Updates and Dones of
//! delivery (small records, in files mostly pre-written already), so the queue drains. The
//! preparer writes no spare that would take the file system below the reserve; segments then
//! begin empty and grow, which is correct, only slower.
//!
//! Free space is measured with `statvfs` at most once per [`REFRESH`] (a session asking at MAIL
//! triggers the measurement when the last one is older), so a flood of sessions costs one system
//! call a second. Crossing the reserve is logged once each way, never per message.
//!
//! [`Spool::accepting`]: crate::Spool::accepting

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a measurement of free space is trusted.
const REFRESH: Duration = Duration::from_secs(1);

/// How much free space the spool leaves on its file system: the larger of a number of octets
/// and a percentage of the file system's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskReserve {
    /// Octets.
    pub octets: u64,
    /// Percent (0 to 100) of the file system's size.
    pub percent: u8,
}

impl Default for DiskReserve {
    /// The larger of 1 GiB and 5%.
    fn default() -> Self {
        Self {
            octets: 1 << 30,
            percent: 5,
        }
    }
}

impl DiskReserve {
    /// Exactly this many octets.
    pub fn octets(octets: u64) -> Self {
        Self { octets, percent: 0 }
    }

    /// This share of the file system.
    pub fn percent(percent: u8) -> Self {
        Self {
            octets: 0,
            percent: percent.min(100),
        }
    }

    /// The reserve in octets on a file system of `total` octets.
    pub(crate) fn of(self, total: u64) -> u64 {
        let share = u128::from(total) * u128::from(self.percent.min(100)) / 100;
        self.octets.max(u64::try_from(share).unwrap_or(u64::MAX))
    }
}

/// What `statvfs` said, in octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Measure {
    /// Free to an unprivileged process.
    pub(crate) available: u64,
    /// The file system's size.
    pub(crate) total: u64,
}

/// The spool's view of its file system.
#[derive(Debug)]
pub(crate) struct DiskSpace {
    dir: PathBuf,
    reserve: DiskReserve,
    accepting: AtomicBool,
    /// When free space was last measured, in milliseconds since `since` (an atomic, not a
    /// lock: every MAIL asks).
    measured_ms: AtomicU64,
    since: Instant,
}

impl DiskSpace {
    /// Watches the file system of `dir`, measuring it once now.
    pub(crate) fn new(dir: &Path, reserve: DiskReserve) -> Self {
        let space = Self {
            dir: dir.to_path_buf(),
            reserve,
            accepting: AtomicBool::new(true),
            measured_ms: AtomicU64::new(0),
            since: Instant::now(),
        };
        space.refresh();
        space
    }

    fn measure(&self) -> Option<Measure> {
        match rustix::fs::statvfs(&self.dir) {
            Ok(stat) => Some(Measure {
                available: stat.f_bavail.saturating_mul(stat.f_frsize),
                total: stat.f_blocks.saturating_mul(stat.f_frsize),
            }),
            Err(error) => {
                tracing::warn!(%error, dir = %self.dir.display(), "cannot measure free space");
                None
            }
        }
    }

    /// Whether writing `octets` more would leave the reserve free. When free space cannot be
    /// measured, yes: refusing mail on a failed measurement would turn a monitoring problem into
    /// an outage.
    pub(crate) fn room_for(&self, octets: u64) -> bool {
        self.measure().is_none_or(|m| {
            m.available >= octets && m.available - octets > self.reserve.of(m.total)
        })
    }

    /// Whether new mail may be accepted: free space is above the reserve. Measures again when
    /// the last measurement is older than a second.
    pub(crate) fn accepting(&self) -> bool {
        let now = self.now_ms();
        let last = self.measured_ms.load(Ordering::Relaxed);
        // One caller per second wins the exchange and measures; the others read the flag.
        if now.saturating_sub(last) >= REFRESH.as_millis() as u64
            && self
                .measured_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.update();
        }
        self.accepting.load(Ordering::Relaxed)
    }

    /// Measures now and updates `accepting`, logging a change.
    pub(crate) fn refresh(&self) {
        self.measured_ms.store(self.now_ms(), Ordering::Relaxed);
        self.update();
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.since.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn update(&self) {
        let Some(m) = self.measure() else { return };
        let reserve = self.reserve.of(m.total);
        let above = m.available > reserve;
        let was = self.accepting.swap(above, Ordering::Relaxed);
        if was && !above {
            tracing::error!(
                dir = %self.dir.display(),
                available = m.available,
                reserve,
                "free space is below the spool's reserve: new mail is refused (452 4.3.1) until \
                 space is freed; queued mail is still delivered"
            );
        } else if !was && above {
            tracing::info!(
                dir = %self.dir.display(),
                available = m.available,
                reserve,
                "free space is above the spool's reserve again: accepting new mail"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_the_larger_of_octets_and_share() {
        let gib = 1u64 << 30;
        assert_eq!(DiskReserve::default().of(10 * gib), gib);
        assert_eq!(DiskReserve::default().of(100 * gib), 5 * gib);
        assert_eq!(DiskReserve::percent(100).of(7 * gib), 7 * gib);
        assert_eq!(DiskReserve::octets(5).of(7 * gib), 5);
        assert_eq!(DiskReserve::percent(0).of(u64::MAX), 0);
    }

    #[test]
    fn a_reserve_of_everything_refuses_and_one_of_nothing_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let full = DiskSpace::new(dir.path(), DiskReserve::percent(100));
        assert!(!full.accepting());
        assert!(!full.room_for(1));
        let empty = DiskSpace::new(dir.path(), DiskReserve::octets(0));
        assert!(empty.accepting());
        assert!(empty.room_for(4096));
    }
}
