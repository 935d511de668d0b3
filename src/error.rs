//! Errors: the C library's return codes and the checks made on the Rust side.

use std::ffi::CStr;
use std::fmt;
use std::sync::Arc;

use crate::ffi;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a call.
///
/// [`Error::code`] gives the number a C program would have seen from the same
/// call: the negative `MQTTCLIENT_*` codes, 1..=5 for a CONNACK refusal, `0x80`
/// for a refused subscription. Errors found on the Rust side before anything is
/// sent have the closest C code, or `MQTTCLIENT_FAILURE` (-1) where the C library
/// has none (see each variant).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A failure code returned by a `MQTTClient_*` function (see [`Error::code`]);
    /// its text is `MQTTClient_strerror`'s.
    Library(i32),
    /// The client is not connected (`MQTTCLIENT_DISCONNECTED`, -3).
    Disconnected,
    /// The broker refused the connection with this CONNACK return code
    /// (`MQTTClient_connect` returned 1..=255).
    ConnectionRefused(ConnectReturnCode),
    /// The connect failed before the broker answered: the network, TLS or the
    /// protocol (`MQTTClient_connect` returned -1, `MQTTCLIENT_FAILURE`, which
    /// `code()` still is). [`ConnectError::kind`] says what happened.
    Connect(ConnectError),
    /// A connect while the client is already connected: the library would
    /// open a second connection and lose the first one's socket, so the
    /// crate refuses. `code()` -1.
    AlreadyConnected,
    /// QoS 1/2 messages were not acknowledged when the client disconnected
    /// (or was told to wait for them). With a persistent session
    /// (`clean_session(false)`) the library keeps them and sends them again
    /// when the session resumes (`will_resend`); with a clean session they
    /// are gone. `code()` is `MQTTCLIENT_DISCONNECTED` (-3).
    Unacknowledged {
        /// The delivery tokens of the messages concerned.
        tokens: Vec<crate::DeliveryToken>,
        /// The next connect of the same session sends them again.
        will_resend: bool,
    },
    /// The broker refused the subscription to these filters (SUBACK return code
    /// `0x80`; `code()` is 0x80). In `subscribe_many`, the other filters of the same
    /// call were granted and stay subscribed.
    SubscriptionRefused(Vec<String>),
    /// The operation did not finish in time. `code()` is -1, the value
    /// `MQTTClient_waitForCompletion` reports for a timeout.
    Timeout,
    /// A string argument holds a NUL byte, which C strings cannot carry. `code()` -1.
    NulByte(&'static str),
    /// A topic name is not valid for publishing (empty, wildcard, too long). `code()` -1.
    InvalidTopic {
        /// The rejected topic.
        topic: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A topic filter is malformed (`a/#/b`, `a+/b`, empty, too long). `code()` -1.
    InvalidFilter {
        /// The rejected filter.
        filter: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The payload is longer than MQTT allows (268,435,455 bytes). `code()` -1.
    PayloadTooLarge(usize),
    /// An integer that is not a QoS (0, 1, 2). `code()` is `MQTTCLIENT_BAD_QOS` (-9).
    InvalidQos(i32),
    /// An option value outside what the C library or MQTT accepts. `code()` -1.
    InvalidArgument(String),
    /// A client method was called from inside one of the library's callbacks
    /// (message arrived, delivery complete), where it would deadlock the
    /// library's callback thread. Hand the work to another thread, for example
    /// through [`Client::start_consuming`](crate::Client::start_consuming). `code()` -1.
    CalledFromCallback,
    /// `receive` was called on a client whose messages go to a message-arrived
    /// callback. `code()` -1.
    CallbacksSet,
    /// A callback of this client panicked since the last call; the panic was
    /// caught on the library's thread and is reported once, here. `code()` -1.
    CallbackPanicked(String),
    /// The store cannot be used (`MQTTCLIENT_PERSISTENCE_ERROR`, -2): the file
    /// persistence directory is unusable, or a user store's `open`, `keys` or
    /// `get` failed or panicked while the client was created (the text names
    /// the method and its error).
    Persistence(String),
    /// A payload is not UTF-8 (`payload_str`). `code()` is
    /// `MQTTCLIENT_BAD_UTF8_STRING` (-5).
    Utf8(std::str::Utf8Error),
    /// The linked Paho C library is a release these bindings do not fit. `code()` -1.
    IncompatibleLibrary {
        /// The version the library reports (`MQTTClient_getVersionInfo`).
        found: String,
        /// The version the bindings were generated from.
        expected: &'static str,
    },
    /// The MQTT 5 broker refused the connection: the CONNACK's reason code
    /// (0x80 and above) and, when the library passes it on, the broker's
    /// reason string. `code()` is the reason code, as `MQTTClient_connect5`
    /// returns it in `reasonCode`.
    ConnectionRefusedV5 {
        /// The CONNACK reason code (0x86 for a bad user name or password...).
        reason: crate::ReasonCode,
        /// The CONNACK's Reason String property, if any.
        reason_string: Option<String>,
    },
    /// An MQTT 5 property that cannot be sent: wrong value type, value out of
    /// range, too long, repeated, or not allowed in that packet. Found before
    /// anything is sent. `code()` -1.
    InvalidProperty {
        /// The property.
        property: crate::PropertyCode,
        /// What is wrong.
        reason: String,
    },
    /// An MQTT 5 call (`*5`) on a client created for MQTT 3, or an MQTT 3
    /// call the library forbids on an MQTT 5 client (connect, publish,
    /// subscribe, unsubscribe) (`MQTTCLIENT_WRONG_MQTT_VERSION`, -16).
    WrongMqttVersion(&'static str),
}

impl Error {
    /// The C return code this error stands for (see the variants).
    pub fn code(&self) -> i32 {
        match self {
            Error::Library(code) => *code,
            Error::Disconnected => ffi::MQTTCLIENT_DISCONNECTED,
            Error::ConnectionRefused(rc) => i32::from(rc.code()),
            Error::Unacknowledged { .. } => ffi::MQTTCLIENT_DISCONNECTED,
            Error::SubscriptionRefused(_) => ffi::MQTT_BAD_SUBSCRIBE,
            Error::InvalidQos(_) => ffi::MQTTCLIENT_BAD_QOS,
            Error::Persistence(_) => ffi::MQTTCLIENT_PERSISTENCE_ERROR,
            Error::Utf8(_) => ffi::MQTTCLIENT_BAD_UTF8_STRING,
            Error::ConnectionRefusedV5 { reason, .. } => i32::from(reason.value()),
            Error::WrongMqttVersion(_) => ffi::MQTTCLIENT_WRONG_MQTT_VERSION,
            Error::InvalidProperty { .. } => ffi::MQTTCLIENT_FAILURE,
            Error::Timeout
            | Error::Connect(_)
            | Error::AlreadyConnected
            | Error::NulByte(_)
            | Error::InvalidTopic { .. }
            | Error::InvalidFilter { .. }
            | Error::PayloadTooLarge(_)
            | Error::InvalidArgument(_)
            | Error::CalledFromCallback
            | Error::CallbacksSet
            | Error::CallbackPanicked(_)
            | Error::IncompatibleLibrary { .. } => ffi::MQTTCLIENT_FAILURE,
        }
    }

    /// Turns a C return code into an error: positive codes are CONNACK refusals,
    /// `MQTTCLIENT_DISCONNECTED` is [`Error::Disconnected`], the rest [`Error::Library`].
    pub(crate) fn from_code(code: i32) -> Error {
        match code {
            ffi::MQTTCLIENT_DISCONNECTED => Error::Disconnected,
            ffi::MQTTCLIENT_PERSISTENCE_ERROR => {
                Error::Persistence("the C library reported a persistence error".into())
            }
            ffi::MQTTCLIENT_WRONG_MQTT_VERSION => Error::WrongMqttVersion(
                "this call is for the other MQTT version: MQTT 5 clients use the *5 methods \
                 (connect5, publish5, subscribe5, unsubscribe5), MQTT 3 clients the others",
            ),
            1..=255 => Error::ConnectionRefused(ConnectReturnCode::from_u8(code as u8)),
            _ => Error::Library(code),
        }
    }
}

/// Turns a `MQTTClient_*` return code into a `Result` (`MQTTCLIENT_SUCCESS` is `Ok`).
pub(crate) fn check(rc: i32) -> Result<()> {
    if rc == ffi::MQTTCLIENT_SUCCESS {
        Ok(())
    } else {
        Err(Error::from_code(rc))
    }
}

/// The text `MQTTClient_strerror` gives for a code. Only the codes the C
/// function knows are passed to it: for others it formats into a static buffer
/// shared by all threads, so those are formatted here.
pub(crate) fn library_text(code: i32) -> String {
    const KNOWN: &[i32] = &[
        ffi::MQTTCLIENT_SUCCESS,
        ffi::MQTTCLIENT_FAILURE,
        ffi::MQTTCLIENT_DISCONNECTED,
        ffi::MQTTCLIENT_MAX_MESSAGES_INFLIGHT,
        ffi::MQTTCLIENT_BAD_UTF8_STRING,
        ffi::MQTTCLIENT_NULL_PARAMETER,
        ffi::MQTTCLIENT_TOPICNAME_TRUNCATED,
        ffi::MQTTCLIENT_BAD_STRUCTURE,
        ffi::MQTTCLIENT_BAD_QOS,
        ffi::MQTTCLIENT_SSL_NOT_SUPPORTED,
        ffi::MQTTCLIENT_BAD_MQTT_VERSION,
        ffi::MQTTCLIENT_BAD_PROTOCOL,
        ffi::MQTTCLIENT_BAD_MQTT_OPTION,
        ffi::MQTTCLIENT_WRONG_MQTT_VERSION,
        ffi::MQTTCLIENT_0_LEN_WILL_TOPIC,
    ];
    if KNOWN.contains(&code) {
        // SAFETY: for these codes MQTTClient_strerror returns a pointer to a
        // string literal (a `switch` over constants), valid for the whole program.
        let text = unsafe { CStr::from_ptr(ffi::MQTTClient_strerror(code)) };
        text.to_string_lossy().into_owned()
    } else if code == ffi::MQTTCLIENT_PERSISTENCE_ERROR {
        "Persistence error".to_owned()
    } else if code == -99 {
        // PAHO_MEMORY_ERROR (Heap.h), not in the public headers.
        "Out of memory".to_owned()
    } else {
        format!("Unknown error code {code}")
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Library(code) => write!(f, "{} (Paho C code {code})", library_text(*code)),
            Error::Disconnected => f.write_str("Disconnected: the client is not connected"),
            Error::ConnectionRefused(rc) => write!(f, "connection refused by the broker: {rc}"),
            Error::Connect(e) => e.fmt(f),
            Error::AlreadyConnected => {
                f.write_str("the client is already connected (disconnect it first)")
            }
            Error::Unacknowledged {
                tokens,
                will_resend: true,
            } => write!(
                f,
                "{} QoS 1/2 message(s) not acknowledged yet; the session keeps them and sends \
                 them again when it resumes",
                tokens.len()
            ),
            Error::Unacknowledged {
                tokens,
                will_resend: false,
            } => write!(
                f,
                "{} QoS 1/2 message(s) not acknowledged and lost with the clean session",
                tokens.len()
            ),
            Error::SubscriptionRefused(filters) => {
                write!(f, "the broker refused the subscription to {filters:?}")
            }
            Error::Timeout => f.write_str("timed out"),
            Error::NulByte(what) => write!(f, "{what} contains a NUL byte"),
            Error::InvalidTopic { topic, reason } => write!(f, "invalid topic {topic:?}: {reason}"),
            Error::InvalidFilter { filter, reason } => {
                write!(f, "invalid topic filter {filter:?}: {reason}")
            }
            Error::PayloadTooLarge(len) => write!(
                f,
                "payload of {len} bytes is larger than MQTT's limit of {} bytes",
                crate::message::MAX_PAYLOAD
            ),
            Error::InvalidQos(q) => write!(f, "{q} is not a QoS (0, 1 or 2)"),
            Error::InvalidArgument(msg) => f.write_str(msg),
            Error::CalledFromCallback => f.write_str(
                "client method called from inside a Paho callback, where it would deadlock; \
                 do the work on another thread (see Client::start_consuming)",
            ),
            Error::CallbacksSet => f.write_str(
                "receive() on a client whose messages go to its message-arrived callback",
            ),
            Error::CallbackPanicked(msg) => write!(f, "a callback panicked: {msg}"),
            Error::Persistence(msg) => write!(f, "persistence error: {msg}"),
            // The UTF-8 error's own text is its `source()`: printing it here
            // too would show it twice in an error chain.
            Error::Utf8(_) => f.write_str("payload is not UTF-8"),
            Error::IncompatibleLibrary { found, expected } => write!(
                f,
                "linked Paho C library is version {found}, the bindings are for {expected}"
            ),
            Error::ConnectionRefusedV5 {
                reason,
                reason_string: Some(text),
            } => write!(f, "connection refused by the broker: {reason}: {text}"),
            Error::ConnectionRefusedV5 { reason, .. } => {
                write!(f, "connection refused by the broker: {reason}")
            }
            Error::InvalidProperty { property, reason } => {
                write!(f, "property {property:?}: {reason}")
            }
            Error::WrongMqttVersion(msg) => write!(f, "wrong MQTT version: {msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Utf8(e) => Some(e),
            Error::Connect(e) => e.io.as_deref().map(|e| e as _),
            _ => None,
        }
    }
}

impl From<std::str::Utf8Error> for Error {
    fn from(e: std::str::Utf8Error) -> Self {
        Error::Utf8(e)
    }
}

/// What made a connect fail before the broker answered (see
/// [`Error::Connect`]).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectErrorKind {
    /// The host name did not resolve to an address.
    HostNotResolved,
    /// Nothing listens on that port (TCP connection refused).
    ConnectionRefused,
    /// Another network failure (unreachable, TCP connect timed out...).
    Network,
    /// The TCP connection was made, but no CONNACK came within the connect
    /// timeout.
    Timeout,
    /// The server's certificate did not verify (OpenSSL's reason in the message).
    TlsCertificate,
    /// The server's certificate is not for the host name connected to.
    TlsHostName,
    /// Another TLS handshake failure (OpenSSL's reason in the message).
    TlsHandshake,
    /// The server closed the connection without a CONNACK: it does not
    /// speak this MQTT version, or not MQTT over this transport (a TLS port
    /// reached with `tcp://`, say).
    ProtocolRejected,
}

/// A connect that failed before the broker answered: what happened
/// ([`ConnectError::kind`]), in words, with the socket error as
/// [`source`](std::error::Error::source) where there is one.
///
/// The C library says only -1 for all of these. The crate learns the reason
/// from OpenSSL's error texts (the library's per-connection `ssl_error_cb`)
/// and, after the failure, by resolving the host and opening a plain TCP
/// connection to it once itself (closed at once, nothing sent).
#[derive(Debug, Clone)]
pub struct ConnectError {
    pub(crate) kind: ConnectErrorKind,
    pub(crate) uri: String,
    pub(crate) message: String,
    pub(crate) io: Option<Arc<std::io::Error>>,
}

impl ConnectError {
    /// What happened.
    pub fn kind(&self) -> ConnectErrorKind {
        self.kind
    }

    /// The server URI whose connect failed (the last one tried).
    pub fn uri(&self) -> &str {
        &self.uri
    }
}

impl PartialEq for ConnectError {
    fn eq(&self, other: &Self) -> bool {
        (self.kind, &self.uri, &self.message) == (other.kind, &other.uri, &other.message)
    }
}

impl Eq for ConnectError {}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot connect to {}: {}", self.uri, self.message)
    }
}

/// The return code of a CONNACK that refuses a connection (MQTT 3.1.1, 3.2.2.3).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectReturnCode {
    /// 1: the broker does not support the requested protocol level.
    UnacceptableProtocolVersion,
    /// 2: the client identifier is not allowed (for example empty with a
    /// persistent session).
    IdentifierRejected,
    /// 3: the MQTT service is unavailable.
    ServerUnavailable,
    /// 4: malformed user name or password.
    BadUserNameOrPassword,
    /// 5: the client is not authorized to connect (Mosquitto 2 also sends this
    /// for a wrong password).
    NotAuthorized,
    /// 6..=255: reserved by MQTT 3.1.1.
    Reserved(u8),
}

impl ConnectReturnCode {
    /// The code as sent in the CONNACK and returned by `MQTTClient_connect`.
    pub fn code(self) -> u8 {
        match self {
            ConnectReturnCode::UnacceptableProtocolVersion => 1,
            ConnectReturnCode::IdentifierRejected => 2,
            ConnectReturnCode::ServerUnavailable => 3,
            ConnectReturnCode::BadUserNameOrPassword => 4,
            ConnectReturnCode::NotAuthorized => 5,
            ConnectReturnCode::Reserved(c) => c,
        }
    }

    /// The variant for a CONNACK code (0 is not a refusal and maps to `Reserved(0)`).
    pub fn from_u8(code: u8) -> Self {
        match code {
            1 => ConnectReturnCode::UnacceptableProtocolVersion,
            2 => ConnectReturnCode::IdentifierRejected,
            3 => ConnectReturnCode::ServerUnavailable,
            4 => ConnectReturnCode::BadUserNameOrPassword,
            5 => ConnectReturnCode::NotAuthorized,
            other => ConnectReturnCode::Reserved(other),
        }
    }
}

impl fmt::Display for ConnectReturnCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ConnectReturnCode::UnacceptableProtocolVersion => "unacceptable protocol version",
            ConnectReturnCode::IdentifierRejected => "identifier rejected",
            ConnectReturnCode::ServerUnavailable => "server unavailable",
            ConnectReturnCode::BadUserNameOrPassword => "bad user name or password",
            ConnectReturnCode::NotAuthorized => "not authorized",
            ConnectReturnCode::Reserved(_) => "reserved return code",
        };
        write!(f, "{text} (CONNACK code {})", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        assert_eq!(
            Error::from_code(5),
            Error::ConnectionRefused(ConnectReturnCode::NotAuthorized)
        );
        assert_eq!(Error::from_code(5).code(), 5);
        assert_eq!(Error::from_code(2).code(), 2);
        assert_eq!(Error::from_code(-3), Error::Disconnected);
        assert_eq!(Error::from_code(-3).code(), -3);
        assert_eq!(Error::from_code(-14), Error::Library(-14));
        assert_eq!(Error::from_code(-14).code(), -14);
        assert_eq!(Error::SubscriptionRefused(vec![]).code(), 0x80);
        assert_eq!(Error::Timeout.code(), -1);
        assert_eq!(Error::InvalidQos(7).code(), -9);
        assert!(check(0).is_ok());
    }

    #[test]
    fn texts_come_from_the_library() {
        assert_eq!(library_text(-3), "Disconnected");
        assert_eq!(library_text(-14), "Invalid protocol scheme");
        assert_eq!(library_text(-42), "Unknown error code -42");
        assert_eq!(
            Error::Library(-9).to_string(),
            "Invalid QoS value (Paho C code -9)"
        );
        assert_eq!(
            Error::from_code(5).to_string(),
            "connection refused by the broker: not authorized (CONNACK code 5)"
        );
    }

    #[test]
    fn utf8_text_shows_once_in_an_error_chain() {
        let bytes = vec![b'a', 0xff, b'b'];
        let inner = std::str::from_utf8(&bytes).unwrap_err();
        let e = Error::from(inner);
        assert_eq!(e.to_string(), "payload is not UTF-8");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source, Some(inner.to_string()));
        // What error reporters print: each link of the chain once.
        let mut chain = vec![e.to_string()];
        let mut next = std::error::Error::source(&e);
        while let Some(s) = next {
            chain.push(s.to_string());
            next = s.source();
        }
        let text = chain.join(": ");
        assert_eq!(text.matches(&inner.to_string()).count(), 1, "{text}");
    }
}
