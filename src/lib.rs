//! A thin, safe binding over the Eclipse Paho MQTT C **synchronous** client
//! (`MQTTClient.h`, `libpaho-mqtt3c`).
//!
//! The safe API mirrors the C one call for call, with the same return codes
//! ([`Error::code`]):
//!
//! | C | Rust |
//! |---|---|
//! | `MQTTClient_create` / `createWithOptions` | [`Client::create`] / [`Client::create_with_options`] |
//! | `MQTTClient_setCallbacks` | [`Client::set_callbacks`] with [`Callbacks`] |
//! | `MQTTClient_connect` | [`Client::connect`] with [`ConnectOptions`], [`WillOptions`]; failures: [`ConnectError`] |
//! | (`MQTTAsync`'s automatic reconnect) | [`ConnectOptions::automatic_reconnect`], [`Callbacks::on_connected`] |
//! | `MQTTClient_publish` / `publishMessage` | [`Client::publish`] / [`Client::publish_message`] |
//! | `MQTTClient_waitForCompletion` | [`Client::wait_for_completion`] |
//! | `MQTTClient_getPendingDeliveryTokens` | [`Client::pending_delivery_tokens`] |
//! | `MQTTClient_subscribe` / `subscribeMany` | [`Client::subscribe`] / [`Client::subscribe_many`] |
//! | `MQTTClient_unsubscribe` / `unsubscribeMany` | [`Client::unsubscribe`] / [`Client::unsubscribe_many`] |
//! | `MQTTClient_receive` | [`Client::receive`] (or [`Client::start_consuming`]) |
//! | `MQTTClient_yield` | [`yield_now`] |
//! | `MQTTClient_isConnected` | [`Client::is_connected`] |
//! | `MQTTClient_disconnect` | [`Client::disconnect`] |
//! | `MQTTClient_setCommandTimeout` | [`Client::set_command_timeout`] |
//! | `MQTTClient_destroy` | `Drop` |
//! | `MQTTClient_strerror` | [`Error`]'s `Display` |
//! | `MQTTClient_getVersionInfo` | [`version_info`] |
//! | `MQTTClient_setMaxIncomingPacketSize` (bundled build's fix 021) | [`set_max_incoming_packet_size`] |
//! | `MQTTClient_setTraceCallback` / `setTraceLevel` | [`set_trace_level`] (to the `log` crate) |
//!
//! MQTT 5, on a client created with
//! [`CreateOptions::mqtt_version`]`(`[`MqttVersion::V5`]`)`:
//!
//! | C | Rust |
//! |---|---|
//! | `MQTTClient_connect5` | [`Client::connect5`] → [`ConnectResponse5`] |
//! | `MQTTClient_publish5` / `publishMessage5` | [`Client::publish5`] / [`Client::publish_message5`] ([`Message::with_properties`]) |
//! | `MQTTClient_setPublished` | [`Callbacks::on_published`] with [`PublishAck`] |
//! | `MQTTClient_subscribe5` / `subscribeMany5` | [`Client::subscribe5`] / [`Client::subscribe_many5`] with [`SubscribeOptions`] → [`SubscribeResponse`] |
//! | `MQTTClient_unsubscribe5` / `unsubscribeMany5` | [`Client::unsubscribe5`] / [`Client::unsubscribe_many5`] → [`UnsubscribeResponse`] |
//! | `MQTTClient_disconnect5` | [`Client::disconnect5`] |
//! | `MQTTClient_setDisconnected` | [`Callbacks::on_disconnected`] |
//! | `MQTTProperties`, `MQTTProperties_add` / `get*` / `copy` / `free` | [`Properties`], [`PropertyCode`], [`PropertyValue`] |
//! | `MQTTClient_message.properties` | [`Message::properties`] |
//! | `MQTTResponse` / `MQTTResponse_free` | the response types (freed inside each call) |
//! | `MQTTReasonCodes` / `MQTTReasonCode_toString` | [`ReasonCode`] and its `Display` |
//! | `MQTTCLIENT_WRONG_MQTT_VERSION` | [`Error::WrongMqttVersion`] |
//!
//! ```no_run
//! use paho_mqtt_sync::{
//!     Client, ConnectOptions, CreateOptions, MqttVersion, Persistence, Properties,
//!     PropertyCode, QoS, ReasonCode, SubscribeOptions,
//! };
//! use std::time::Duration;
//!
//! let client = Client::create_with_options(
//!     "tcp://127.0.0.1:1883",
//!     "example5",
//!     Persistence::None,
//!     &CreateOptions::new().mqtt_version(MqttVersion::V5),
//! )?;
//! let mut session = Properties::new();
//! session.push_int(PropertyCode::SessionExpiryInterval, 60)?;
//! let connack = client.connect5(&ConnectOptions::new(), &session, &Properties::new())?;
//! println!("topic aliases allowed: {:?}", connack.topic_alias_maximum());
//! let subscribed = client.subscribe5(
//!     "demo/#",
//!     QoS::AtLeastOnce,
//!     &SubscribeOptions::new().no_local(true),
//!     &Properties::new(),
//! )?;
//! assert_eq!(subscribed.reason_codes(), [ReasonCode::GRANTED_QOS_1]);
//! let mut props = Properties::new();
//! props.push_user_property("trace-id", "42")?;
//! let token = client.publish5("demo/hello", b"hi", QoS::AtLeastOnce, false, &props)?;
//! client.wait_for_completion(token, Duration::from_secs(5))?;
//! client.disconnect5(Duration::from_secs(1), ReasonCode::NORMAL_DISCONNECTION, &Properties::new())?;
//! # Ok::<(), paho_mqtt_sync::Error>(())
//! ```
//!
//! The raw C API stays available in [`ffi`].
//!
//! ```no_run
//! use paho_mqtt_sync::{Client, ConnectOptions, Persistence, QoS};
//! use std::time::Duration;
//!
//! let client = Client::create("tcp://127.0.0.1:1883", "example", Persistence::None)?;
//! client.connect(&ConnectOptions::new().keep_alive_interval(Duration::from_secs(30)))?;
//! client.subscribe("demo/#", QoS::AtLeastOnce)?;
//! let token = client.publish("demo/hello", b"hi", QoS::AtLeastOnce, false)?;
//! client.wait_for_completion(token, Duration::from_secs(5))?;
//! if let Some((topic, msg)) = client.receive(Duration::from_secs(5))? {
//!     println!("{topic}: {:?}", msg.payload_str());
//! }
//! client.disconnect(Duration::from_secs(1))?;
//! # Ok::<(), paho_mqtt_sync::Error>(())
//! ```
//!
//! # How this differs from calling the C library directly
//!
//! * Every client runs in the library's callback mode, whatever the user set:
//!   acknowledgements complete tokens from the `deliveryComplete` callback, so
//!   [`Client::wait_for_completion`] returns as soon as the broker answers
//!   (the C function polls in 100 ms steps), and messages without a
//!   message-arrived callback wait in a queue for [`Client::receive`] (the C
//!   function fails process-wide once any client uses callbacks).
//! * Calling a client method inside a message-arrived or delivery-complete
//!   callback returns [`Error::CalledFromCallback`] instead of deadlocking;
//!   connection-lost callbacks run on their own thread and may call anything.
//! * Panics in callbacks are caught and reported by the next call.
//! * The default `bundled` build compiles Paho C 1.3.16 with fixes of ours
//!   (`paho-mqtt-c/fixes/` in the repository, listed in the README): its
//!   lifecycle races, its 100 ms sleeps around connects and disconnects, and
//!   its handling of unexpected acknowledgements are fixed at the source.
//!   Linked against a system library instead, the crate works around the
//!   lifecycle races itself: it keeps one never-connected client of its own
//!   for the life of the process, serializes connects and disconnects, and
//!   waits up to 100 ms before disconnecting right after a message arrived;
//!   [`enable_anchor_client`] trades those for a loopback connection.
//! * File persistence needs an explicit directory ([`Persistence::File`]);
//!   a store of your own is [`Persistence::User`] with a [`ClientPersistence`]
//!   ([`DirStore`] survives power cuts).
//! * The library ignores `SIGPIPE` for the whole process, as the Rust runtime
//!   already does for Rust programs.
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]
// docs.rs builds with `--cfg docsrs` on nightly: feature-gated items show
// the feature they need.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod callbacks;
mod client;
mod context;
mod cstr;
mod delivery;
mod diagnose;
mod dir_store;
mod error;
pub mod ffi;
mod idle;
mod library;
mod message;
mod options;
mod persistence;
mod properties;
mod queue;
mod reason;
mod reconnect;
mod run_thread;
mod signal;
#[cfg(feature = "ssl")]
mod ssl;
mod topic;
mod trace;
mod v5;

// Links the OpenSSL that `openssl-sys` builds (feature `vendored-openssl`):
// Paho C's SSLSocket.c calls it; no Rust code does.
#[cfg(feature = "vendored-openssl")]
use openssl_sys as _;

pub use callbacks::Callbacks;
pub use client::{Client, ConnectResponse};
pub use delivery::DeliveryToken;
pub use dir_store::DirStore;
pub use error::{ConnectError, ConnectErrorKind, ConnectReturnCode, Error, Result};
pub use library::{library_version, set_max_incoming_packet_size, version_info, yield_now};
pub use message::{Message, QoS, MAX_PAYLOAD};
pub use options::{
    ConnectOptions, CreateOptions, MqttVersion, Persistence, WillOptions, DEFAULT_RECEIVE_CAPACITY,
};
pub use persistence::{ClientPersistence, PersistenceError, PersistenceResult};
pub use properties::{
    Properties, PropertyCode, PropertyType, PropertyValue, MAX_VARIABLE_BYTE_INTEGER,
};
pub use queue::{Receiver, ReceiverIntoIter};
pub use reason::ReasonCode;
pub use run_thread::enable_anchor_client;
#[cfg(feature = "ssl")]
#[cfg_attr(docsrs, doc(cfg(feature = "ssl")))]
pub use ssl::{SslOptions, SslVersion};
pub use topic::{topic_matches, validate_filter, validate_topic, MAX_TOPIC_LEN};
pub use trace::{set_trace_level, TraceLevel, TRACE_TARGET};
pub use v5::{
    ConnectResponse5, PublishAck, PublishAckKind, RetainHandling, SubscribeOptions,
    SubscribeResponse, UnsubscribeResponse,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_safety_of_public_types() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<Client>();
        send_sync::<Message>();
        send_sync::<Error>();
        send_sync::<ConnectOptions>();
        send_sync::<DeliveryToken>();
        send_sync::<Properties>();
        send_sync::<ReasonCode>();
        send_sync::<ConnectResponse5>();
        send_sync::<PublishAck>();
        send_sync::<SubscribeResponse>();
        send_sync::<UnsubscribeResponse>();
        send::<Receiver>();
        send::<Callbacks>();
    }

    #[test]
    fn version_is_known() {
        assert!(
            super::library_version().starts_with("1.3."),
            "{:?}",
            super::version_info()
        );
        assert!(library::check_library().is_ok());
        assert!(super::version_info()
            .iter()
            .any(|(n, _)| *n == "Product name"));
    }
}
