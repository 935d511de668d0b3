//! Wake-ups deferred until the library's thread goes idle.
//!
//! Waking a sleeping thread costs a system call and two context switches, more
//! than the library spends on a small packet. With the bundled Paho C (fix 040,
//! `MQTTClient_setIdleCallback`) the library's thread calls back when it has
//! read everything the network had and is about to wait; a wake-up that can
//! wait until then is registered here, so a burst of packets costs one wake-up
//! instead of one per packet, and a lone packet is still handed over as soon as
//! it has been read. Used for readers of the receive queue ([`crate::queue`])
//! and for publishers waiting for room in the in-flight window
//! ([`crate::context`]).
//!
//! Deferred wake-ups are also delivered before the library's thread runs user
//! code (which may take long) and after calls that may stop that thread
//! (disconnect, destroy). With a system library there is no idle callback:
//! [`defer`] returns `false` and callers wake at once.

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::queue::MessageQueue;
use crate::signal::Signal;

/// A wake-up that waits for the library's thread to go idle.
pub(crate) enum Deferred {
    /// The sleeping readers of a receive queue.
    Reader(Arc<MessageQueue>),
    /// Publishers waiting for room in a client's in-flight window.
    Room(Arc<RoomWake>),
}

/// The signal publishers wait on for room in the window, and whether a
/// wake-up of it is registered here.
#[derive(Default)]
pub(crate) struct RoomWake {
    pub(crate) signal: Signal,
    pub(crate) deferred: AtomicBool,
}

impl Deferred {
    fn wake(self) {
        match self {
            Deferred::Reader(q) => q.wake_readers(),
            Deferred::Room(r) => {
                r.deferred.store(false, SeqCst);
                r.signal.notify_all();
            }
        }
    }
}

static DEFERRED: Mutex<Vec<Deferred>> = Mutex::new(Vec::new());
/// `DEFERRED` is not empty (read without its lock).
static ANY_DEFERRED: AtomicBool = AtomicBool::new(false);

fn lock_deferred() -> MutexGuard<'static, Vec<Deferred>> {
    DEFERRED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Registers a wake-up for when the library's thread goes idle and arms the
/// library's idle callback. `false`: not available (a system library), wake
/// now.
pub(crate) fn defer(wake: Deferred) -> bool {
    if !idle_callback_installed() {
        return false;
    }
    lock_deferred().push(wake);
    ANY_DEFERRED.store(true, SeqCst);
    arm();
    true
}

/// Delivers every deferred wake-up.
pub(crate) fn wake_deferred() {
    if !ANY_DEFERRED.swap(false, SeqCst) {
        return;
    }
    let wakes = std::mem::take(&mut *lock_deferred());
    for w in wakes {
        w.wake();
    }
}

/// Whether a registered wake-up matches `f` (for tests).
#[cfg(test)]
pub(crate) fn is_deferred(f: impl Fn(&Deferred) -> bool) -> bool {
    lock_deferred().iter().any(f)
}

#[cfg(feature = "bundled")]
extern "C" {
    /// Exports of the bundled build's fix 040 (paho-mqtt-c/fixes/).
    fn MQTTClient_setIdleCallback(callback: Option<extern "C" fn()>);
    fn MQTTClient_armIdleCallback();
}

/// Installs [`idle`] as the library's idle callback, once; whether the linked
/// library has one (the bundled build's fix 040).
fn idle_callback_installed() -> bool {
    #[cfg(feature = "bundled")]
    {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        // SAFETY: `idle` is a plain function that never unwinds and never
        // calls the library, as the callback must.
        INSTALL.call_once(|| unsafe { MQTTClient_setIdleCallback(Some(idle)) });
        true
    }
    #[cfg(not(feature = "bundled"))]
    false
}

#[cfg(feature = "bundled")]
fn arm() {
    // SAFETY: sets a flag in the library; callable from any thread.
    unsafe { MQTTClient_armIdleCallback() }
}

#[cfg(not(feature = "bundled"))]
fn arm() {}

/// The library's idle callback (`MQTTClient_idleCallback`): its thread has
/// nothing left to read. Nothing in it panics (a poisoned lock is taken
/// over); a panic would abort, as it cannot leave an `extern "C"` function.
#[cfg(feature = "bundled")]
extern "C" fn idle() {
    wake_deferred();
}
