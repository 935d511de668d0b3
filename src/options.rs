//! Options for creating and connecting a client: the Rust side of
//! `MQTTClient_createOptions`, `MQTTClient_connectOptions` and
//! `MQTTClient_willOptions`, plus the persistence choice of `MQTTClient_create`.
//!
//! The builders own every string and buffer the C structs point into, and
//! build the C structs only for the duration of a call.

use std::ffi::CString;
use std::os::raw::c_char;
use std::path::PathBuf;
use std::ptr;
use std::time::Duration;

use crate::cstr::cstring;
use crate::error::{Error, Result};
use crate::ffi;
use crate::message::{check_payload_len, QoS};
use crate::topic::validate_topic;

/// Where the client keeps QoS 1/2 messages in flight across restarts
/// (`persistence_type` and `persistence_context` of `MQTTClient_create`).
#[non_exhaustive]
pub enum Persistence {
    /// `MQTTCLIENT_PERSISTENCE_NONE`: in memory only; lost when the process ends.
    None,
    /// `MQTTCLIENT_PERSISTENCE_DEFAULT` with this directory as context: the
    /// library's file persistence, one sub-directory per client id and server.
    /// The directory must exist; unlike C, there is no "current directory"
    /// default, so files never land where the process happens to run.
    ///
    /// The library writes each entry in place, without `fsync`: it survives
    /// the process being killed, not necessarily a power cut (see
    /// [`DirStore`](crate::DirStore) for a store that does).
    File(PathBuf),
    /// `MQTTCLIENT_PERSISTENCE_USER`: a store of your own (see
    /// [`ClientPersistence`](crate::ClientPersistence)). The client owns it
    /// and drops it after the C client is destroyed.
    User(Box<dyn crate::persistence::ClientPersistence>),
}

impl std::fmt::Debug for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Persistence::None => f.write_str("None"),
            Persistence::File(dir) => f.debug_tuple("File").field(dir).finish(),
            Persistence::User(_) => f.write_str("User(..)"),
        }
    }
}

/// The MQTT protocol level to connect with (`MQTTVersion`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MqttVersion {
    /// Try 3.1.1, and 3.1 if the broker rejects the protocol level (CONNACK
    /// code 1) or drops the connection without a CONNACK, within the connect
    /// timeout. (The C library's `MQTTVERSION_DEFAULT` also retries after a
    /// refusal such as a wrong password, and then reports the second attempt's
    /// result; this crate does the fallback itself.)
    #[default]
    Default,
    /// `MQTTVERSION_3_1`.
    V3_1,
    /// `MQTTVERSION_3_1_1`.
    V3_1_1,
    /// `MQTTVERSION_5`. A client created with it
    /// ([`CreateOptions::mqtt_version`]) uses the `*5` methods
    /// ([`Client::connect5`](crate::Client::connect5), ...).
    V5,
}

impl MqttVersion {
    pub(crate) fn raw(self) -> i32 {
        match self {
            MqttVersion::Default => ffi::MQTTVERSION_DEFAULT,
            MqttVersion::V3_1 => ffi::MQTTVERSION_3_1,
            MqttVersion::V3_1_1 => ffi::MQTTVERSION_3_1_1,
            MqttVersion::V5 => ffi::MQTTVERSION_5,
        }
    }

    pub(crate) fn from_raw(v: i32) -> MqttVersion {
        match v {
            ffi::MQTTVERSION_3_1 => MqttVersion::V3_1,
            ffi::MQTTVERSION_3_1_1 => MqttVersion::V3_1_1,
            ffi::MQTTVERSION_5 => MqttVersion::V5,
            _ => MqttVersion::Default,
        }
    }
}

/// Options for [`Client::create_with_options`](crate::Client::create_with_options)
/// (`MQTTClient_createOptions`, plus this crate's receive buffer size).
///
/// The synchronous C client's create options hold only the MQTT version;
/// "send while disconnected" and "max buffered messages" exist only in the
/// asynchronous C client (`MQTTAsync_createOptions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateOptions {
    pub(crate) mqtt_version: MqttVersion,
    pub(crate) receive_capacity: usize,
}

/// Default capacity of the queue behind `receive` and `start_consuming`.
pub const DEFAULT_RECEIVE_CAPACITY: usize = 10_000;

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            mqtt_version: MqttVersion::Default,
            receive_capacity: DEFAULT_RECEIVE_CAPACITY,
        }
    }
}

impl CreateOptions {
    /// `MQTTClient_createOptions_initializer`, with a receive buffer of
    /// [`DEFAULT_RECEIVE_CAPACITY`] messages.
    pub fn new() -> Self {
        Self::default()
    }

    /// The MQTT version the client is created for (`MQTTVersion`).
    pub fn mqtt_version(mut self, version: MqttVersion) -> Self {
        self.mqtt_version = version;
        self
    }

    /// How many received messages may wait for `receive` or a
    /// [`Receiver`](crate::Receiver) before the library's callback thread
    /// pushes back (at least 1). Only used when no message-arrived callback is
    /// set. A message that finds the queue full waits up to 100 ms for room and
    /// is then queued anyway, with a warning in the log: messages are never
    /// dropped, and one client's unread queue cannot freeze the other clients of
    /// the process, which share that thread.
    pub fn receive_capacity(mut self, messages: usize) -> Self {
        self.receive_capacity = messages.max(1);
        self
    }

    pub(crate) fn raw(&self) -> ffi::MQTTClient_createOptions {
        ffi::MQTTClient_createOptions {
            MQTTVersion: self.mqtt_version.raw(),
            ..ffi::MQTTClient_createOptions::default()
        }
    }
}

/// The last will: the message the broker publishes for the client if it
/// disappears without a DISCONNECT (`MQTTClient_willOptions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WillOptions {
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
    retained: bool,
}

impl WillOptions {
    /// A will for `topic` with a text or binary payload (QoS 0, not retained).
    /// The topic is checked when connecting.
    pub fn new(topic: &str, payload: impl AsRef<[u8]>) -> Self {
        WillOptions {
            topic: topic.to_owned(),
            payload: payload.as_ref().to_vec(),
            qos: QoS::AtMostOnce,
            retained: false,
        }
    }

    /// QoS of the will message (`qos`).
    pub fn qos(mut self, qos: QoS) -> Self {
        self.qos = qos;
        self
    }

    /// Whether the broker retains the will message (`retained`).
    pub fn retained(mut self, retained: bool) -> Self {
        self.retained = retained;
        self
    }
}

/// Options for [`Client::connect`](crate::Client::connect)
/// (`MQTTClient_connectOptions`). `ConnectOptions::new()` equals
/// `MQTTClient_connectOptions_initializer`: keepalive 60 s, clean session,
/// reliable (one QoS 1/2 message in flight), connect timeout 30 s.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    keep_alive: Duration,
    clean_session: bool,
    reliable: bool,
    will: Option<WillOptions>,
    username: Option<String>,
    password: Option<Vec<u8>>,
    connect_timeout: Duration,
    retry_interval: Duration,
    max_inflight: Option<u32>,
    server_uris: Vec<String>,
    mqtt_version: MqttVersion,
    reconnect: Option<(Duration, Duration)>,
    #[cfg(feature = "ssl")]
    ssl: Option<crate::ssl::SslOptions>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            keep_alive: Duration::from_secs(60),
            clean_session: true,
            reliable: true,
            will: None,
            username: None,
            password: None,
            connect_timeout: Duration::from_secs(30),
            retry_interval: Duration::ZERO,
            max_inflight: None,
            server_uris: Vec::new(),
            mqtt_version: MqttVersion::Default,
            reconnect: None,
            #[cfg(feature = "ssl")]
            ssl: None,
        }
    }
}

impl ConnectOptions {
    /// `MQTTClient_connectOptions_initializer`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keepalive interval (`keepAliveInterval`, whole seconds, rounded up; zero
    /// turns keepalive off; at most 65,535 s).
    pub fn keep_alive_interval(mut self, interval: Duration) -> Self {
        self.keep_alive = interval;
        self
    }

    /// Clean session (`cleansession`): `false` asks the broker to keep the
    /// session (subscriptions, queued QoS 1/2 messages) across disconnects.
    pub fn clean_session(mut self, clean: bool) -> Self {
        self.clean_session = clean;
        self
    }

    /// The last will (`will`).
    pub fn will(mut self, will: WillOptions) -> Self {
        self.will = Some(will);
        self
    }

    /// User name (`username`).
    pub fn username(mut self, username: &str) -> Self {
        self.username = Some(username.to_owned());
        self
    }

    /// Password, text or binary (sent as `binarypwd`; MQTT passwords are binary data).
    pub fn password(mut self, password: impl AsRef<[u8]>) -> Self {
        self.password = Some(password.as_ref().to_vec());
        self
    }

    /// How long `connect` waits for the TCP connection and the CONNACK
    /// (`connectTimeout`, whole seconds, rounded up, at least 1). The library
    /// gets one second more, because its waits drop the sub-second part of
    /// what is left (paho.mqtt.c#1682): the connect waits at least this long.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long the library waits for an acknowledgement before sending a
    /// QoS 1/2 message again while connected (`retryInterval`, whole seconds;
    /// zero: only on reconnect).
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval;
        self
    }

    /// `reliable`: `true` (the default) allows one QoS 1/2 message in flight at
    /// a time, `false` allows 10. [`max_inflight_messages`](Self::max_inflight_messages)
    /// overrides either.
    pub fn reliable(mut self, reliable: bool) -> Self {
        self.reliable = reliable;
        self
    }

    /// Maximum number of QoS 1/2 messages in flight (`maxInflightMessages`, at
    /// least 1). A publish beyond it waits for an acknowledgement.
    pub fn max_inflight_messages(mut self, max: u32) -> Self {
        self.max_inflight = Some(max);
        self
    }

    /// A list of brokers to try in order (`serverURIs`, `serverURIcount`); when
    /// empty, the URI given to `create` is used.
    pub fn server_uris(mut self, uris: &[&str]) -> Self {
        self.server_uris = uris.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// The MQTT version to connect with (`MQTTVersion`).
    pub fn mqtt_version(mut self, version: MqttVersion) -> Self {
        self.mqtt_version = version;
        self
    }

    /// Reconnect by itself after a lost connection (the crate's, not C's
    /// `MQTTAsync` option): wait `min`, connect with these same options, and
    /// after each failed attempt wait twice as long, up to `max` (each wait
    /// shortened at random by up to a quarter), until a connect succeeds, the
    /// broker refuses the connection (reported through
    /// [`Callbacks::on_reconnect_stopped`](crate::Callbacks::on_reconnect_stopped)),
    /// or [`Client::disconnect`](crate::Client::disconnect) or a drop stops it.
    /// Each success runs [`Callbacks::on_connected`](crate::Callbacks::on_connected)
    /// (resubscribe there when `session_present()` is false). `min` must be
    /// more than zero and at most `max`.
    pub fn automatic_reconnect(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect = Some((min, max));
        self
    }

    /// The waits of [`ConnectOptions::automatic_reconnect`], if set.
    pub(crate) fn reconnect_backoff(&self) -> Option<(Duration, Duration)> {
        self.reconnect
    }

    /// TLS settings (`ssl`), for `ssl://` and `mqtts://` URIs.
    #[cfg(feature = "ssl")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ssl")))]
    pub fn ssl(mut self, ssl: crate::ssl::SslOptions) -> Self {
        self.ssl = Some(ssl);
        self
    }

    /// Whether a will is set.
    pub(crate) fn has_will(&self) -> bool {
        self.will.is_some()
    }

    /// The server URIs given (`server_uris`; empty: the create URI).
    pub(crate) fn uris(&self) -> &[String] {
        &self.server_uris
    }

    /// Whether TLS settings are given.
    pub(crate) fn has_tls(&self) -> bool {
        #[cfg(feature = "ssl")]
        return self.ssl.is_some();
        #[cfg(not(feature = "ssl"))]
        false
    }

    /// Whether the session is clean (used by the client's bookkeeping).
    pub(crate) fn is_clean_session(&self) -> bool {
        self.clean_session
    }

    /// The connect timeout as given.
    pub(crate) fn timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// The MQTT version as given.
    pub(crate) fn version(&self) -> MqttVersion {
        self.mqtt_version
    }

    /// How many QoS 1/2 messages the library lets be in flight with these
    /// options (MQTTClient.c, `MQTTClient_connectURI`).
    pub(crate) fn inflight_limit(&self) -> usize {
        match self.max_inflight {
            Some(n) if n > 0 => n as usize,
            _ if self.reliable => 1,
            _ => 10,
        }
    }

    /// Checks the options and builds the C structs; the result borrows `self`.
    pub(crate) fn raw(&self) -> Result<RawConnectOptions<'_>> {
        let keep_alive = whole_secs(self.keep_alive, 0, "keep alive interval", 65_535)?;
        c_connect_timeout(self.connect_timeout)?;
        let retry_interval = whole_secs(self.retry_interval, 0, "retry interval", i32::MAX)?;
        if let Some((min, max)) = self.reconnect {
            if min.is_zero() || min > max {
                return Err(Error::InvalidArgument(
                    "automatic_reconnect needs 0 < min <= max".into(),
                ));
            }
        }
        if self.max_inflight == Some(0) {
            return Err(Error::InvalidArgument(
                "max_inflight_messages must be at least 1".into(),
            ));
        }
        let max_inflight = match self.max_inflight {
            Some(n) => i32::try_from(n)
                .map_err(|_| Error::InvalidArgument("max_inflight_messages is too large".into()))?,
            None => -1,
        };
        let username = self
            .username
            .as_deref()
            .map(|u| cstring(u, "user name"))
            .transpose()?;
        if let Some(pw) = &self.password {
            if pw.len() > 65_535 {
                return Err(Error::InvalidArgument(
                    "password longer than 65535 bytes".into(),
                ));
            }
        }
        let will = match &self.will {
            Some(w) => {
                validate_topic(&w.topic)?;
                let len = check_payload_len(w.payload.len())?;
                if w.payload.len() > 65_535 {
                    return Err(Error::InvalidArgument(
                        "will payload longer than 65535 bytes".into(),
                    ));
                }
                Some((cstring(&w.topic, "will topic")?, len))
            }
            None => None,
        };
        let uris = self
            .server_uris
            .iter()
            .map(|u| cstring(u, "server URI"))
            .collect::<Result<Vec<CString>>>()?;
        let uri_count = i32::try_from(uris.len())
            .map_err(|_| Error::InvalidArgument("too many server URIs".into()))?;
        #[cfg(feature = "ssl")]
        let ssl = self
            .ssl
            .as_ref()
            .map(crate::ssl::SslOptions::raw)
            .transpose()?;
        Ok(RawConnectOptions {
            opts: self,
            keep_alive,
            retry_interval,
            max_inflight,
            username,
            will,
            uri_ptrs: uris.iter().map(|u| u.as_ptr() as *mut c_char).collect(),
            uris,
            uri_count,
            #[cfg(feature = "ssl")]
            ssl,
        })
    }
}

/// `connectTimeout` for a connect that may take `timeout`: whole seconds,
/// rounded up, plus one, because the library's timed waits drop the
/// sub-second part of what is left (see library.rs), so a 1 s connect could
/// otherwise give up after a few milliseconds.
pub(crate) fn c_connect_timeout(timeout: Duration) -> Result<i32> {
    Ok(whole_secs(timeout, 1, "connect timeout", i32::MAX - 1)? + 1)
}

/// Converts a duration to whole seconds for a C `int` field, rounding up.
fn whole_secs(d: Duration, min: i32, what: &str, max: i32) -> Result<i32> {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    let secs = i32::try_from(secs)
        .ok()
        .filter(|s| *s <= max)
        .ok_or_else(|| Error::InvalidArgument(format!("{what} is longer than {max} s")))?;
    Ok(secs.max(min))
}

/// Checked, C-ready connect options: owns the C strings and pointer arrays
/// that `MQTTClient_connectOptions` points into.
pub(crate) struct RawConnectOptions<'a> {
    opts: &'a ConnectOptions,
    keep_alive: i32,
    retry_interval: i32,
    max_inflight: i32,
    username: Option<CString>,
    will: Option<(CString, i32)>,
    uris: Vec<CString>,
    uri_ptrs: Vec<*mut c_char>,
    uri_count: i32,
    #[cfg(feature = "ssl")]
    ssl: Option<crate::ssl::RawSslOptions<'a>>,
}

impl RawConnectOptions<'_> {
    /// The connect timeout of the options these were made from.
    pub(crate) fn timeout(&self) -> Duration {
        self.opts.connect_timeout
    }

    /// Calls `f` with the C options struct (and the will struct it points to),
    /// both valid only during the call, for one connect attempt with MQTT
    /// version `version` that may take `timeout`.
    /// OpenSSL's error texts go to `tls_errors` (see `SslOptions`).
    pub(crate) fn with<R>(
        &mut self,
        version: MqttVersion,
        timeout: Duration,
        tls_errors: &crate::diagnose::TlsErrors,
        f: impl FnOnce(&mut ffi::MQTTClient_connectOptions) -> R,
    ) -> R {
        let o = self.opts;
        let mut will = ffi::MQTTClient_willOptions::default();
        let mut c = ffi::MQTTClient_connectOptions {
            keepAliveInterval: self.keep_alive,
            cleansession: i32::from(o.clean_session),
            reliable: i32::from(o.reliable),
            // Checked in `raw`; a shorter remaining timeout is in range too.
            connectTimeout: c_connect_timeout(timeout).unwrap_or(i32::MAX),
            retryInterval: self.retry_interval,
            MQTTVersion: version.raw(),
            maxInflightMessages: self.max_inflight,
            ..ffi::MQTTClient_connectOptions::default()
        };
        if let Some(u) = &self.username {
            c.username = u.as_ptr();
        }
        if let Some(pw) = &o.password {
            // The binary form carries any bytes; `password` stays NULL so the
            // library uses it (MQTTClient.c, MQTTClient_connectURI).
            c.binarypwd.len = pw.len() as i32;
            c.binarypwd.data = if pw.is_empty() {
                c"".as_ptr().cast()
            } else {
                pw.as_ptr().cast()
            };
        }
        if let (Some((topic, len)), Some(w)) = (&self.will, &o.will) {
            will.topicName = topic.as_ptr();
            will.qos = w.qos as i32;
            will.retained = i32::from(w.retained);
            will.payload.len = *len;
            will.payload.data = if w.payload.is_empty() {
                ptr::null()
            } else {
                w.payload.as_ptr().cast()
            };
            c.will = &mut will;
        }
        if self.uri_count > 0 {
            debug_assert_eq!(self.uris.len(), self.uri_ptrs.len());
            c.serverURIcount = self.uri_count;
            c.serverURIs = self.uri_ptrs.as_ptr();
        }
        #[cfg(not(feature = "ssl"))]
        let _ = tls_errors;
        #[cfg(feature = "ssl")]
        let mut ssl_raw = self.ssl.as_ref().map(|s| s.c_struct(tls_errors));
        #[cfg(feature = "ssl")]
        if let Some(s) = ssl_raw.as_mut() {
            c.ssl = s;
        }
        f(&mut c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn defaults_equal_the_initializer() {
        let o = ConnectOptions::new();
        let mut raw = o.raw().unwrap();
        raw.with(o.version(), o.timeout(), &Default::default(), |c| {
            let d = ffi::MQTTClient_connectOptions::default();
            assert_eq!(c.struct_version, d.struct_version);
            assert_eq!(c.keepAliveInterval, d.keepAliveInterval);
            assert_eq!(c.cleansession, d.cleansession);
            assert_eq!(c.reliable, d.reliable);
            // One second added on purpose (see `ConnectOptions::raw`).
            assert_eq!(c.connectTimeout, d.connectTimeout + 1);
            assert_eq!(c.retryInterval, d.retryInterval);
            assert_eq!(c.maxInflightMessages, d.maxInflightMessages);
            assert!(c.will.is_null() && c.username.is_null() && c.password.is_null());
            assert!(c.binarypwd.data.is_null());
            assert_eq!(c.serverURIcount, 0);
        });
        assert_eq!(o.inflight_limit(), 1);
        assert_eq!(ConnectOptions::new().reliable(false).inflight_limit(), 10);
        assert_eq!(
            ConnectOptions::new()
                .max_inflight_messages(50)
                .inflight_limit(),
            50
        );
    }

    #[test]
    fn everything_set() {
        let o = ConnectOptions::new()
            .keep_alive_interval(Duration::from_millis(1500))
            .clean_session(false)
            .will(
                WillOptions::new("dt/will", b"gone\0x")
                    .qos(QoS::AtLeastOnce)
                    .retained(true),
            )
            .username("user")
            .password([0u8, 1, 2])
            .connect_timeout(Duration::from_millis(10))
            .retry_interval(Duration::from_secs(3))
            .max_inflight_messages(5)
            .server_uris(&["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"])
            .mqtt_version(MqttVersion::V3_1_1);
        let mut raw = o.raw().unwrap();
        raw.with(o.version(), o.timeout(), &Default::default(), |c| {
            assert_eq!(c.keepAliveInterval, 2);
            assert_eq!(c.cleansession, 0);
            assert_eq!(c.connectTimeout, 2);
            assert_eq!(c.retryInterval, 3);
            assert_eq!(c.maxInflightMessages, 5);
            assert_eq!(c.MQTTVersion, ffi::MQTTVERSION_3_1_1);
            // SAFETY: the pointers point into `raw`, alive for this closure.
            unsafe {
                assert_eq!(CStr::from_ptr(c.username).to_str().unwrap(), "user");
                assert_eq!(
                    std::slice::from_raw_parts(c.binarypwd.data as *const u8, 3),
                    &[0, 1, 2]
                );
                let w = &*c.will;
                assert_eq!(CStr::from_ptr(w.topicName).to_str().unwrap(), "dt/will");
                assert_eq!((w.qos, w.retained, w.payload.len), (1, 1, 6));
                assert_eq!(c.serverURIcount, 2);
                assert_eq!(
                    CStr::from_ptr(*c.serverURIs.add(1)).to_str().unwrap(),
                    "tcp://127.0.0.1:2"
                );
            }
        });
    }

    #[test]
    fn bad_options_are_errors() {
        let bad = [
            ConnectOptions::new().username("a\0b"),
            ConnectOptions::new().will(WillOptions::new("a/#", "x")),
            ConnectOptions::new().will(WillOptions::new("", "x")),
            ConnectOptions::new().keep_alive_interval(Duration::from_secs(70_000)),
            ConnectOptions::new().max_inflight_messages(0),
            ConnectOptions::new().server_uris(&["tcp://a\0"]),
            ConnectOptions::new().password(vec![0u8; 70_000]),
        ];
        for o in bad {
            assert!(o.raw().is_err(), "{o:?}");
        }
    }
}
