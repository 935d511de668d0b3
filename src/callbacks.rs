//! User callbacks (`MQTTClient_setCallbacks`) and the `extern "C"` functions
//! the library calls.
//!
//! Every client registers the three trampolines below once, at creation, with
//! its [`Context`] as the C `context`. The user's closures live in that context
//! and can be replaced at any time; the library never sees them.
//!
//! Where callbacks run, and what that means:
//! * message arrived and delivery complete run on the library's single callback
//!   thread (`MQTTClient_run`), shared by every client of the process; delivery
//!   complete even runs with the library's global mutex held. A client method
//!   called there would deadlock, so it returns [`Error::CalledFromCallback`].
//! * connection lost is started by the library on a thread of its own, and the
//!   thread that noticed the loss waits up to 5 s, holding the library's mutex,
//!   for it to return (MQTTClient.c, `MQTTClient_disconnect1`). This crate runs
//!   the user's connection-lost closure on a new thread instead and returns to
//!   the library at once, so the closure may take as long as it likes and may
//!   call any client method, `connect` included.
//! * panics never cross into C: each closure runs under `catch_unwind`; the
//!   panic is logged and reported by the client's next method call
//!   ([`Error::CallbackPanicked`]); a message whose callback panicked counts as
//!   handled, so it is not delivered again.

use std::cell::Cell;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

use crate::client::ConnectResponse;
use crate::context::{lock, Context};
use crate::delivery::DeliveryToken;
use crate::error::{Error, Result};
use crate::ffi;
use crate::message::Message;
use crate::properties::Properties;
use crate::reason::ReasonCode;
use crate::v5::{PublishAck, PublishAckKind};

type ConnectionLostFn = Box<dyn FnMut(Option<&str>) + Send>;
type MessageArrivedFn = Box<dyn FnMut(&str, &Message) -> bool + Send>;
type DeliveryCompleteFn = Box<dyn FnMut(DeliveryToken) + Send>;
type ConnectedFn = Box<dyn FnMut(&ConnectResponse) + Send>;
type ReconnectStoppedFn = Box<dyn FnMut(&Error) + Send>;
type PublishedFn = Box<dyn FnMut(&PublishAck) + Send>;
type DisconnectedFn = Box<dyn FnMut(ReasonCode, &Properties) + Send>;

/// The callbacks of a client, for [`Client::set_callbacks`](crate::Client::set_callbacks)
/// (the `cl`, `ma` and `dc` arguments of `MQTTClient_setCallbacks`).
///
/// A closure capturing the [`Client`](crate::Client) itself (an `Arc<Client>`)
/// makes a reference cycle; capture a `Weak` instead.
///
/// The closures outlive the call that registers them (the library calls them
/// later, on its own threads), so they must be `Send + 'static`; borrowing a
/// local does not compile:
///
/// ```compile_fail
/// # use paho_mqtt_sync::Callbacks;
/// let mut count = 0;
/// let cb = Callbacks::new().on_message_arrived(|_, _| { count += 1; true });
/// ```
///
/// and a message handed to the callback cannot be kept past it (clone it, or
/// use [`Client::start_consuming`](crate::Client::start_consuming) to get owned messages):
///
/// ```compile_fail
/// # use paho_mqtt_sync::{Callbacks, Message};
/// let mut kept: Option<&Message> = None;
/// let cb = Callbacks::new().on_message_arrived(move |_, msg| { kept = Some(msg); true });
/// ```
#[derive(Default)]
pub struct Callbacks {
    connection_lost: Option<ConnectionLostFn>,
    message_arrived: Option<MessageArrivedFn>,
    delivery_complete: Option<DeliveryCompleteFn>,
    connected: Option<ConnectedFn>,
    reconnect_stopped: Option<ReconnectStoppedFn>,
    published: Option<PublishedFn>,
    disconnected: Option<DisconnectedFn>,
}

impl Callbacks {
    /// No callbacks: messages go to `receive` / `start_consuming`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Called when the connection to the broker is lost
    /// (`MQTTClient_connectionLost`), with the cause when the library gives
    /// one (the MQTT 3 client never does). Runs on a thread of its own, where
    /// every client method may be called, `connect` included.
    pub fn on_connection_lost(mut self, f: impl FnMut(Option<&str>) + Send + 'static) -> Self {
        self.connection_lost = Some(Box::new(f));
        self
    }

    /// Called for every message that arrives (`MQTTClient_messageArrived`),
    /// with the topic and the message. Return `true` when the message is
    /// handled; `false` asks the library to deliver the same message again later
    /// (C's `return 0`). Runs on the library's callback thread: do not block
    /// long, and do not call client methods (they return
    /// [`Error::CalledFromCallback`]); use [`Client::start_consuming`](crate::Client::start_consuming)
    /// to handle messages on a thread of your own.
    pub fn on_message_arrived(
        mut self,
        f: impl FnMut(&str, &Message) -> bool + Send + 'static,
    ) -> Self {
        self.message_arrived = Some(Box::new(f));
        self
    }

    /// Called when the broker acknowledged a QoS 1 or 2 publish
    /// (`MQTTClient_deliveryComplete`), with the token `publish` returned. Runs
    /// on the library's callback thread with the library's mutex held: keep it short.
    pub fn on_delivery_complete(mut self, f: impl FnMut(DeliveryToken) + Send + 'static) -> Self {
        self.delivery_complete = Some(Box::new(f));
        self
    }
}

impl Callbacks {
    /// Called after every successful connect: the client's own
    /// [`Client::connect`](crate::Client::connect) calls (on the calling
    /// thread, before `connect` returns) and each automatic reconnect (on the
    /// reconnect thread). Any client method may be called in it; resubscribing
    /// when [`ConnectResponse::session_present`] is false is the usual body.
    /// (The crate's, not a C callback; like `MQTTClient_setConnected` of
    /// newer Paho C releases.)
    pub fn on_connected(mut self, f: impl FnMut(&ConnectResponse) + Send + 'static) -> Self {
        self.connected = Some(Box::new(f));
        self
    }

    /// Called when [automatic reconnect](crate::ConnectOptions::automatic_reconnect)
    /// gives up: the broker refused the connection (bad password, ...) or
    /// the options are invalid. Runs on the reconnect thread, where any
    /// client method may be called.
    pub fn on_reconnect_stopped(mut self, f: impl FnMut(&Error) + Send + 'static) -> Self {
        self.reconnect_stopped = Some(Box::new(f));
        self
    }
}

impl std::fmt::Debug for Callbacks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Callbacks")
            .field("connection_lost", &self.connection_lost.is_some())
            .field("message_arrived", &self.message_arrived.is_some())
            .field("delivery_complete", &self.delivery_complete.is_some())
            .field("connected", &self.connected.is_some())
            .field("reconnect_stopped", &self.reconnect_stopped.is_some())
            .field("published", &self.published.is_some())
            .field("disconnected", &self.disconnected.is_some())
            .finish()
    }
}

/// The user's closures of one client. One mutex each, so a long
/// connection-lost handler never holds up message delivery.
#[derive(Default)]
pub(crate) struct Slots {
    connection_lost: Mutex<Option<ConnectionLostFn>>,
    message_arrived: Mutex<Option<MessageArrivedFn>>,
    delivery_complete: Mutex<Option<DeliveryCompleteFn>>,
    connected: Mutex<Option<ConnectedFn>>,
    reconnect_stopped: Mutex<Option<ReconnectStoppedFn>>,
    published: Mutex<Option<PublishedFn>>,
    disconnected: Mutex<Option<DisconnectedFn>>,
    /// Mirrors `message_arrived.is_some()` for cheap checks.
    has_message_callback: AtomicBool,
    /// Mirrors `connection_lost.is_some()`: the connection-lost trampoline
    /// must not wait for that slot's lock (a closure still running from an
    /// earlier loss holds it, while the library holds its mutex and waits
    /// for the trampoline).
    has_connection_lost: AtomicBool,
    /// `start_consuming` was called from inside the message callback, whose
    /// slot is locked: the trampoline clears the slot when the callback returns.
    drop_message_callback: AtomicBool,
}

impl Slots {
    /// Installs new callbacks. Must not run on the library's thread (the
    /// message slot may be locked by the running callback).
    pub(crate) fn set(&self, cb: Callbacks) {
        {
            let mut cl = lock(&self.connection_lost);
            self.has_connection_lost
                .store(cb.connection_lost.is_some(), SeqCst);
            *cl = cb.connection_lost;
        }
        *lock(&self.delivery_complete) = cb.delivery_complete;
        *lock(&self.connected) = cb.connected;
        *lock(&self.reconnect_stopped) = cb.reconnect_stopped;
        *lock(&self.published) = cb.published;
        *lock(&self.disconnected) = cb.disconnected;
        let mut ma = lock(&self.message_arrived);
        self.has_message_callback
            .store(cb.message_arrived.is_some(), SeqCst);
        // A removal asked for from a callback that was not the message
        // callback must not drop the new one.
        self.drop_message_callback.store(false, SeqCst);
        *ma = cb.message_arrived;
    }

    /// Removes the message callback so messages go to the queue.
    pub(crate) fn clear_message_callback(&self) {
        if inside() == Inside::LibraryThread {
            self.has_message_callback.store(false, SeqCst);
            self.drop_message_callback.store(true, SeqCst);
        } else {
            let mut ma = lock(&self.message_arrived);
            self.has_message_callback.store(false, SeqCst);
            *ma = None;
        }
    }

    pub(crate) fn has_message_callback(&self) -> bool {
        self.has_message_callback.load(SeqCst)
    }

    /// Runs the connected closure, unless this thread is already running it
    /// (a connect from inside it). Panics are caught and logged.
    pub(crate) fn run_connected(&self, response: &ConnectResponse) {
        if inside() == Inside::Connected {
            return;
        }
        let _inside = InsideGuard::set(Inside::Connected);
        if let Some(f) = lock(&self.connected).as_mut() {
            if catch_unwind(AssertUnwindSafe(|| f(response))).is_err() {
                log::error!("paho-mqtt-sync: the connected callback panicked");
            }
        }
    }

    /// Runs the reconnect-stopped closure (panics caught and logged).
    pub(crate) fn run_reconnect_stopped(&self, error: &Error) {
        // `set_callbacks` from inside would wait for this slot's lock.
        let _inside = InsideGuard::set(Inside::Connected);
        if let Some(f) = lock(&self.reconnect_stopped).as_mut() {
            if catch_unwind(AssertUnwindSafe(|| f(error))).is_err() {
                log::error!("paho-mqtt-sync: the reconnect-stopped callback panicked");
            }
        }
    }
}

/// Which kind of callback the current thread is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Inside {
    Nothing,
    /// Message arrived or delivery complete, on the library's callback thread.
    LibraryThread,
    /// A connection-lost handler, on its own thread.
    ConnectionLost,
    /// The connected or reconnect-stopped callback (any thread but the
    /// library's; `set_callbacks` is refused there).
    Connected,
}

thread_local! {
    static INSIDE: Cell<Inside> = const { Cell::new(Inside::Nothing) };
}

pub(crate) fn inside() -> Inside {
    INSIDE.with(Cell::get)
}

/// Sets [`Inside`] for the current thread until dropped.
struct InsideGuard(Inside);

impl InsideGuard {
    fn set(kind: Inside) -> Self {
        InsideGuard(INSIDE.with(|c| c.replace(kind)))
    }
}

impl Drop for InsideGuard {
    fn drop(&mut self) {
        INSIDE.with(|c| c.set(self.0));
    }
}

/// Fails with [`Error::CalledFromCallback`] on the library's callback thread.
pub(crate) fn check_not_in_callback() -> Result<()> {
    match inside() {
        Inside::LibraryThread => Err(Error::CalledFromCallback),
        _ => Ok(()),
    }
}

/// Marks entry into a callback on the library's callback thread.
fn on_run_thread() -> InsideGuard {
    crate::run_thread::callback_entered();
    InsideGuard::set(Inside::LibraryThread)
}

/// Frees a message and topic the library handed over.
///
/// # Safety
/// Both must come from a `messageArrived` call whose message is being consumed.
unsafe fn free_c_message(topic: *mut c_char, mut message: *mut ffi::MQTTClient_message) {
    // SAFETY: guaranteed by the caller; the payload pointer is NULL when the
    // payload moved into a `Message`, which frees it itself.
    unsafe {
        ffi::MQTTClient_freeMessage(&mut message);
        ffi::MQTTClient_free(topic.cast());
    }
}

/// `MQTTClient_messageArrived`: hands the message to the user's closure or to
/// the receive queue. Returns 1 when the message was taken (and freed), 0 to
/// leave it with the library, which delivers it again later.
pub(crate) unsafe extern "C" fn message_arrived(
    context: *mut c_void,
    topic: *mut c_char,
    topic_len: c_int,
    message: *mut ffi::MQTTClient_message,
) -> c_int {
    let _inside = on_run_thread();
    // SAFETY: `context` is the client's Context (an `Arc`'s pointer), registered with
    // MQTTClient_setCallbacks; the client frees it only after destroying the C
    // client and after every running callback returned (Context::close).
    let ctx = unsafe { &*(context as *const Context) };
    let mut active = ctx.enter(true);
    if ctx.is_quiet() || topic.is_null() || message.is_null() {
        return 0;
    }
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the library passes the topic (NUL-terminated, or `topic_len`
        // bytes when it holds a NUL) and a message it allocated, both ours to
        // free when we return 1.
        unsafe { deliver(ctx, topic, topic_len, message) }
    }));
    match outcome {
        Ok(true) => {
            active.consumed();
            1
        }
        Ok(false) => 0,
        Err(panic) => {
            // Only the crate's own code can get here (the user's closure has
            // its own catch_unwind): keep the message's memory rather than
            // risk freeing it twice.
            ctx.record_panic("message-arrived (internal)", panic);
            active.consumed();
            1
        }
    }
}

/// The body of [`message_arrived`]; `true` when the message was consumed.
///
/// # Safety
/// As for [`message_arrived`].
unsafe fn deliver(
    ctx: &Context,
    topic: *mut c_char,
    topic_len: c_int,
    message: *mut ffi::MQTTClient_message,
) -> bool {
    // SAFETY: see the caller; a `topic_len` of 0 means NUL-terminated.
    let bytes = unsafe {
        match usize::try_from(topic_len) {
            Ok(n) if n > 0 => std::slice::from_raw_parts(topic as *const u8, n),
            _ => CStr::from_ptr(topic).to_bytes(),
        }
    };
    // MQTT topic names are UTF-8 [MQTT-1.5.3-1]; a replacement character
    // would let two different topics look the same, so such a message is a
    // protocol error of the broker: dropped (and freed), with an error logged.
    let Ok(name) = std::str::from_utf8(bytes) else {
        log::error!(
            "paho-mqtt-sync: client {:?} dropped a message whose topic is not UTF-8: {:?}",
            ctx.client_id(),
            String::from_utf8_lossy(bytes)
        );
        // SAFETY: the message is consumed (we return true): ours to free.
        unsafe { free_c_message(topic, message) };
        return true;
    };
    // SAFETY: `message` is valid and ours for the duration of the call.
    let msg = unsafe { Message::take_from_c(message) };

    if ctx.slots().has_message_callback() {
        let mut slot = lock(&ctx.slots().message_arrived);
        if let Some(f) = slot.as_mut() {
            // User code may take long: hand over what other clients' readers wait for.
            crate::idle::wake_deferred();
            let handled = catch_unwind(AssertUnwindSafe(|| f(name, &msg)));
            if ctx.slots().drop_message_callback.swap(false, SeqCst) {
                *slot = None;
            }
            drop(slot);
            let consumed = match handled {
                Ok(true) => true,
                Ok(false) => false,
                Err(panic) => {
                    ctx.record_panic("message-arrived", panic);
                    true
                }
            };
            if consumed {
                drop(msg);
                // SAFETY: consumed: the topic and message struct are ours to free.
                unsafe { free_c_message(topic, message) };
            } else {
                // SAFETY: `message` is the struct the payload came from.
                unsafe { msg.give_back_to_c(message) };
            }
            return consumed;
        }
    }

    match ctx
        .queue()
        .push((name.to_owned(), msg), ctx.client_id(), || ctx.is_quiet())
    {
        Ok(()) => {
            // SAFETY: the payload now belongs to the queued Message; the rest is ours.
            unsafe { free_c_message(topic, message) };
            true
        }
        Err((_, msg)) => {
            // SAFETY: `message` is the struct the payload came from.
            unsafe { msg.give_back_to_c(message) };
            false
        }
    }
}

/// `MQTTClient_deliveryComplete`: completes the token for `wait_for_completion`
/// and calls the user's closure. Runs with the library's mutex held.
pub(crate) unsafe extern "C" fn delivery_complete(
    context: *mut c_void,
    token: ffi::MQTTClient_deliveryToken,
) {
    let _inside = on_run_thread();
    // SAFETY: as in `message_arrived`.
    let ctx = unsafe { &*(context as *const Context) };
    let _active = ctx.enter(false);
    let result = catch_unwind(AssertUnwindSafe(|| {
        ctx.complete(token);
        if ctx.is_closing() {
            return;
        }
        if let Some(f) = lock(&ctx.slots().delivery_complete).as_mut() {
            crate::idle::wake_deferred();
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(DeliveryToken::from_id(token))))
            {
                ctx.record_panic("delivery-complete", panic);
            }
        }
    }));
    if let Err(panic) = result {
        ctx.record_panic("delivery-complete (internal)", panic);
    }
}

/// `MQTTClient_connectionLost`: records the loss and runs the user's closure
/// on a thread of its own.
///
/// The library calls this on a thread it starts, while the thread that noticed
/// the loss waits (up to 5 s, holding the library's mutex) for it to return; so
/// it returns at once. The user's closure runs on a new thread that holds its
/// own reference to the context: dropping the client does not wait for it, so
/// a long reconnect loop there cannot hold up (or deadlock) a drop.
pub(crate) unsafe extern "C" fn connection_lost(context: *mut c_void, cause: *mut c_char) {
    let ptr = context as *const Context;
    // SAFETY: as in `message_arrived`; in addition the client's destroy cannot
    // finish while this runs: the library holds its mutex until we return.
    let ctx = unsafe { &*ptr };
    let _active = ctx.enter(false);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let cause = (!cause.is_null()).then(|| {
            // SAFETY: a non-NULL cause is a NUL-terminated string from the library.
            unsafe { CStr::from_ptr(cause) }
                .to_string_lossy()
                .into_owned()
        });
        ctx.set_disconnected();
        log::debug!(
            "paho-mqtt-sync: client {:?} lost its connection",
            ctx.client_id()
        );
        if ctx.is_closing() {
            return;
        }
        // SAFETY: the context was created by `Arc::new` and the client holds a
        // strong reference until after it waited for this callback to return.
        let owned: Arc<Context> = unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        };
        if let Some(owner) = owned.owner() {
            owned.reconnect().connection_lost(&owned, owner);
        }
        if !owned.slots().has_connection_lost.load(SeqCst) {
            return;
        }
        let run = move || {
            let _inside = InsideGuard::set(Inside::ConnectionLost);
            if owned.is_closing() {
                return;
            }
            if let Some(f) = lock(&owned.slots().connection_lost).as_mut() {
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(cause.as_deref()))) {
                    owned.record_panic("connection-lost", panic);
                }
            }
        };
        let spawned = std::thread::Builder::new()
            .name("paho-conn-lost".into())
            .spawn(run);
        if let Err(e) = spawned {
            log::error!("paho-mqtt-sync: cannot start the connection-lost thread: {e}");
        }
    }));
    if let Err(panic) = result {
        ctx.record_panic("connection-lost (internal)", panic);
    }
}

impl Callbacks {
    /// MQTT 5: called with the broker's acknowledgement of a QoS 1 or 2
    /// publish (`MQTTClient_setPublished`): the PUBACK or PUBCOMP, or a
    /// PUBREC that ends the exchange with a failure, with its reason code
    /// (0x10 "no matching subscribers", 0x87 "not authorized", ...) and
    /// properties. Runs on the library's callback thread with the library's
    /// mutex held, like [`on_delivery_complete`](Self::on_delivery_complete)
    /// (which follows it for a PUBACK or PUBCOMP): keep it short, and do not
    /// call client methods.
    pub fn on_published(mut self, f: impl FnMut(&PublishAck) + Send + 'static) -> Self {
        self.published = Some(Box::new(f));
        self
    }

    /// MQTT 5: called when the broker sends a DISCONNECT
    /// (`MQTTClient_setDisconnected`), with its reason code (0x8E "session
    /// taken over", 0x8B "server shutting down", ...) and properties (reason
    /// string, server reference, user properties). The connection is closed
    /// by then and [`on_connection_lost`](Self::on_connection_lost) is not
    /// called for it. [Automatic reconnect](crate::ConnectOptions::automatic_reconnect)
    /// starts as after a lost connection, except after 0x8E (session taken
    /// over: taking it back would make two clients with the same id throw
    /// each other out in turn). Runs on a thread of its own, where every
    /// client method may be called, `connect5` included.
    pub fn on_disconnected(
        mut self,
        f: impl FnMut(ReasonCode, &Properties) + Send + 'static,
    ) -> Self {
        self.disconnected = Some(Box::new(f));
        self
    }
}

/// `MQTTClient_published` (MQTT 5): hands the acknowledgement's reason code
/// and properties to the user's closure. For a PUBREC with a failure code
/// the library ends the exchange without calling `deliveryComplete`, so the
/// token is completed here. Runs on the library's thread, mutex held.
pub(crate) unsafe extern "C" fn published(
    context: *mut c_void,
    token: c_int,
    packet_type: c_int,
    properties: *mut ffi::MQTTProperties,
    reason: ffi::MQTTReasonCodes,
) {
    let _inside = on_run_thread();
    // SAFETY: as in `message_arrived`.
    let ctx = unsafe { &*(context as *const Context) };
    let _active = ctx.enter(false);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let kind = match packet_type {
            4 => PublishAckKind::Puback,
            5 => PublishAckKind::Pubrec,
            _ => PublishAckKind::Pubcomp,
        };
        let reason = ReasonCode::from_c(reason).unwrap_or(ReasonCode::UNSPECIFIED_ERROR);
        if kind == PublishAckKind::Pubrec {
            ctx.complete(token);
        }
        if ctx.is_closing() {
            return;
        }
        let mut slot = lock(&ctx.slots().published);
        if let Some(f) = slot.as_mut() {
            crate::idle::wake_deferred();
            // SAFETY: the library passes the ack's list, valid for the call.
            let properties = unsafe { Properties::copy_from(properties) };
            let ack = PublishAck::new(DeliveryToken::from_id(token), kind, reason, properties);
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(&ack))) {
                ctx.record_panic("published", panic);
            }
        }
    }));
    if let Err(panic) = result {
        ctx.record_panic("published (internal)", panic);
    }
}

/// `MQTTClient_disconnected` (MQTT 5): the broker sent a DISCONNECT. The
/// library has closed the connection already (without calling
/// connection-lost) and calls this on a thread it starts, then frees the
/// properties. Records the loss and runs the user's closure on a thread of
/// its own, as `connection_lost` does.
pub(crate) unsafe extern "C" fn disconnected(
    context: *mut c_void,
    properties: *mut ffi::MQTTProperties,
    reason: ffi::MQTTReasonCodes,
) {
    let ptr = context as *const Context;
    // SAFETY: as in `message_arrived`. (The library does not wait for this
    // thread: a client destroyed in the instant between the DISCONNECT and
    // this call is a race inside the C library.)
    let ctx = unsafe { &*ptr };
    let _active = ctx.enter(false);
    let result = catch_unwind(AssertUnwindSafe(|| {
        let reason = ReasonCode::from_c(reason).unwrap_or(ReasonCode::UNSPECIFIED_ERROR);
        ctx.set_disconnected();
        log::debug!(
            "paho-mqtt-sync: client {:?} disconnected by the broker: {reason}",
            ctx.client_id()
        );
        if ctx.is_closing() {
            return;
        }
        // SAFETY: as in `connection_lost`.
        let owned: Arc<Context> = unsafe {
            Arc::increment_strong_count(ptr);
            Arc::from_raw(ptr)
        };
        // Automatic reconnect, as after a lost connection, except when
        // another client took the session over: taking it back would make
        // the two throw each other out in turn.
        if reason != ReasonCode::SESSION_TAKEN_OVER {
            if let Some(owner) = owned.owner() {
                owned.reconnect().connection_lost(&owned, owner);
            }
        }
        if lock(&owned.slots().disconnected).is_none() {
            return;
        }
        // SAFETY: the library's list is valid until we return; we copy it.
        let properties = unsafe { Properties::copy_from(properties) };
        let run = move || {
            let _inside = InsideGuard::set(Inside::ConnectionLost);
            if owned.is_closing() {
                return;
            }
            if let Some(f) = lock(&owned.slots().disconnected).as_mut() {
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| f(reason, &properties))) {
                    owned.record_panic("disconnected", panic);
                }
            }
        };
        let spawned = std::thread::Builder::new()
            .name("paho-disconnected".into())
            .spawn(run);
        if let Err(e) = spawned {
            log::error!("paho-mqtt-sync: cannot start the disconnected thread: {e}");
        }
    }));
    if let Err(panic) = result {
        ctx.record_panic("disconnected (internal)", panic);
    }
}
