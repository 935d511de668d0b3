//! The client: an owned `MQTTClient` handle and one method per
//! `MQTTClient_*` function.

use std::ffi::{CStr, CString};
use std::mem::ManuallyDrop;
use std::os::raw::{c_char, c_int};
use std::ptr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::callbacks::{self, Callbacks, Inside};
use crate::context::{lock, Context};
use crate::cstr::{cstring, with_cstr};
use crate::delivery::DeliveryToken;
use crate::diagnose::{diagnose, is_tls_uri};
use crate::error::{check, ConnectErrorKind, ConnectReturnCode, Error, Result};
use crate::ffi;
use crate::message::{check_payload_len, Message, QoS};
use crate::options::{ConnectOptions, CreateOptions, MqttVersion, Persistence, RawConnectOptions};
use crate::persistence::UserStore;
use crate::queue::{Popped, Receiver};
use crate::topic::{validate_filter, validate_topic};

/// A synchronous MQTT client: an `MQTTClient` handle of the Paho C library,
/// destroyed (after a disconnect) when the `Client` is dropped.
///
/// `Client` is `Send` and `Sync`: share it between threads with an `Arc` and
/// call any method from any of them. Every `MQTTClient_*` function serializes
/// itself on the library's global `mqttclient_mutex` (MQTTClient.c takes it at
/// the top of each API function; connect and destroy also take
/// `connect_mutex`, subscribe `subscribe_mutex`), and the state this crate keeps
/// next to the handle sits behind its own locks. The one unlocked C function,
/// `MQTTClient_setCommandTimeout`, is serialized here against the calls that
/// read the value.
///
/// Messages arrive either in a callback ([`Callbacks::on_message_arrived`]) or,
/// when none is set, in a queue read with [`Client::receive`] or through
/// [`Client::start_consuming`].
///
/// Dropping the client disconnects it (without waiting for messages in flight;
/// call [`Client::disconnect`] with a timeout first for that) and destroys the C
/// client. The drop waits for the client's message-arrived and
/// delivery-complete callbacks that are running to return, so do not drop it
/// while holding a lock those callbacks take. Dropped inside one of those
/// callbacks, it is torn down on a helper thread once the callback has
/// returned. A connection-lost handler still running is not waited for.
pub struct Client {
    pub(crate) inner: ManuallyDrop<Arc<Inner>>,
}

/// The C client and the crate's state next to it, shared with the
/// reconnect thread (reconnect.rs); dropping the last reference disconnects
/// and destroys the C client.
pub(crate) struct Inner {
    pub(crate) handle: ffi::MQTTClient,
    pub(crate) ctx: Arc<Context>,
    /// Held by subscribe, unsubscribe and `set_command_timeout`: the C calls
    /// that read or write `commandTimeout` (which the library does not lock),
    /// and that wait for a SUBACK or UNSUBACK. Before 1.3.16 the library let a
    /// subscribe and an unsubscribe of one client overlap, and the two could
    /// pick up each other's acknowledgement (both go through `m->pack`).
    pub(crate) commands: Mutex<()>,
    /// Held from the already-connected check through the C connect, so that
    /// two connects at once (the user's and the reconnect thread's, say)
    /// cannot open two connections.
    pub(crate) connecting: Mutex<()>,
    /// The URI given to `create` (empty for `from_raw`), for diagnosing
    /// failed connects.
    pub(crate) server_uri: String,
    /// A user store (`Persistence::User`): the library points into it until
    /// `MQTTClient_destroy`, so it is dropped with the fields, after `drop`
    /// destroyed the C client.
    _store: Option<UserStore>,
}

// SAFETY: the handle is only passed to MQTTClient_* functions, which lock the
// library's mutexes themselves (see the `Client` docs); the Context is Sync.
unsafe impl Send for Inner {}
// SAFETY: as above; no method hands out mutable access to shared data.
unsafe impl Sync for Inner {}

/// What the broker and the library said about a successful connect
/// (the `returned` fields of `MQTTClient_connectOptions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse {
    session_present: bool,
    mqtt_version: MqttVersion,
    server_uri: String,
}

impl ConnectResponse {
    pub(crate) fn new(
        session_present: bool,
        mqtt_version: MqttVersion,
        server_uri: String,
    ) -> Self {
        ConnectResponse {
            session_present,
            mqtt_version,
            server_uri,
        }
    }

    /// Whether the broker still had a session for this client id
    /// (`returned.sessionPresent`; always false with a clean session).
    pub fn session_present(&self) -> bool {
        self.session_present
    }

    /// The MQTT version the connection uses (`returned.MQTTVersion`).
    pub fn mqtt_version(&self) -> MqttVersion {
        self.mqtt_version
    }

    /// The server the client connected to, as the library reports it
    /// (`returned.serverURI`: host and port, without the `tcp://` scheme).
    pub fn server_uri(&self) -> &str {
        &self.server_uri
    }
}

impl Client {
    /// Creates a client for `server_uri` (`tcp://host:port`, `mqtt://`,
    /// `ws://`, `ssl://` with the `ssl` feature, `unix://path`) with the given
    /// client id (`MQTTClient_create`). No connection is made yet.
    pub fn create(server_uri: &str, client_id: &str, persistence: Persistence) -> Result<Client> {
        Self::create_with_options(
            server_uri,
            client_id,
            persistence,
            &CreateOptions::default(),
        )
    }

    /// [`Client::create`] with create options (`MQTTClient_createWithOptions`).
    pub fn create_with_options(
        server_uri: &str,
        client_id: &str,
        persistence: Persistence,
        options: &CreateOptions,
    ) -> Result<Client> {
        callbacks::check_not_in_callback()?;
        crate::library::check_library()?;
        let uri = cstring(server_uri, "server URI")?;
        let id = cstring(client_id, "client id")?;
        if client_id.len() > 65_535 {
            return Err(Error::InvalidArgument(
                "client id longer than 65535 bytes".into(),
            ));
        }
        let mut store = None;
        let (ptype, dir) = match persistence {
            Persistence::None => (ffi::MQTTCLIENT_PERSISTENCE_NONE, None),
            Persistence::User(user) => {
                store = Some(UserStore::new(user));
                (ffi::MQTTCLIENT_PERSISTENCE_USER, None)
            }
            Persistence::File(path) => {
                if !path.is_dir() {
                    return Err(Error::Persistence(format!(
                        "{} is not an existing directory",
                        path.display()
                    )));
                }
                if client_id.is_empty() {
                    return Err(Error::Persistence(
                        "file persistence needs a non-empty client id".into(),
                    ));
                }
                let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
                let dir =
                    CString::new(bytes).map_err(|_| Error::NulByte("persistence directory"))?;
                (ffi::MQTTCLIENT_PERSISTENCE_DEFAULT, Some(dir))
            }
        };
        let context = match (&dir, &store) {
            (Some(d), _) => d.as_ptr() as *mut _,
            (None, Some(s)) => s.context(),
            (None, None) => ptr::null_mut(),
        };
        let mut raw_opts = options.raw();
        let mut handle: ffi::MQTTClient = ptr::null_mut();
        // SAFETY: every pointer is valid for the call; the library copies the
        // URI, client id and persistence directory; a user store's table stays
        // where it is until after MQTTClient_destroy (`Inner::_store`, or the
        // end of this function on failure).
        let rc = unsafe {
            ffi::MQTTClient_createWithOptions(
                &mut handle,
                uri.as_ptr(),
                id.as_ptr(),
                ptype,
                context,
                &mut raw_opts,
            )
        };
        if rc != ffi::MQTTCLIENT_SUCCESS {
            if !handle.is_null() {
                // SAFETY: a partly created handle is freed with destroy.
                unsafe { ffi::MQTTClient_destroy(&mut handle) };
            }
            let store_error = store.as_ref().and_then(UserStore::create_error);
            // The library has let go of the store's table (destroyed above).
            drop(store);
            return Err(match (rc, store_error) {
                (ffi::MQTTCLIENT_PERSISTENCE_ERROR, Some(e)) => Error::Persistence(e),
                (ffi::MQTTCLIENT_PERSISTENCE_ERROR, None)
                    if ptype == ffi::MQTTCLIENT_PERSISTENCE_USER =>
                {
                    Error::Persistence(
                        "the library could not restore the messages of the store".into(),
                    )
                }
                (ffi::MQTTCLIENT_PERSISTENCE_ERROR, None) => Error::Persistence(format!(
                    "the library cannot use the persistence directory {:?}",
                    dir.as_deref().unwrap_or_default()
                )),
                (_, _) => Error::from_code(rc),
            });
        }
        // SAFETY: the handle was just created and is owned by nobody else.
        let client = unsafe {
            Self::adopt(
                handle,
                server_uri,
                client_id,
                options.receive_capacity,
                store,
            )
        }?;
        if options.mqtt_version == MqttVersion::V5 {
            client.ctx().set_v5();
        }
        Ok(client)
    }

    /// Takes ownership of a handle made by C code with `MQTTClient_create` and
    /// registers this crate's callbacks on it (`MQTTClient_setCallbacks`).
    ///
    /// # Safety
    /// `handle` must be a valid, not connected handle that nothing else uses or
    /// destroys from now on.
    pub unsafe fn from_raw(handle: ffi::MQTTClient, receive_capacity: usize) -> Result<Client> {
        callbacks::check_not_in_callback()?;
        if handle.is_null() {
            return Err(Error::Library(ffi::MQTTCLIENT_NULL_PARAMETER));
        }
        crate::library::check_library()?;
        // SAFETY: guaranteed by the caller.
        unsafe { Self::adopt(handle, "", "", receive_capacity, None) }
    }

    /// # Safety
    /// As for [`Client::from_raw`]; on error the handle is destroyed (and
    /// then `store`, which the handle uses, is dropped).
    unsafe fn adopt(
        mut handle: ffi::MQTTClient,
        server_uri: &str,
        client_id: &str,
        capacity: usize,
        store: Option<UserStore>,
    ) -> Result<Client> {
        let ctx = Arc::new(Context::new(client_id, capacity));
        let context = Arc::as_ptr(&ctx) as *mut std::os::raw::c_void;
        // SAFETY: `context` stays valid until after MQTTClient_destroy (see Drop).
        let rc = unsafe {
            ffi::MQTTClient_setCallbacks(
                handle,
                context,
                Some(callbacks::connection_lost),
                Some(callbacks::message_arrived),
                Some(callbacks::delivery_complete),
            )
        };
        // MQTT 5's acknowledgement and server-DISCONNECT callbacks; the
        // library calls them only on MQTT 5 connections.
        let rc = check(rc)
            .and_then(|()| {
                // SAFETY: as above.
                check(unsafe {
                    ffi::MQTTClient_setPublished(handle, context, Some(callbacks::published))
                })
            })
            .and_then(|()| {
                // SAFETY: as above.
                check(unsafe {
                    ffi::MQTTClient_setDisconnected(handle, context, Some(callbacks::disconnected))
                })
            });
        if let Err(e) = rc {
            // SAFETY: the handle is ours and not connected: no callback can run.
            unsafe { ffi::MQTTClient_destroy(&mut handle) };
            return Err(e);
        }
        let inner = Arc::new(Inner {
            handle,
            ctx,
            commands: Mutex::new(()),
            connecting: Mutex::new(()),
            server_uri: server_uri.to_owned(),
            _store: store,
        });
        inner.ctx.set_owner(Arc::downgrade(&inner));
        let client = Client {
            inner: ManuallyDrop::new(inner),
        };
        // QoS 1/2 messages restored from file persistence are in flight too.
        let restored = client.pending_delivery_tokens()?;
        if !restored.is_empty() {
            let ctx = client.ctx();
            ctx.restored(restored.iter().map(|t| t.id()));
        }
        Ok(client)
    }

    /// The `MQTTClient` handle, for calling [`crate::ffi`] functions directly.
    /// It stays owned by this `Client`: do not destroy it, and do not call
    /// `MQTTClient_setCallbacks` on it.
    pub fn as_raw(&self) -> ffi::MQTTClient {
        self.inner.handle
    }

    /// The client id given to [`Client::create`].
    pub fn client_id(&self) -> &str {
        self.inner.ctx.client_id()
    }

    pub(crate) fn ctx(&self) -> &Context {
        &self.inner.ctx
    }

    /// Checks made at the start of every call: not on the library's callback
    /// thread, and reports a panic caught in a callback since the last call.
    pub(crate) fn enter(&self) -> Result<()> {
        callbacks::check_not_in_callback()?;
        match self.ctx().take_panic() {
            Some(msg) => Err(Error::CallbackPanicked(msg)),
            None => Ok(()),
        }
    }

    /// Replaces the callbacks (`MQTTClient_setCallbacks`). Unlike the C
    /// function this works while connected too. With a message-arrived callback
    /// set, `receive` returns [`Error::CallbacksSet`]; without one, messages go to
    /// the receive queue.
    ///
    /// Takes `&self`, so a client shared in an `Arc` can be given callbacks
    /// that hold a `Weak` to it (to reconnect or resubscribe from them).
    pub fn set_callbacks(&self, callbacks: Callbacks) -> Result<()> {
        if callbacks::inside() != Inside::Nothing {
            return Err(Error::CalledFromCallback);
        }
        self.enter()?;
        self.ctx().slots().set(callbacks);
        Ok(())
    }

    /// Sends every message that arrives from now on to the returned
    /// [`Receiver`] (removing a message-arrived callback), so a thread of your
    /// own can handle them, and call client methods while doing so.
    pub fn start_consuming(&self) -> Receiver {
        self.ctx().slots().clear_message_callback();
        Receiver::new(self.ctx().queue().clone())
    }

    /// Connects to the broker (`MQTTClient_connect`). A CONNACK refusal is
    /// [`Error::ConnectionRefused`] with the broker's return code. A failure
    /// before the broker answered (host not resolved, connection refused,
    /// no CONNACK in time, TLS certificate or host name not verified, TLS
    /// handshake failed, protocol rejected) is [`Error::Connect`], whose
    /// [`ConnectError::kind`](crate::ConnectError::kind) says which, with
    /// `code()` -1 as in C (see [`ConnectError`](crate::ConnectError) for how
    /// the crate finds out).
    ///
    /// A client that is connected already gets [`Error::AlreadyConnected`]
    /// (the library would open a second connection and leak the first
    /// socket). An `ssl://` (or `mqtts://`, `wss://`) URI without
    /// [`ConnectOptions::ssl`] settings is an [`Error::InvalidArgument`]
    /// before anything is sent.
    ///
    /// May be called from a connection-lost callback to reconnect.
    ///
    /// With [`ConnectOptions::automatic_reconnect`], the client reconnects by
    /// itself after a lost connection (see there); every successful connect,
    /// this one and each automatic one, runs [`Callbacks::on_connected`].
    pub fn connect(&self, options: &ConnectOptions) -> Result<ConnectResponse> {
        self.enter()?;
        self.inner.connect(options)
    }

    /// Disconnects (`MQTTClient_disconnect`), first waiting up to `timeout` for
    /// QoS 1/2 messages in flight to be acknowledged, and stops
    /// [automatic reconnect](ConnectOptions::automatic_reconnect).
    ///
    /// The client is disconnected in any case. When messages are still
    /// unacknowledged at the end of `timeout`, the result is
    /// [`Error::Unacknowledged`] with their tokens, which says whether the
    /// session keeps them for the next connect (`clean_session(false)`) or
    /// they are lost (a clean session).
    pub fn disconnect(&self, timeout: Duration) -> Result<()> {
        self.enter()?;
        self.ctx().reconnect().stop();
        self.inner.disconnect(timeout)
    }

    /// Whether the client is connected (`MQTTClient_isConnected`). Inside a
    /// callback the crate's own record is returned instead of asking the library.
    pub fn is_connected(&self) -> bool {
        if callbacks::inside() == Inside::LibraryThread {
            return self.ctx().is_connected();
        }
        // SAFETY: valid handle.
        unsafe { ffi::MQTTClient_isConnected(self.inner.handle) != 0 }
    }

    /// Runs a publish call, keeping the token bookkeeping.
    pub(crate) fn publish_raw(
        &self,
        qos: QoS,
        call: impl FnOnce(&mut ffi::MQTTClient_deliveryToken) -> Result<c_int>,
    ) -> Result<DeliveryToken> {
        let ctx = self.ctx();
        let tracked = qos != QoS::AtMostOnce;
        ctx.begin_publish(tracked)?;
        let mut token: ffi::MQTTClient_deliveryToken = 0;
        let rc = call(&mut token);
        if tracked {
            let ok = matches!(rc, Ok(ffi::MQTTCLIENT_SUCCESS));
            ctx.end_publish(ok.then_some(token));
        }
        check(rc?)?;
        Ok(DeliveryToken::from_id(token))
    }

    /// Publishes `payload` to `topic` (`MQTTClient_publish`); the payload is
    /// passed to C without a copy. Returns the delivery token (0 for QoS 0).
    ///
    /// When the in-flight window is full (one message with
    /// `reliable(true)`), waits for an acknowledgement first, up to the
    /// command timeout ([`set_command_timeout`](Self::set_command_timeout),
    /// 10 s by default), then returns [`Error::Timeout`] (C's
    /// `MQTTClient_publish` would wait for ever).
    pub fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retained: bool,
    ) -> Result<DeliveryToken> {
        self.enter()?;
        validate_topic(topic)?;
        let len = check_payload_len(payload.len())?;
        let handle = self.inner.handle;
        self.publish_raw(qos, |token| {
            with_cstr(topic, "topic", |t| {
                // SAFETY: valid handle; `t` and `payload` outlive the call,
                // which copies both.
                unsafe {
                    ffi::MQTTClient_publish(
                        handle,
                        t,
                        len,
                        payload.as_ptr().cast(),
                        qos as c_int,
                        c_int::from(retained),
                        token,
                    )
                }
            })
        })
    }

    /// Publishes a [`Message`] to `topic` (`MQTTClient_publishMessage`).
    pub fn publish_message(&self, topic: &str, message: &Message) -> Result<DeliveryToken> {
        self.enter()?;
        validate_topic(topic)?;
        let mut raw = message.raw()?;
        let handle = self.inner.handle;
        self.publish_raw(message.qos(), |token| {
            with_cstr(topic, "topic", |t| {
                // SAFETY: valid handle; `raw` borrows the message's payload,
                // alive for the call, which copies it.
                unsafe { ffi::MQTTClient_publishMessage(handle, t, &mut raw, token) }
            })
        })
    }

    /// Waits until the publish with `token` is acknowledged
    /// (`MQTTClient_waitForCompletion`). Returns as soon as the acknowledgement
    /// arrives; [`Error::Timeout`] after `timeout`; [`Error::Disconnected`] when the
    /// client is (or gets) disconnected first, or when a clean session ended
    /// before the acknowledgement (the library then dropped the message). A
    /// token that is not in flight (already complete, or QoS 0) returns `Ok` at once.
    pub fn wait_for_completion(&self, token: DeliveryToken, timeout: Duration) -> Result<()> {
        self.enter()?;
        let ctx = self.ctx();
        ctx.wait_delivered(token.id(), Instant::now().checked_add(timeout))
    }

    /// The tokens of QoS 1/2 publishes not yet complete, as the library lists
    /// them (`MQTTClient_getPendingDeliveryTokens`).
    pub fn pending_delivery_tokens(&self) -> Result<Vec<DeliveryToken>> {
        self.enter()?;
        let mut tokens: *mut ffi::MQTTClient_deliveryToken = ptr::null_mut();
        // SAFETY: valid handle and out pointer.
        check(unsafe { ffi::MQTTClient_getPendingDeliveryTokens(self.inner.handle, &mut tokens) })?;
        let mut out = Vec::new();
        if !tokens.is_null() {
            // SAFETY: the library returns an array terminated by -1, which we
            // free with MQTTClient_free.
            unsafe {
                let mut p = tokens;
                while *p != -1 {
                    out.push(DeliveryToken::from_id(*p));
                    p = p.add(1);
                }
                ffi::MQTTClient_free(tokens.cast());
            }
        }
        Ok(out)
    }

    /// Subscribes to a topic filter (`MQTTClient_subscribe`, through
    /// `MQTTClient_subscribeMany` to learn the granted QoS). Returns the QoS the
    /// broker granted; a refusal (SUBACK `0x80`) is [`Error::SubscriptionRefused`].
    ///
    /// Waits for the SUBACK up to the command timeout
    /// ([`set_command_timeout`](Self::set_command_timeout), 10 s by default).
    /// If the connection drops meanwhile, the C library keeps waiting until that
    /// timeout and then returns `Error::Library(-1)`.
    pub fn subscribe(&self, filter: &str, qos: QoS) -> Result<QoS> {
        Ok(self.subscribe_many(&[(filter, qos)])?[0])
    }

    /// Subscribes to several filters in one SUBSCRIBE
    /// (`MQTTClient_subscribeMany`); returns the granted QoS of each. If the
    /// broker refuses some, [`Error::SubscriptionRefused`] names them and the
    /// others stay subscribed.
    pub fn subscribe_many(&self, filters: &[(&str, QoS)]) -> Result<Vec<QoS>> {
        self.enter()?;
        if filters.is_empty() {
            return Err(Error::InvalidArgument(
                "subscribe_many needs at least one filter".into(),
            ));
        }
        let names = filters
            .iter()
            .map(|(f, _)| validate_filter(f).and_then(|()| cstring(f, "topic filter")))
            .collect::<Result<Vec<_>>>()?;
        let ptrs: Vec<*mut c_char> = names.iter().map(|n| n.as_ptr() as *mut c_char).collect();
        let mut qos: Vec<c_int> = filters.iter().map(|(_, q)| *q as c_int).collect();
        let count = c_int::try_from(filters.len())
            .map_err(|_| Error::InvalidArgument("too many filters".into()))?;
        let rc = {
            let _t = lock(&self.inner.commands);
            // SAFETY: valid handle; `ptrs` and `qos` hold `count` entries each and
            // outlive the call; the library writes the granted QoS into `qos`.
            unsafe {
                ffi::MQTTClient_subscribeMany(
                    self.inner.handle,
                    count,
                    ptrs.as_ptr(),
                    qos.as_mut_ptr(),
                )
            }
        };
        check(rc)?;
        let refused: Vec<String> = filters
            .iter()
            .zip(&qos)
            .filter(|(_, &q)| q == ffi::MQTT_BAD_SUBSCRIBE)
            .map(|((f, _), _)| (*f).to_owned())
            .collect();
        if !refused.is_empty() {
            return Err(Error::SubscriptionRefused(refused));
        }
        qos.into_iter().map(QoS::try_from).collect()
    }

    /// Unsubscribes from a topic filter (`MQTTClient_unsubscribe`). Waits for
    /// the UNSUBACK like [`subscribe`](Self::subscribe) waits for the SUBACK.
    pub fn unsubscribe(&self, filter: &str) -> Result<()> {
        self.unsubscribe_many(&[filter])
    }

    /// Unsubscribes from several filters in one UNSUBSCRIBE
    /// (`MQTTClient_unsubscribeMany`).
    pub fn unsubscribe_many(&self, filters: &[&str]) -> Result<()> {
        self.enter()?;
        if filters.is_empty() {
            return Err(Error::InvalidArgument(
                "unsubscribe_many needs at least one filter".into(),
            ));
        }
        let names = filters
            .iter()
            .map(|f| validate_filter(f).and_then(|()| cstring(f, "topic filter")))
            .collect::<Result<Vec<_>>>()?;
        let ptrs: Vec<*mut c_char> = names.iter().map(|n| n.as_ptr() as *mut c_char).collect();
        let count = c_int::try_from(filters.len())
            .map_err(|_| Error::InvalidArgument("too many filters".into()))?;
        let _t = lock(&self.inner.commands);
        // SAFETY: valid handle; `ptrs` holds `count` strings alive for the call.
        check(unsafe { ffi::MQTTClient_unsubscribeMany(self.inner.handle, count, ptrs.as_ptr()) })
    }

    /// Waits up to `timeout` for the next message (`MQTTClient_receive`);
    /// `Ok(None)` when none came. Works whatever other clients of the process
    /// do (the C function fails once any client uses callbacks). Errors:
    /// [`Error::CallbacksSet`] when a message-arrived callback is set,
    /// [`Error::Disconnected`] when the client is not connected (or the connection
    /// is lost while waiting) and no message is queued.
    pub fn receive(&self, timeout: Duration) -> Result<Option<(String, Message)>> {
        self.enter()?;
        let ctx = self.ctx();
        if ctx.slots().has_message_callback() {
            return Err(Error::CallbacksSet);
        }
        let lost = ctx.queue().lost_count();
        if !ctx.is_connected() {
            return match ctx.queue().try_pop() {
                Popped::Item(item) => Ok(Some(item)),
                _ => Err(Error::Disconnected),
            };
        }
        match ctx.queue().pop(Some(timeout), Some(lost)) {
            Popped::Item(item) => Ok(Some(item)),
            Popped::TimedOut | Popped::Empty => Ok(None),
            Popped::Lost | Popped::Closed => Err(Error::Disconnected),
        }
    }

    /// How long subscribe and unsubscribe wait for the broker's
    /// acknowledgement (`MQTTClient_setCommandTimeout`; at least 5 s, default
    /// 10 s), and how long a publish waits for room in a full in-flight window.
    pub fn set_command_timeout(&self, timeout: Duration) -> Result<()> {
        self.enter()?;
        if timeout < Duration::from_secs(5) {
            return Err(Error::InvalidArgument(
                "command timeout must be at least 5 s".into(),
            ));
        }
        // Whole seconds, rounded up: the library's waits drop sub-second parts
        // (see library.rs).
        let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
        let ms = secs
            .checked_mul(1000)
            .and_then(|ms| std::os::raw::c_ulong::try_from(ms).ok())
            .ok_or_else(|| Error::InvalidArgument("command timeout too long".into()))?;
        let _t = lock(&self.inner.commands);
        // SAFETY: valid handle; the lock keeps subscribe and unsubscribe,
        // which read the value, from running at the same time.
        check(unsafe { ffi::MQTTClient_setCommandTimeout(self.inner.handle, ms) })?;
        self.ctx().set_command_timeout(Duration::from_secs(secs));
        Ok(())
    }
}

/// What is left until `deadline` (`None` when there is no deadline).
fn time_left(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

impl Inner {
    fn ctx(&self) -> &Context {
        &self.ctx
    }

    /// The body of [`Client::disconnect`] (also used by the reconnect thread).
    pub(crate) fn disconnect(&self, timeout: Duration) -> Result<()> {
        let handle = self.handle;
        // SAFETY: valid handle; see `disconnect_with`.
        self.disconnect_with(timeout, |ms| unsafe {
            ffi::MQTTClient_disconnect(handle, ms)
        })
    }

    /// A disconnect through `call` (`MQTTClient_disconnect` or
    /// `disconnect5`), given the milliseconds left; it runs with message
    /// callbacks quiesced (see context.rs).
    pub(crate) fn disconnect_with(
        &self,
        timeout: Duration,
        call: impl FnOnce(c_int) -> c_int,
    ) -> Result<()> {
        let ctx = self.ctx();
        let deadline = Instant::now() + timeout;
        // Wait for acknowledgements here: the library's own wait loop sleeps
        // in 100 ms steps.
        ctx.wait_deliveries_done(deadline);
        let unacknowledged = ctx.pending_tokens();
        let rest = deadline.saturating_duration_since(Instant::now());
        let ms = c_int::try_from(rest.as_millis()).unwrap_or(c_int::MAX);
        let rc = {
            let _quiet = ctx.quiesce();
            let _lifecycle = crate::run_thread::disconnecting();
            call(ms)
        };
        // The library's thread may have stopped before it went idle.
        crate::idle::wake_deferred();
        let will_resend = !ctx.is_clean_session();
        ctx.set_disconnected();
        check(rc)?;
        if unacknowledged.is_empty() {
            Ok(())
        } else {
            Err(Error::Unacknowledged {
                tokens: unacknowledged
                    .into_iter()
                    .map(DeliveryToken::from_id)
                    .collect(),
                will_resend,
            })
        }
    }

    pub(crate) fn connect(&self, options: &ConnectOptions) -> Result<ConnectResponse> {
        if options.version() == MqttVersion::V5 {
            return Err(Error::WrongMqttVersion(
                "MQTT 5 connects go through Client::connect5 (MQTTClient_connect5) on a client \
                 created with CreateOptions::mqtt_version(MqttVersion::V5)",
            ));
        }
        let mut raw = options.raw()?;
        let uris: Vec<&str> = if options.uris().is_empty() {
            vec![self.server_uri.as_str()]
        } else {
            options.uris().iter().map(String::as_str).collect()
        };
        if let Some(uri) = uris.iter().find(|u| is_tls_uri(u)) {
            if !options.has_tls() {
                return Err(Error::InvalidArgument(format!(
                    "{uri} is a TLS URI, but the connect options have no TLS settings \
                     (ConnectOptions::ssl)"
                )));
            }
        }
        let one_connect = lock(&self.connecting);
        // SAFETY: valid handle.
        if unsafe { ffi::MQTTClient_isConnected(self.handle) } != 0 {
            return Err(Error::AlreadyConnected);
        }
        let started = Instant::now();
        let deadline = started.checked_add(options.timeout());
        let first = match options.version() {
            MqttVersion::Default => MqttVersion::V3_1_1,
            v => v,
        };
        let explain = |result: Result<ConnectResponse>| match result {
            Err(Error::Library(ffi::MQTTCLIENT_FAILURE)) => Err(Error::Connect(diagnose(
                &uris,
                &self.ctx().tls_errors().take(),
                started.elapsed(),
                options.timeout(),
            ))),
            other => other,
        };
        self.ctx().tls_errors().take();
        let after_refusal = self.ctx().take_refused();
        let mut result = explain(self.connect_version(&mut raw, first, deadline, after_refusal));
        if options.version() == MqttVersion::Default {
            // The fallback to MQTT 3.1, for brokers that reject 3.1.1 with
            // CONNACK code 1 or by closing the connection, within the time left.
            let refused = matches!(
                result,
                Err(Error::ConnectionRefused(
                    ConnectReturnCode::UnacceptableProtocolVersion
                ))
            );
            let rejected = matches!(&result, Err(Error::Connect(e))
                if e.kind() == ConnectErrorKind::ProtocolRejected);
            if (refused || rejected)
                && time_left(deadline).is_none_or(|l| l >= Duration::from_secs(1))
            {
                result =
                    explain(self.connect_version(&mut raw, MqttVersion::V3_1, deadline, refused));
            }
        }
        if matches!(result, Err(Error::ConnectionRefused(_))) {
            self.ctx().set_refused();
        }
        let response = result?;
        let handle = self.handle;
        self.ctx()
            .set_connected(options.is_clean_session(), options.inflight_limit(), || {
                // SAFETY: valid handle.
                unsafe { ffi::MQTTClient_isConnected(handle) != 0 }
            });
        self.ctx().reconnect().connected(options);
        drop(one_connect);
        self.ctx().slots().run_connected(&response);
        Ok(response)
    }

    /// A connect with one MQTT version, until `deadline` (`None`: the
    /// options' timeout could not be added to now).
    ///
    /// After a refusal the broker closes the connection at once; when the
    /// library's thread sees that before the CONNACK was handled, it signals
    /// the (sticky) CONNACK event a second time, and the next connect of this
    /// client returns -1 at once (MQTTClient.c, `MQTTClient_run` and
    /// `MQTTClient_waitfor`). That attempt uses the stale signal up, so after a
    /// refusal a -1 is retried once.
    fn connect_version(
        &self,
        raw: &mut RawConnectOptions<'_>,
        version: MqttVersion,
        deadline: Option<Instant>,
        after_refusal: bool,
    ) -> Result<ConnectResponse> {
        let full = raw.timeout();
        let timeout = |d| time_left(d).unwrap_or(full);
        let result = self.connect_once(raw, version, timeout(deadline));
        if after_refusal
            && matches!(result, Err(Error::Library(ffi::MQTTCLIENT_FAILURE)))
            && time_left(deadline).is_none_or(|l| l >= Duration::from_secs(1))
        {
            return self.connect_once(raw, version, timeout(deadline));
        }
        result
    }

    /// One `MQTTClient_connect` with an explicit MQTT version.
    fn connect_once(
        &self,
        raw: &mut RawConnectOptions<'_>,
        version: MqttVersion,
        timeout: Duration,
    ) -> Result<ConnectResponse> {
        let handle = self.handle;
        let mut returned = (0, 0, String::new());
        let _lifecycle = crate::run_thread::connecting();
        let rc = raw.with(version, timeout, self.ctx().tls_errors(), |c| {
            // SAFETY: `c` and everything it points to live until `with` returns.
            let rc = crate::run_thread::connect(|| unsafe { ffi::MQTTClient_connect(handle, c) });
            if rc == ffi::MQTTCLIENT_SUCCESS {
                returned.0 = c.returned.sessionPresent;
                returned.1 = c.returned.MQTTVersion;
                if !c.returned.serverURI.is_null() {
                    // SAFETY: on success the library points this at a URI string
                    // that lives at least until the next connect.
                    returned.2 = unsafe { CStr::from_ptr(c.returned.serverURI) }
                        .to_string_lossy()
                        .into_owned();
                }
            }
            rc
        });
        check(rc)?;
        crate::run_thread::connected();
        Ok(ConnectResponse {
            session_present: returned.0 != 0,
            mqtt_version: MqttVersion::from_raw(returned.1),
            server_uri: returned.2,
        })
    }
}

impl Drop for Inner {
    /// Disconnects and destroys the C client, then releases the context. Must
    /// not run on the library's callback thread ([`Client`]'s `Drop` sees to it).
    fn drop(&mut self) {
        let ctx = &self.ctx;
        ctx.close();
        // SAFETY: valid handle.
        if unsafe { ffi::MQTTClient_isConnected(self.handle) } != 0 {
            let _lifecycle = crate::run_thread::disconnecting();
            // SAFETY: valid handle; no callback of this client runs (close()).
            unsafe { ffi::MQTTClient_disconnect(self.handle, 0) };
        }
        // Callbacks that started meanwhile left the message with the library;
        // wait until the library's thread is past them too.
        ctx.wait_idle();
        // SAFETY: valid handle, destroyed once; nothing uses it afterwards.
        unsafe { ffi::MQTTClient_destroy(&mut self.handle) };
        ctx.wait_idle();
        ctx.set_destroyed();
        crate::idle::wake_deferred();
        // The library holds no reference to the context any more; a
        // connection-lost handler still running keeps its own.
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.ctx().reconnect().stop();
        // SAFETY: `inner` is taken once, here, and not used afterwards.
        let inner = unsafe { ManuallyDrop::take(&mut self.inner) };
        if callbacks::inside() != Inside::LibraryThread {
            // Tears the C client down now, or, when the reconnect thread is
            // in a connect attempt, when that attempt returns.
            drop(inner);
            return;
        }
        // Inside a message or delivery callback: the library's thread is still
        // using the client, and calling into the library from it would
        // deadlock; finish on a helper thread once the callback has returned.
        // If the thread cannot start, the closure is dropped: `ManuallyDrop`
        // then leaks the client instead of freeing memory C still uses.
        let inner = ManuallyDrop::new(inner);
        let spawned = std::thread::Builder::new()
            .name("paho-drop".into())
            .spawn(move || drop(ManuallyDrop::into_inner(inner)));
        if let Err(e) = spawned {
            log::error!("paho-mqtt-sync: cannot start the thread that destroys a client dropped in a callback ({e}); leaking it");
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.client_id())
            .field("connected", &self.ctx().is_connected())
            .finish()
    }
}
