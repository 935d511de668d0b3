//! Workarounds for the lifecycle bugs of an unpatched Paho C, needed only
//! when linking a system or board library (no `bundled` feature). The bundled
//! build fixes these bugs in the C sources (paho-mqtt-c/fixes/), and there
//! every function here does nothing.
//!
//! Paho C 1.3.16 keeps one background thread (`MQTTClient_run`) and global
//! client lists for the whole process (MQTTClient.c). The bugs, and what
//! serves each one here:
//!
//! * `MQTTClient_destroy` of the process's last client calls
//!   `MQTTClient_terminate`, which waits for the background thread with the
//!   library mutex released and then frees the global lists, including a
//!   client another thread created meanwhile (SIGSEGV). Served by a *keeper*:
//!   one client created at the first [`Client::create`](crate::Client::create)
//!   and never destroyed, so the last client is never destroyed.
//! * When no client is connected any more, `MQTTClient_stop` tells the
//!   background thread to stop; a connect on another thread in that window
//!   sees the thread still running, starts none, and waits for a CONNACK
//!   nobody reads (it fails after its timeout). Served by [`connecting`] and
//!   [`disconnecting`]: connects and disconnects exclude each other. The
//!   library's thread also stops *itself* after the last connected client
//!   lost its connection; a connect after such a loss (the usual reconnect)
//!   first waits until that thread has ended ([`connecting`]). Only a connect
//!   racing with another client's loss on another thread can still hit the
//!   window: the anchor closes that too.
//! * The background thread calls `messageArrived` with the mutex released,
//!   then takes it again and removes the message from the client's queue: a
//!   disconnect of a clean session or a destroy in that window frees memory
//!   the thread is about to use. Served by [`Exit`]: before calling into C,
//!   a disconnect or drop waits until the thread is provably past the last
//!   message callback of the client (it entered another callback since, or
//!   ended), or, without such proof, [`GRACE`] after it.
//!
//! The *anchor* ([`enable_anchor_client`], opt-in) replaces the first two by
//! a client connected for the life of the process to a stub on the loopback
//! interface, so the background thread never stops; it also saves the
//! library's 100 ms sleeps around thread start and stop, and lets [`Exit`]
//! ask for its proof instead of waiting. It costs a loopback listener (for a
//! moment), a socket and a thread for the life of the process: see
//! anchor.rs.

mod anchor;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

/// The linked library has our fixes: none of the workarounds is needed.
pub(crate) const C_FIXED: bool = cfg!(feature = "bundled");

/// [`enable_anchor_client`] was called.
static ANCHOR_WANTED: AtomicBool = AtomicBool::new(false);

/// Asks for the *anchor* client, a workaround for an unpatched system Paho C
/// (see the crate docs, "System library"). Call it before the first
/// [`Client::create`](crate::Client::create); it takes effect there. Returns
/// whether the anchor will be used: `false` in the bundled build, whose
/// library has the bugs fixed at the source, and once a client was created
/// without it. Whether it then connected is logged (`debug`); if it cannot
/// (no loopback networking, say), the crate keeps the default workarounds.
///
/// Without the anchor, connects and disconnects of all clients of the
/// process exclude each other (a connect to an unresponsive broker holds up
/// the disconnects of other clients for its timeout), and a disconnect or
/// drop right after a message arrived waits up to 100 ms.
pub fn enable_anchor_client() -> bool {
    if C_FIXED || INIT.get().is_some() {
        return false;
    }
    ANCHOR_WANTED.store(true, SeqCst);
    true
}

static INIT: OnceLock<()> = OnceLock::new();

/// Sets up the keeper (or the anchor, if asked for) before the first client
/// is created.
pub(crate) fn init() {
    if C_FIXED {
        return;
    }
    INIT.get_or_init(|| anchor::ensure(ANCHOR_WANTED.load(SeqCst)));
}

/// Whether the anchor is connected, which makes the lifecycle lock
/// unnecessary.
fn anchored() -> bool {
    anchor::is_connected()
}

static LIFECYCLE: RwLock<()> = RwLock::new(());

/// Held while a client connects (see the module docs).
pub(crate) fn connecting() -> Option<RwLockReadGuard<'static, ()>> {
    (!C_FIXED && !anchored()).then(|| {
        if LAST_LOST.swap(false, SeqCst) {
            wait_for_run_thread_exit();
        }
        LIFECYCLE
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    })
}

/// Clients of this crate connected now.
static CONNECTED_CLIENTS: AtomicUsize = AtomicUsize::new(0);

/// The last connected client lost its connection: the library's thread is
/// stopping itself.
static LAST_LOST: AtomicBool = AtomicBool::new(false);

/// A client's connection state changed (context.rs).
pub(crate) fn connected_clients_changed(connected: bool) {
    if connected {
        CONNECTED_CLIENTS.fetch_add(1, SeqCst);
    } else if CONNECTED_CLIENTS.fetch_sub(1, SeqCst) == 1 && !C_FIXED {
        LAST_LOST.store(true, SeqCst);
    }
}

/// Waits (up to a second) until no thread of the process is named
/// `MQTTClient_run`, the name the library gives its background thread
/// (Thread_set_name, on glibc; where it names no thread the wait ends at
/// once), i.e. until a stopping thread has ended.
fn wait_for_run_thread_exit() {
    let running = || {
        std::fs::read_dir("/proc/self/task").is_ok_and(|tasks| {
            tasks.flatten().any(|t| {
                std::fs::read(t.path().join("comm"))
                    .is_ok_and(|c| c.trim_ascii() == b"MQTTClient_run")
            })
        })
    };
    let deadline = Instant::now() + Duration::from_secs(1);
    while running() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Held while a client disconnects (see the module docs). Covers the
/// disconnects this crate makes, not one the library makes on its own after
/// a socket error.
pub(crate) fn disconnecting() -> Option<RwLockWriteGuard<'static, ()>> {
    (!C_FIXED && !anchored()).then(|| {
        LIFECYCLE
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    })
}

/// Runs a `MQTTClient_connect` call (with the anchor, keeping the library's
/// thread out of its 100 ms sleep; see anchor.rs).
pub(crate) fn connect<R>(call: impl FnOnce() -> R) -> R {
    if C_FIXED {
        return call();
    }
    anchor::with_wakeups(call)
}

/// A client with callbacks connected: the library's background thread runs.
pub(crate) fn connected() {
    if !C_FIXED {
        anchor::run_thread_started();
    }
}

/// How long after a message callback returned the library's thread is assumed
/// to be past its post-callback bookkeeping when no later callback proves it
/// (a few dozen instructions; the margin covers a descheduled thread).
pub(crate) const GRACE: Duration = Duration::from_millis(100);

/// Counts entries into callbacks on the library's callback thread (and its
/// exit). The thread runs one callback at a time, so a change of this counter
/// after a callback returned proves the thread finished with that callback.
static EPOCH: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Touched on the library's callback thread; dropped when it ends.
    static RUN_THREAD: RunThreadExit = const { RunThreadExit };
}

/// Bumps [`EPOCH`] when the library's callback thread ends: `MQTTClient_run`
/// has returned, so it touches no client any more.
struct RunThreadExit;

impl Drop for RunThreadExit {
    fn drop(&mut self) {
        EPOCH.fetch_add(1, SeqCst);
    }
}

/// Called on entry into every callback on the library's thread.
pub(crate) fn callback_entered() {
    if !C_FIXED {
        EPOCH.fetch_add(1, SeqCst);
        RUN_THREAD.with(|_| ());
    }
}

/// A message callback of the anchor ran (its proof of progress).
fn progress() {
    EPOCH.fetch_add(1, SeqCst);
}

/// Milliseconds since the first call, plus one (0 is "never").
fn now_millis() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
}

/// When a message callback last returned: the low 24 bits of [`EPOCH`] and a
/// 40-bit millisecond time, in one atomic so readers see a consistent pair. (A
/// wrapped epoch can only look unchanged, which makes a waiter wait the full
/// grace period: the safe side.)
pub(crate) struct Exit(AtomicU64);

const TIME_BITS: u32 = 40;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;

fn epoch_bits(packed: u64) -> u64 {
    packed >> TIME_BITS
}

impl Exit {
    pub(crate) const fn new() -> Self {
        Exit(AtomicU64::new(0))
    }

    /// Records that a message callback returns now.
    pub(crate) fn stamp(&self) {
        if !C_FIXED {
            let epoch = EPOCH.load(SeqCst);
            self.0
                .store((epoch << TIME_BITS) | (now_millis() & TIME_MASK), SeqCst);
        }
    }

    fn passed(&self, packed: u64) -> bool {
        epoch_bits(EPOCH.load(SeqCst) << TIME_BITS) != epoch_bits(packed)
    }

    /// Waits until the library's thread is known to be past the latest
    /// [`Exit::stamp`]: it entered another callback since (or ended), which
    /// the anchor is asked to bring about; without that proof (no anchor, or
    /// the thread busy elsewhere), until [`GRACE`] has passed since.
    pub(crate) fn wait_passed(&self) {
        if C_FIXED {
            return;
        }
        let grace = GRACE.as_millis() as u64;
        let mut asked = false;
        loop {
            let packed = self.0.load(SeqCst);
            let at = packed & TIME_MASK;
            if at == 0 || self.passed(packed) {
                return;
            }
            let waited = (now_millis() & TIME_MASK).wrapping_sub(at) & TIME_MASK;
            if waited >= grace {
                return;
            }
            if !asked {
                asked = true;
                if anchor::request_progress() {
                    // Usually answered within tens of microseconds.
                    for _ in 0..50 {
                        std::thread::sleep(Duration::from_micros(20));
                        if self.passed(packed) {
                            return;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}
