//! The memory budget: how much message content all sessions together may hold in memory.
//!
//! A tokio semaphore of KiB permits. A transfer takes an initial share when it starts (none
//! left: 452 4.3.1), grows it while its content stays in memory, and gives it back when the
//! content moves to disk. A complete message keeps its share for as long as its content is
//! alive: the share travels inside the content's `Bytes` (see [`Share::hold`]), so what the
//! transport still holds counts as well.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::{info, warn};

/// The unit of the semaphore's permits.
const KIB: usize = 1024;

/// The budget shared by every session. Clones share it.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    permits: Arc<Semaphore>,
    /// All permits: a request for more is cut to this, so that it can be met at all.
    total: u32,
    /// Transfers are being refused: logged when it starts and when it ends, not per transfer.
    refusing: Arc<AtomicBool>,
}

/// Part of the budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Share {
    permit: OwnedSemaphorePermit,
}

impl Budget {
    /// A budget of `octets` (rounded down to whole KiB).
    pub(crate) fn new(octets: u64) -> Self {
        let total = u32::try_from(octets / KIB as u64)
            .unwrap_or(u32::MAX)
            .min(u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
        Self {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
            refusing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Takes the first share of a new transfer; `None` means 452 4.3.1. The server logs when
    /// it begins to refuse transfers and when it accepts them again.
    pub(crate) fn try_take_transfer(&self, octets: usize) -> Option<Share> {
        let share = self.try_take(octets);
        match &share {
            None if !self.refusing.swap(true, Ordering::Relaxed) => warn!(
                budget = u64::from(self.total) * KIB as u64,
                "memory budget used up: new transfers get 452 4.3.1"
            ),
            Some(_)
                if self.refusing.load(Ordering::Relaxed)
                    && self.refusing.swap(false, Ordering::Relaxed) =>
            {
                info!("memory budget available again: transfers are accepted");
            }
            _ => {}
        }
        share
    }

    /// Takes `octets` now, if that much is free.
    pub(crate) fn try_take(&self, octets: usize) -> Option<Share> {
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(self.permits_for(octets))
            .ok()?;
        Some(Share { permit })
    }

    /// Takes `octets`, waiting until `deadline` for them to be given back by others.
    pub(crate) async fn take(&self, octets: usize, deadline: Instant) -> Option<Share> {
        let wanted = self.permits_for(octets);
        let acquire = self.permits.clone().acquire_many_owned(wanted);
        match tokio::time::timeout_at(deadline, acquire).await {
            Ok(Ok(permit)) => Some(Share { permit }),
            _ => None,
        }
    }

    /// Grows `share` to cover `octets`, if that much more is free.
    pub(crate) fn try_grow(&self, share: &mut Share, octets: usize) -> bool {
        let Ok(wanted) = u32::try_from(octets.div_ceil(KIB)) else {
            return false;
        };
        let held = share.permits();
        if wanted <= held {
            return true;
        }
        match self.permits.clone().try_acquire_many_owned(wanted - held) {
            Ok(more) => {
                share.permit.merge(more);
                true
            }
            Err(_) => false,
        }
    }

    /// Octets free now.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.permits.available_permits() * KIB
    }

    /// Permits for `octets`: whole KiB rounded up, at most all of them.
    fn permits_for(&self, octets: usize) -> u32 {
        u32::try_from(octets.div_ceil(KIB))
            .unwrap_or(u32::MAX)
            .min(self.total)
    }
}

impl Share {
    /// Octets covered.
    pub(crate) fn octets(&self) -> usize {
        self.permits() as usize * KIB
    }

    /// Gives back what is over `octets`.
    pub(crate) fn shrink_to(&mut self, octets: usize) {
        let keep = octets.div_ceil(KIB);
        let held = self.permit.num_permits();
        if held > keep {
            drop(self.permit.split(held - keep));
        }
    }

    fn permits(&self) -> u32 {
        u32::try_from(self.permit.num_permits()).unwrap_or(u32::MAX)
    }

    /// Content that keeps this share until its last clone is dropped.
    pub(crate) fn hold(self, content: Vec<u8>) -> Bytes {
        Bytes::from_owner(Held {
            content,
            _share: self,
        })
    }
}

/// Message content and the share of the budget it uses.
struct Held {
    content: Vec<u8>,
    _share: Share,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.content
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_come_back_when_the_content_holding_them_is_dropped() {
        let budget = Budget::new(64 * 1024);
        let mut share = budget.try_take(1000).unwrap();
        assert_eq!(share.octets(), 1024);
        assert!(budget.try_grow(&mut share, 60 * 1024));
        assert!(budget.try_take(8 * 1024).is_none());
        let content = share.hold(vec![7; 100]);
        let clone = content.clone();
        drop(content);
        assert_eq!(budget.available(), 4 * 1024);
        drop(clone);
        assert_eq!(budget.available(), 64 * 1024);
    }

    #[test]
    fn a_request_larger_than_the_budget_takes_all_of_it() {
        let budget = Budget::new(64 * 1024);
        let share = budget.try_take(1 << 30).unwrap();
        assert_eq!(share.octets(), 64 * 1024);
        assert!(budget.try_take(1).is_none());
    }
}
