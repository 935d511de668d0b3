//! A condition variable that is only signalled when a thread waits on it.
//!
//! std's `notify_one`/`notify_all` make a system call even when nobody waits,
//! which would cost one per message or acknowledgement on the hot paths. A
//! [`Signal`] counts its waiters: a waiter registers while holding the mutex
//! that guards the condition, so a notifier that changed the condition under
//! that mutex and then sees no waiter knows that any later waiter will see
//! the change before it waits.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Condvar, MutexGuard, PoisonError};
use std::time::Duration;

#[derive(Default)]
pub(crate) struct Signal {
    cond: Condvar,
    waiters: AtomicUsize,
}

impl Signal {
    pub(crate) const fn new() -> Self {
        Signal {
            cond: Condvar::new(),
            waiters: AtomicUsize::new(0),
        }
    }

    /// Waits for a notification, up to `timeout` (`None`: no limit), with the
    /// mutex of `guard` released meanwhile. Spurious wake-ups happen: callers
    /// check their condition in a loop.
    pub(crate) fn wait<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, T> {
        self.waiters.fetch_add(1, SeqCst);
        let guard = match timeout {
            None => self
                .cond
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner),
            Some(t) => {
                self.cond
                    .wait_timeout(guard, t)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
        self.waiters.fetch_sub(1, SeqCst);
        guard
    }

    /// Whether a thread waits (or is about to, holding the mutex).
    pub(crate) fn has_waiters(&self) -> bool {
        self.waiters.load(SeqCst) > 0
    }

    /// Wakes every waiter, if there is one. Call it after changing the
    /// condition under the waiters' mutex (holding it still, or not).
    pub(crate) fn notify_all(&self) {
        if self.has_waiters() {
            self.cond.notify_all();
        }
    }

    /// Wakes one waiter, if there is one (see [`Signal::notify_all`]).
    pub(crate) fn notify_one(&self) {
        if self.has_waiters() {
            self.cond.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn a_waiter_sees_a_change_made_before_or_after_it_waits() {
        for _ in 0..200 {
            let shared = Arc::new((Mutex::new(false), Signal::new()));
            let s2 = shared.clone();
            let waiter = std::thread::spawn(move || {
                let mut done = s2.0.lock().unwrap();
                while !*done {
                    done = s2.1.wait(done, None);
                }
            });
            *shared.0.lock().unwrap() = true;
            shared.1.notify_all();
            waiter.join().unwrap();
        }
    }
}
