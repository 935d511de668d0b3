//! The callback context: the state a client shares with the C library's
//! callback thread. Its address is the `context` pointer given to
//! `MQTTClient_setCallbacks`, so it lives on the heap (an `Arc`) and is freed
//! only after `MQTTClient_destroy` and after the last callback returned.
//!
//! # Coordinating with the library's callback thread
//!
//! Before a disconnect or a drop calls into C, message callbacks are
//! *quiesced*: a callback that starts leaves the message with the library
//! (returns 0) and runs no user code, and the call waits until no message
//! callback of the client is running. With an unpatched system library it
//! also waits until the library's thread is past its bookkeeping after the
//! last callback ([`Exit`], run_thread.rs); the bundled library does that
//! itself.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use crate::callbacks::Slots;
use crate::client::Inner;
use crate::delivery::Deliveries;
use crate::diagnose::TlsErrors;
use crate::error::{Error, Result};
use crate::idle::{Deferred, RoomWake};
use crate::queue::MessageQueue;
use crate::reconnect::Reconnect;
use crate::run_thread::Exit;
use crate::signal::Signal;

/// The library's default command timeout (`MQTTClient_createWithOptions`
/// sets `commandTimeout` to 10 s).
pub(crate) const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

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
}

pub(crate) struct Context {
    /// For log messages.
    client_id: String,
    state: Mutex<State>,
    state_changed: Signal,
    connected: AtomicBool,
    /// The last connect was refused by the broker (see `Client::connect`).
    refused: AtomicBool,
    /// The client was created for MQTT 5 (or connected with `connect5`).
    v5: AtomicBool,
    /// Mirrors `state.deliveries.has_room()` so QoS 0 publishes skip the lock.
    room: AtomicBool,
    /// Publishers waiting for room in the in-flight window wait here (with
    /// the state lock): an acknowledgement wakes them once a batch of places
    /// is free or the library's thread goes idle (see [`crate::idle`]).
    room_changed: Arc<RoomWake>,
    /// The command timeout in milliseconds, also the limit of a publish's
    /// wait for room in the in-flight window.
    command_timeout_ms: AtomicU64,
    queue: Arc<MessageQueue>,
    slots: Slots,
    /// The client is being dropped: callbacks run no user code.
    closing: AtomicBool,
    /// Disconnects in progress: message callbacks leave messages with the library.
    quiescing: AtomicUsize,
    /// Message-arrived callbacks running now.
    active_messages: AtomicUsize,
    /// Callbacks the library is running now (the user's connection-lost
    /// closures run on threads of their own and are not counted).
    active: AtomicUsize,
    /// Signalled when a callback returns, for [`Context::wait_until`].
    idle: (Mutex<()>, Signal),
    /// Last return of a message callback that took ownership of the message.
    last_consumed: Exit,
    /// Last return of any message callback.
    last_returned: Exit,
    /// OpenSSL's error texts since the last connect began.
    tls_errors: TlsErrors,
    /// Automatic reconnect.
    reconnect: Reconnect,
    /// The client that owns this context, for the reconnect thread.
    owner: OnceLock<Weak<Inner>>,
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
                // Until a connect says otherwise, messages restored from
                // persistence belong to a session that a connect with
                // `clean_session(false)` resumes.
                clean_session: false,
                losses: 0,
            }),
            state_changed: Signal::new(),
            connected: AtomicBool::new(false),
            refused: AtomicBool::new(false),
            v5: AtomicBool::new(false),
            room: AtomicBool::new(true),
            room_changed: Arc::default(),
            command_timeout_ms: AtomicU64::new(DEFAULT_COMMAND_TIMEOUT.as_millis() as u64),
            queue: Arc::new(MessageQueue::new(receive_capacity)),
            slots: Slots::default(),
            closing: AtomicBool::new(false),
            quiescing: AtomicUsize::new(0),
            active_messages: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            idle: (Mutex::new(()), Signal::new()),
            last_consumed: Exit::new(),
            last_returned: Exit::new(),
            tls_errors: TlsErrors::default(),
            reconnect: Reconnect::default(),
            owner: OnceLock::new(),
            panic: Mutex::new(None),
            panicked: AtomicBool::new(false),
        }
    }

    pub(crate) fn client_id(&self) -> &str {
        &self.client_id
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(SeqCst)
    }

    pub(crate) fn reconnect(&self) -> &Reconnect {
        &self.reconnect
    }

    /// Records the client that owns this context (once, at creation).
    pub(crate) fn set_owner(&self, owner: Weak<Inner>) {
        let _ = self.owner.set(owner);
    }

    pub(crate) fn owner(&self) -> Option<Weak<Inner>> {
        self.owner.get().cloned()
    }

    pub(crate) fn tls_errors(&self) -> &TlsErrors {
        &self.tls_errors
    }

    pub(crate) fn slots(&self) -> &Slots {
        &self.slots
    }

    pub(crate) fn queue(&self) -> &Arc<MessageQueue> {
        &self.queue
    }

    /// The client is being dropped.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(SeqCst)
    }

    /// Whether the client speaks MQTT 5 (see v5.rs).
    pub(crate) fn is_v5(&self) -> bool {
        self.v5.load(SeqCst)
    }

    /// Marks the client as an MQTT 5 client.
    pub(crate) fn set_v5(&self) {
        self.v5.store(true, SeqCst);
    }

    /// Whether the last connect was refused, clearing the mark.
    pub(crate) fn take_refused(&self) -> bool {
        self.refused.swap(false, SeqCst)
    }

    /// Marks the last connect as refused by the broker.
    pub(crate) fn set_refused(&self) {
        self.refused.store(true, SeqCst);
    }

    /// Waits on `state_changed` (up to `timeout`, `None`: no limit).
    fn wait_state<'a>(
        &self,
        s: MutexGuard<'a, State>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, State> {
        self.state_changed.wait(s, timeout)
    }

    /// Releases the state and wakes its waiters.
    fn state_updated(&self, s: MutexGuard<'_, State>) {
        drop(s);
        self.state_changed.notify_all();
        self.room_changed.signal.notify_all();
    }

    /// The tokens of the QoS 1/2 publishes not acknowledged yet.
    pub(crate) fn pending_tokens(&self) -> Vec<i32> {
        lock(&self.state).deliveries.pending().to_vec()
    }

    /// Whether the current (or last) connection has a clean session.
    pub(crate) fn is_clean_session(&self) -> bool {
        lock(&self.state).clean_session
    }

    /// Waits until no QoS 1/2 publish is in flight, the connection is gone,
    /// or `deadline` passed.
    pub(crate) fn wait_deliveries_done(&self, deadline: Instant) {
        let mut s = lock(&self.state);
        while !s.deliveries.is_empty() && self.is_connected() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            s = self.wait_state(s, Some(deadline - now));
        }
    }

    /// Waits until the publish with token `id` is complete (see
    /// `Client::wait_for_completion`), up to `deadline` (`None`: no limit).
    pub(crate) fn wait_delivered(&self, id: i32, deadline: Option<Instant>) -> Result<()> {
        let mut s = lock(&self.state);
        loop {
            let unacknowledged = |will_resend| Error::Unacknowledged {
                tokens: vec![crate::DeliveryToken::from_id(id)],
                will_resend,
            };
            if !s.deliveries.is_pending(id) {
                if s.deliveries.is_dropped(id) {
                    // Never acknowledged: the clean session ended first.
                    return Err(unacknowledged(false));
                }
                return Ok(());
            }
            if !self.is_connected() {
                // Still pending after the connection ended: the session
                // (not clean, or its messages would have been dropped)
                // sends it again when it resumes.
                return Err(unacknowledged(!s.clean_session));
            }
            let wait = match deadline {
                None => None,
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(Error::Timeout);
                    }
                    Some(deadline - now)
                }
            };
            s = self.wait_state(s, wait);
        }
    }

    /// Waits until a publish may enter the library's in-flight window, and for
    /// a QoS 1/2 publish (`tracked`) takes a place in it, in the same critical
    /// section, so concurrent publishers never overfill the window (which would
    /// send `MQTTClient_publish` into its sleeping wait). Must be followed by
    /// [`Context::end_publish`] when `tracked`.
    ///
    /// Waits for room at most the command timeout: a broker that never
    /// acknowledges must not block every later publish forever (C's
    /// `MQTTClient_publish` does); then [`Error::Timeout`].
    pub(crate) fn begin_publish(&self, tracked: bool) -> Result<()> {
        if !tracked && self.room.load(SeqCst) {
            return Ok(());
        }
        let deadline = Instant::now().checked_add(self.command_timeout());
        let mut s = lock(&self.state);
        while self.is_connected() && !s.deliveries.has_room() {
            let wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Err(Error::Timeout),
                },
                None => None,
            };
            s = self.room_changed.signal.wait(s, wait);
        }
        if tracked {
            s.deliveries.begin();
            self.room.store(s.deliveries.has_room(), SeqCst);
        }
        Ok(())
    }

    /// How long commands wait for the broker (`Client::set_command_timeout`).
    pub(crate) fn command_timeout(&self) -> Duration {
        Duration::from_millis(self.command_timeout_ms.load(SeqCst))
    }

    pub(crate) fn set_command_timeout(&self, timeout: Duration) {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.command_timeout_ms.store(ms, SeqCst);
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
        let room = s.deliveries.has_room();
        self.room.store(room, SeqCst);
        // A publisher waiting for room wakes for a batch of free places, or
        // when no more acknowledgements are about to be read.
        let wake_publishers = self.room_changed.signal.has_waiters()
            && (s.deliveries.room_for_a_batch() || !self.defer_room_wake());
        drop(s);
        self.state_changed.notify_all();
        if wake_publishers {
            self.room_changed.signal.notify_all();
        }
    }

    /// Leaves the wake-up of publishers waiting for room to the library's
    /// idle callback; `false` if there is none (wake them now).
    fn defer_room_wake(&self) -> bool {
        let room = &self.room_changed;
        if room.deferred.swap(true, SeqCst) {
            return true; // registered already
        }
        if crate::idle::defer(Deferred::Room(room.clone())) {
            return true;
        }
        room.deferred.store(false, SeqCst);
        false
    }

    /// The connection ended (connection-lost callback, or `disconnect`).
    pub(crate) fn set_disconnected(&self) {
        let mut s = lock(&self.state);
        s.losses += 1;
        self.mark_connected(false);
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
                self.mark_connected(connected);
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
        let mut g = lock(&self.idle.0);
        while !done() {
            g = self.idle.1.wait(g, Some(Duration::from_millis(50)));
        }
    }

    /// Records the connection state, keeping the process-wide count of
    /// connected clients (run_thread.rs) in step.
    fn mark_connected(&self, connected: bool) {
        if self.connected.swap(connected, SeqCst) != connected {
            crate::run_thread::connected_clients_changed(connected);
        }
    }

    /// The client is destroyed: no connection, no more messages.
    pub(crate) fn set_destroyed(&self) {
        self.mark_connected(false);
        self.queue.close();
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
            self.last_returned.stamp();
            if consumed {
                self.last_consumed.stamp();
            }
            self.active_messages.fetch_sub(1, SeqCst);
        }
        self.active.fetch_sub(1, SeqCst);
        if self.idle.1.has_waiters() {
            // The counts changed outside the mutex: take it once, so a waiter
            // that saw the old count is inside its wait before the signal.
            drop(lock(&self.idle.0));
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
