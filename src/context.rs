//! The callback context: the state a client shares with the C library's
//! callback thread. Its address is the `context` pointer given to
//! `MQTTClient_setCallbacks`, so it lives on the heap (an `Arc`) and is freed
//! only after `MQTTClient_destroy` and after the last callback returned.
//!
//! # Coordinating with the library's callback thread
//!
//! `MQTTClient_run` (MQTTClient.c) calls `messageArrived` with the library's
//! mutex released, and after the callback returns it takes the mutex again and
//! touches the client (`ListRemove(m->c->messageQueue, qe)`). A
//! `MQTTClient_disconnect` of a clean session (which frees the queued messages)
//! or a `MQTTClient_destroy` that runs in that short window frees memory the
//! callback thread is about to use. C programs have the same race; this crate
//! closes it on its side:
//!
//! 1. while disconnecting or dropping, message callbacks are *quiesced*: a
//!    callback that starts leaves the message with the library (returns 0) and
//!    runs no user code;
//! 2. it waits until no message callback of the client is running;
//! 3. it waits until the callback thread has provably passed the window after
//!    the last message callback: it entered another callback (any client's,
//!    or the anchor client's, which is sent a message for that purpose; see
//!    anchor.rs) or ended. Only if no such proof comes (no anchor, or that
//!    thread busy in a long user callback elsewhere, which itself means it left
//!    the window behind) does it fall back to waiting [`GRACE`] since the exit.
//!
//! Only then does it call into C.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crate::callbacks::Slots;
use crate::delivery::Deliveries;
use crate::queue::MessageQueue;

/// How long after a message callback returned the library's thread is assumed
/// to be past its post-callback bookkeeping when no later callback proves it.
/// That bookkeeping is a few dozen instructions; the fallback only applies
/// when the anchor client cannot provide the proof.
pub(crate) const GRACE: Duration = Duration::from_millis(100);

/// Counts entries into callbacks on the library's callback thread (and its
/// exit). The thread runs one callback at a time, so a change of this counter
/// after a callback returned proves the thread finished with that callback.
pub(crate) static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Milliseconds since the first call, plus one (0 is "never").
fn now_millis() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(Instant::now);
    u64::try_from(base.elapsed().as_millis()).unwrap_or(u64::MAX) + 1
}

/// Locks a mutex, ignoring poisoning: user code never runs while one of the
/// crate's own locks is held, and the data stays consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Connection state and tokens in flight.
pub(crate) struct State {
    pub(crate) deliveries: Deliveries,
    /// Whether the current (or last) connection used a clean session.
    pub(crate) clean_session: bool,
    /// Connection losses and disconnects so far.
    pub(crate) losses: u64,
    /// Threads waiting on `state_changed` (it is only signalled when one does).
    pub(crate) waiters: usize,
}

/// When a message callback last returned: the low 24 bits of [`EPOCH`] and a
/// 40-bit millisecond time, in one atomic so readers see a consistent pair. (A
/// wrapped epoch can only look unchanged, which makes a waiter wait the full
/// grace period: the safe side.)
struct Exit(AtomicU64);

const TIME_BITS: u32 = 40;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;

impl Exit {
    const fn new() -> Self {
        Exit(AtomicU64::new(0))
    }

    /// The value [`Exit::set`] stores for an exit now, at `epoch`.
    fn now(epoch: u64) -> u64 {
        (epoch << TIME_BITS) | (now_millis() & TIME_MASK)
    }

    fn set(&self, packed: u64) {
        self.0.store(packed, SeqCst);
    }

    /// Waits until the library's thread is known to be past the latest exit:
    /// it entered another callback since (or ended), which the anchor client
    /// is asked to bring about (anchor.rs, `request_progress`). Without that
    /// proof — no anchor, or the thread busy elsewhere — waits until
    /// [`GRACE`] has passed since the exit.
    fn wait_passed(&self) {
        let grace = GRACE.as_millis() as u64;
        let mut asked = false;
        loop {
            let packed = self.0.load(SeqCst);
            let at = packed & TIME_MASK;
            if at == 0 || (EPOCH.load(SeqCst) << TIME_BITS) >> TIME_BITS != packed >> TIME_BITS {
                return;
            }
            let waited = (now_millis() & TIME_MASK).wrapping_sub(at) & TIME_MASK;
            if waited >= grace {
                return;
            }
            if !asked {
                asked = true;
                if crate::anchor::request_progress() {
                    // Usually answered within tens of microseconds.
                    for _ in 0..50 {
                        std::thread::sleep(Duration::from_micros(20));
                        if (EPOCH.load(SeqCst) << TIME_BITS) >> TIME_BITS != packed >> TIME_BITS {
                            return;
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

pub(crate) struct Context {
    /// For log messages.
    pub(crate) client_id: String,
    pub(crate) state: Mutex<State>,
    pub(crate) state_changed: Condvar,
    pub(crate) connected: AtomicBool,
    /// The last connect was refused by the broker (see `Client::connect`).
    pub(crate) refused: AtomicBool,
    /// Mirrors `state.deliveries.has_room()` so QoS 0 publishes skip the lock.
    room: AtomicBool,
    pub(crate) queue: Arc<MessageQueue>,
    pub(crate) slots: Slots,
    /// The client is being dropped: callbacks run no user code.
    pub(crate) closing: AtomicBool,
    /// Disconnects in progress: message callbacks leave messages with the library.
    quiescing: AtomicUsize,
    /// Message-arrived callbacks running now.
    active_messages: AtomicUsize,
    /// Callbacks the library is running now (the user's connection-lost
    /// closures run on threads of their own and are not counted).
    active: AtomicUsize,
    /// Threads in [`Context::wait_until`]; callbacks only signal when there are some.
    waiters: AtomicUsize,
    idle: (Mutex<()>, Condvar),
    /// Last return of a message callback that took ownership of the message.
    last_consumed: Exit,
    /// Last return of any message callback.
    last_returned: Exit,
    /// A panic caught in a callback, reported by the next API call.
    panic: Mutex<Option<String>>,
    /// Mirrors `panic.is_some()`, so API calls need no lock to check it.
    panicked: AtomicBool,
}

impl Context {
    pub(crate) fn new(client_id: &str, receive_capacity: usize) -> Self {
        Context {
            client_id: client_id.to_owned(),
            state: Mutex::new(State {
                deliveries: Deliveries::new(),
                clean_session: true,
                losses: 0,
                waiters: 0,
            }),
            state_changed: Condvar::new(),
            connected: AtomicBool::new(false),
            refused: AtomicBool::new(false),
            room: AtomicBool::new(true),
            queue: Arc::new(MessageQueue::new(receive_capacity)),
            slots: Slots::default(),
            closing: AtomicBool::new(false),
            quiescing: AtomicUsize::new(0),
            active_messages: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            waiters: AtomicUsize::new(0),
            idle: (Mutex::new(()), Condvar::new()),
            last_consumed: Exit::new(),
            last_returned: Exit::new(),
            panic: Mutex::new(None),
            panicked: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(SeqCst)
    }

    /// Waits on `state_changed` (up to `timeout`, `None`: no limit).
    pub(crate) fn wait_state<'a>(
        &self,
        mut s: MutexGuard<'a, State>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, State> {
        s.waiters += 1;
        let mut s = match timeout {
            None => self
                .state_changed
                .wait(s)
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            Some(t) => {
                self.state_changed
                    .wait_timeout(s, t)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0
            }
        };
        s.waiters -= 1;
        s
    }

    /// Releases the state and wakes its waiters, if any (std's `notify_all`
    /// makes a system call even when nobody waits).
    fn state_updated(&self, s: MutexGuard<'_, State>) {
        let wake = s.waiters > 0;
        drop(s);
        if wake {
            self.state_changed.notify_all();
        }
    }

    /// Waits until a publish may enter the library's in-flight window, and for
    /// a QoS 1/2 publish (`tracked`) takes a place in it, in the same critical
    /// section, so concurrent publishers never overfill the window (which would
    /// send `MQTTClient_publish` into its sleeping wait). Must be followed by
    /// [`Context::end_publish`] when `tracked`.
    pub(crate) fn begin_publish(&self, tracked: bool) {
        if !tracked && self.room.load(SeqCst) {
            return;
        }
        let mut s = lock(&self.state);
        while self.is_connected() && !s.deliveries.has_room() {
            s = self.wait_state(s, None);
        }
        if tracked {
            s.deliveries.begin();
            self.room.store(s.deliveries.has_room(), SeqCst);
        }
    }

    /// A tracked publish returned; `token` when it succeeded.
    pub(crate) fn end_publish(&self, token: Option<i32>) {
        let mut s = lock(&self.state);
        s.deliveries.end(token);
        self.room.store(s.deliveries.has_room(), SeqCst);
        self.state_updated(s);
    }

    /// Messages the library restored from persistence (see [`Deliveries::restored`]).
    pub(crate) fn restored(&self, tokens: impl IntoIterator<Item = i32>) {
        let mut s = lock(&self.state);
        s.deliveries.restored(tokens);
        self.room.store(s.deliveries.has_room(), SeqCst);
        self.state_updated(s);
    }

    /// `deliveryComplete` for `token`.
    pub(crate) fn complete(&self, token: i32) {
        let mut s = lock(&self.state);
        s.deliveries.complete(token);
        self.room.store(s.deliveries.has_room(), SeqCst);
        self.state_updated(s);
    }

    /// The connection ended (connection-lost callback, or `disconnect`).
    pub(crate) fn set_disconnected(&self) {
        let mut s = lock(&self.state);
        s.losses += 1;
        self.connected.store(false, SeqCst);
        if s.clean_session {
            // The library emptied its in-flight lists (MQTTClient_cleanSession).
            s.deliveries.clear();
        }
        self.room.store(s.deliveries.has_room(), SeqCst);
        self.state_updated(s);
        self.queue.connection_lost();
    }

    /// `MQTTClient_connect` succeeded with these options. `c_connected` asks
    /// the library (`MQTTClient_isConnected`); it is called without any of the
    /// context's locks held, because the delivery-complete callback takes them
    /// with the library's mutex held.
    pub(crate) fn set_connected(
        &self,
        clean_session: bool,
        inflight_limit: usize,
        c_connected: impl Fn() -> bool,
    ) {
        {
            let mut s = lock(&self.state);
            s.clean_session = clean_session;
            s.deliveries.set_limit(inflight_limit);
            if clean_session {
                // MQTTClient_connect cleaned the session after the CONNACK.
                s.deliveries.clear();
            }
            self.room.store(s.deliveries.has_room(), SeqCst);
        }
        // The connection may already be lost again. The library clears its
        // `connected` flag before calling connection-lost, which counts the loss
        // here: a state read with no loss counted in between is current.
        loop {
            let before = lock(&self.state).losses;
            let connected = c_connected();
            let s = lock(&self.state);
            if s.losses == before {
                self.connected.store(connected, SeqCst);
                self.state_updated(s);
                break;
            }
        }
    }

    /// Should callbacks leave user code and messages alone?
    pub(crate) fn is_quiet(&self) -> bool {
        self.closing.load(SeqCst) || self.quiescing.load(SeqCst) > 0
    }

    /// Marks the start of a callback; `message` for message-arrived. The
    /// returned guard marks its end.
    pub(crate) fn enter(&self, message: bool) -> Active<'_> {
        self.active.fetch_add(1, SeqCst);
        if message {
            self.active_messages.fetch_add(1, SeqCst);
        }
        Active {
            ctx: self,
            message,
            consumed: false,
        }
    }

    /// Blocks new message deliveries until the guard is dropped, then waits
    /// for running ones and for the library's thread to be past them.
    pub(crate) fn quiesce(&self) -> Quiesced<'_> {
        self.quiescing.fetch_add(1, SeqCst);
        self.queue.wake_producers();
        self.wait_until(|| self.active_messages.load(SeqCst) == 0);
        self.last_consumed.wait_passed();
        Quiesced(self)
    }

    /// For dropping: stops all user code and waits for the callbacks the
    /// library is running to finish.
    pub(crate) fn close(&self) {
        self.closing.store(true, SeqCst);
        self.queue.wake_producers();
        self.wait_idle();
    }

    /// Waits until no callback runs and the library's thread is past the last
    /// message callback, so the C client can be disconnected and destroyed.
    pub(crate) fn wait_idle(&self) {
        self.wait_until(|| self.active.load(SeqCst) == 0);
        self.last_returned.wait_passed();
    }

    fn wait_until(&self, done: impl Fn() -> bool) {
        self.waiters.fetch_add(1, SeqCst);
        let mut g = lock(&self.idle.0);
        while !done() {
            g = self
                .idle
                .1
                .wait_timeout(g, Duration::from_millis(50))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        drop(g);
        self.waiters.fetch_sub(1, SeqCst);
    }

    /// Keeps a panic message for the next API call.
    pub(crate) fn record_panic(&self, what: &str, payload: Box<dyn std::any::Any + Send>) {
        let text = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_owned());
        let text = format!("{what} callback of client {:?}: {text}", self.client_id);
        log::error!("paho-mqtt-sync: caught a panic in the {text}");
        *lock(&self.panic) = Some(text);
        self.panicked.store(true, SeqCst);
    }

    /// The panic caught since the last call, if any.
    pub(crate) fn take_panic(&self) -> Option<String> {
        if !self.panicked.load(SeqCst) {
            return None;
        }
        let mut p = lock(&self.panic);
        self.panicked.store(false, SeqCst);
        p.take()
    }
}

/// A running callback (see [`Context::enter`]).
pub(crate) struct Active<'a> {
    ctx: &'a Context,
    message: bool,
    consumed: bool,
}

impl Active<'_> {
    /// The callback took ownership of the message (it returns 1 to C).
    pub(crate) fn consumed(&mut self) {
        self.consumed = true;
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.ctx.leave(self.message, self.consumed);
    }
}

impl Context {
    /// The end of a callback (see [`Context::enter`]).
    fn leave(&self, message: bool, consumed: bool) {
        if message {
            let exit = Exit::now(EPOCH.load(SeqCst));
            self.last_returned.set(exit);
            if consumed {
                self.last_consumed.set(exit);
            }
            self.active_messages.fetch_sub(1, SeqCst);
        }
        self.active.fetch_sub(1, SeqCst);
        if self.waiters.load(SeqCst) > 0 {
            let _g = lock(&self.idle.0);
            self.idle.1.notify_all();
        }
    }
}

/// Message deliveries are blocked while this lives (see [`Context::quiesce`]).
pub(crate) struct Quiesced<'a>(&'a Context);

impl Drop for Quiesced<'_> {
    fn drop(&mut self) {
        self.0.quiescing.fetch_sub(1, SeqCst);
    }
}
