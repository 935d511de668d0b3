//! The MQTT 5 calls of `MQTTClient.h`: `MQTTClient_connect5`, `publish5`,
//! `publishMessage5`, `subscribe5`, `subscribeMany5`, `unsubscribe5`,
//! `unsubscribeMany5` and `disconnect5`, one method each, plus the types of
//! their results. The acknowledgement and server-DISCONNECT callbacks
//! (`MQTTClient_setPublished`, `MQTTClient_setDisconnected`) are
//! [`Callbacks::on_published`](crate::Callbacks::on_published) and
//! [`Callbacks::on_disconnected`](crate::Callbacks::on_disconnected).
//!
//! An MQTT 5 client is created with
//! [`CreateOptions::mqtt_version`](crate::CreateOptions::mqtt_version)`(MqttVersion::V5)`;
//! the `*5` methods on an MQTT 3 client, and `connect`, `publish`,
//! `subscribe` and `unsubscribe` on an MQTT 5 client, are
//! [`Error::WrongMqttVersion`]. `receive`, `wait_for_completion`,
//! `disconnect` and the rest work on both.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int};
use std::time::{Duration, Instant};

use crate::client::{Client, ConnectResponse, Inner};
use crate::context::lock;
use crate::cstr::{cstring, with_cstr};
use crate::delivery::DeliveryToken;
use crate::diagnose::{diagnose, is_tls_uri};
use crate::error::{Error, Result};
use crate::ffi;
use crate::message::{check_payload_len, Message, QoS};
use crate::options::{ConnectOptions, MqttVersion};
use crate::properties::{Packet, Properties, PropertyCode};
use crate::reason::ReasonCode;
use crate::topic::{validate_filter, validate_topic};

/// An `MQTTResponse` the library returned, freed once with `MQTTResponse_free`.
struct Response(ffi::MQTTResponse);

impl Response {
    /// `reasonCode` as the C int it is: negative for a library error.
    fn rc(&self) -> i32 {
        self.0.reasonCode as i32
    }

    /// One reason code per filter (`reasonCodes`, or `reasonCode` alone).
    fn codes(&self) -> Vec<ReasonCode> {
        let n = usize::try_from(self.0.reasonCodeCount).unwrap_or(0);
        if n > 1 && !self.0.reasonCodes.is_null() {
            // SAFETY: the library allocated `reasonCodeCount` codes there.
            let codes = unsafe { std::slice::from_raw_parts(self.0.reasonCodes, n) };
            codes
                .iter()
                .map(|&c| ReasonCode::from_c(c).unwrap_or(ReasonCode::UNSPECIFIED_ERROR))
                .collect()
        } else {
            vec![ReasonCode::from_c(self.0.reasonCode).unwrap_or(ReasonCode::UNSPECIFIED_ERROR)]
        }
    }

    /// A copy of the response's properties (the original goes with the response).
    fn properties(&self) -> Properties {
        // SAFETY: NULL or a list the library allocated for this response.
        unsafe { Properties::copy_from(self.0.properties) }
    }
}

impl Drop for Response {
    fn drop(&mut self) {
        // SAFETY: the response came from the library and is freed once, here.
        unsafe { ffi::MQTTResponse_free(self.0) };
    }
}

/// What the broker said to a successful MQTT 5 connect: the CONNACK's reason
/// code and properties, with typed getters for the common ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectResponse5 {
    response: ConnectResponse,
    reason: ReasonCode,
    properties: Properties,
}

impl ConnectResponse5 {
    /// Session present, MQTT version and server URI, as for MQTT 3.
    pub fn response(&self) -> &ConnectResponse {
        &self.response
    }

    /// Whether the broker resumed a session (`returned.sessionPresent`).
    /// Always false with a system Paho C older than the bundled 1.3.16 such
    /// as Debian's 1.3.11, which reads the flag for MQTT 3.1.1 only.
    pub fn session_present(&self) -> bool {
        self.response.session_present()
    }

    /// The CONNACK reason code (0x00 on success).
    pub fn reason_code(&self) -> ReasonCode {
        self.reason
    }

    /// Every CONNACK property.
    pub fn properties(&self) -> &Properties {
        &self.properties
    }

    /// The client id the broker assigned when the client sent an empty one.
    pub fn assigned_client_identifier(&self) -> Option<&str> {
        self.properties
            .get_str(PropertyCode::AssignedClientIdentifier)
    }

    /// The keep alive the broker imposes (the library switches to it).
    pub fn server_keep_alive(&self) -> Option<Duration> {
        self.properties
            .get_int(PropertyCode::ServerKeepAlive)
            .map(|s| Duration::from_secs(s.into()))
    }

    /// The session expiry interval the broker uses, if it changed the requested one.
    pub fn session_expiry_interval(&self) -> Option<u32> {
        self.properties.get_int(PropertyCode::SessionExpiryInterval)
    }

    /// How many QoS 1/2 publishes the broker accepts in flight (65,535 when absent).
    pub fn receive_maximum(&self) -> Option<u16> {
        self.properties
            .get_int(PropertyCode::ReceiveMaximum)
            .and_then(|v| u16::try_from(v).ok())
    }

    /// The highest QoS the broker supports (2 when absent).
    pub fn maximum_qos(&self) -> Option<QoS> {
        self.properties
            .get_int(PropertyCode::MaximumQos)
            .and_then(|v| QoS::try_from(v as i32).ok())
    }

    /// Whether the broker supports retained messages (true when absent).
    pub fn retain_available(&self) -> Option<bool> {
        self.properties
            .get_int(PropertyCode::RetainAvailable)
            .map(|v| v != 0)
    }

    /// The largest packet the broker accepts.
    pub fn maximum_packet_size(&self) -> Option<u32> {
        self.properties.get_int(PropertyCode::MaximumPacketSize)
    }

    /// How many topic aliases the broker accepts from the client (0 when absent).
    pub fn topic_alias_maximum(&self) -> Option<u16> {
        self.properties
            .get_int(PropertyCode::TopicAliasMaximum)
            .and_then(|v| u16::try_from(v).ok())
    }

    /// The Reason String.
    pub fn reason_string(&self) -> Option<&str> {
        self.properties.get_str(PropertyCode::ReasonString)
    }

    /// The Response Information (answer to Request Response Information).
    pub fn response_information(&self) -> Option<&str> {
        self.properties.get_str(PropertyCode::ResponseInformation)
    }

    /// The Server Reference (another server to use).
    pub fn server_reference(&self) -> Option<&str> {
        self.properties.get_str(PropertyCode::ServerReference)
    }

    /// Whether the broker supports wildcard subscriptions (true when absent).
    pub fn wildcard_subscription_available(&self) -> Option<bool> {
        self.properties
            .get_int(PropertyCode::WildcardSubscriptionAvailable)
            .map(|v| v != 0)
    }

    /// Whether the broker supports subscription identifiers (true when absent).
    pub fn subscription_identifiers_available(&self) -> Option<bool> {
        self.properties
            .get_int(PropertyCode::SubscriptionIdentifiersAvailable)
            .map(|v| v != 0)
    }

    /// Whether the broker supports shared subscriptions (true when absent).
    pub fn shared_subscription_available(&self) -> Option<bool> {
        self.properties
            .get_int(PropertyCode::SharedSubscriptionAvailable)
            .map(|v| v != 0)
    }

    /// The user properties of the CONNACK.
    pub fn user_properties(&self) -> Vec<(&str, &str)> {
        self.properties.user_properties()
    }
}

/// Which packet acknowledged a publish (the `packet_type` of `MQTTClient_published`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublishAckKind {
    /// PUBACK: the end of a QoS 1 publish.
    Puback,
    /// PUBREC with a failure code: the end of a refused QoS 2 publish.
    Pubrec,
    /// PUBCOMP: the end of a QoS 2 publish.
    Pubcomp,
}

/// The broker's acknowledgement of an MQTT 5 publish, for
/// [`Callbacks::on_published`](crate::Callbacks::on_published).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishAck {
    token: DeliveryToken,
    kind: PublishAckKind,
    reason: ReasonCode,
    properties: Properties,
}

impl PublishAck {
    pub(crate) fn new(
        token: DeliveryToken,
        kind: PublishAckKind,
        reason: ReasonCode,
        properties: Properties,
    ) -> Self {
        PublishAck {
            token,
            kind,
            reason,
            properties,
        }
    }

    /// The token the publish returned.
    pub fn token(&self) -> DeliveryToken {
        self.token
    }

    /// The acknowledging packet.
    pub fn kind(&self) -> PublishAckKind {
        self.kind
    }

    /// Its reason code (0x00 success, 0x10 no matching subscribers, 0x87 not authorized...).
    pub fn reason_code(&self) -> ReasonCode {
        self.reason
    }

    /// Its properties (reason string, user properties).
    pub fn properties(&self) -> &Properties {
        &self.properties
    }
}

/// How the broker sends retained messages when a subscription is made
/// (MQTT 5 subscribe option "Retain Handling").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// 0: send the retained messages at every subscribe.
    #[default]
    SendAtSubscribe,
    /// 1: send them only when the subscription did not exist yet.
    SendIfNewSubscription,
    /// 2: never send them.
    DoNotSend,
}

/// MQTT 5 subscribe options (`MQTTSubscribe_options`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscribeOptions {
    no_local: bool,
    retain_as_published: bool,
    retain_handling: RetainHandling,
}

impl SubscribeOptions {
    /// `MQTTSubscribe_options_initializer`: all off, retain handling 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// `noLocal`: do not receive the messages this client publishes itself.
    /// Not allowed on a shared subscription (`$share/...`).
    pub fn no_local(mut self, on: bool) -> Self {
        self.no_local = on;
        self
    }

    /// `retainAsPublished`: keep the retain flag messages were published with
    /// (otherwise the broker clears it on forwarded messages).
    pub fn retain_as_published(mut self, on: bool) -> Self {
        self.retain_as_published = on;
        self
    }

    /// `retainHandling`.
    pub fn retain_handling(mut self, handling: RetainHandling) -> Self {
        self.retain_handling = handling;
        self
    }

    fn raw(&self) -> ffi::MQTTSubscribe_options {
        ffi::MQTTSubscribe_options {
            noLocal: u8::from(self.no_local),
            retainAsPublished: u8::from(self.retain_as_published),
            retainHandling: match self.retain_handling {
                RetainHandling::SendAtSubscribe => 0,
                RetainHandling::SendIfNewSubscription => 1,
                RetainHandling::DoNotSend => 2,
            },
            ..ffi::MQTTSubscribe_options::default()
        }
    }
}

/// The SUBACK of an MQTT 5 subscribe: one reason code per filter, in order
/// (0x00..=0x02 the granted QoS, 0x80 and above a refusal), and its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeResponse {
    reason_codes: Vec<ReasonCode>,
    properties: Properties,
}

impl SubscribeResponse {
    /// One reason code per filter.
    pub fn reason_codes(&self) -> &[ReasonCode] {
        &self.reason_codes
    }

    /// The granted QoS of each filter, `None` where the broker refused it.
    pub fn granted_qos(&self) -> Vec<Option<QoS>> {
        self.reason_codes
            .iter()
            .map(|r| QoS::try_from(i32::from(r.value())).ok())
            .collect()
    }

    /// The SUBACK's properties (reason string, user properties).
    pub fn properties(&self) -> &Properties {
        &self.properties
    }
}

/// The UNSUBACK of an MQTT 5 unsubscribe: one reason code per filter (0x00
/// success, 0x11 no subscription existed, ...), and its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubscribeResponse {
    reason_codes: Vec<ReasonCode>,
    properties: Properties,
}

impl UnsubscribeResponse {
    /// One reason code per filter.
    pub fn reason_codes(&self) -> &[ReasonCode] {
        &self.reason_codes
    }

    /// The UNSUBACK's properties.
    pub fn properties(&self) -> &Properties {
        &self.properties
    }
}

/// A topic to publish to: a valid topic name, or an empty one when the
/// properties carry a topic alias the broker already knows.
fn check_publish_topic(topic: &str, properties: &Properties) -> Result<()> {
    if topic.is_empty() && properties.contains(PropertyCode::TopicAlias) {
        return Ok(());
    }
    validate_topic(topic)
}

fn check_filters<'a>(filters: impl Iterator<Item = &'a str>) -> Result<Vec<std::ffi::CString>> {
    filters
        .map(|f| validate_filter(f).and_then(|()| cstring(f, "topic filter")))
        .collect()
}

/// What is left until `deadline`.
fn time_left(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

impl Client {
    /// Fails unless the client was created for MQTT 5 (or connected with `connect5`).
    fn require_v5(&self, call: &'static str) -> Result<()> {
        if self.inner.ctx.is_v5() {
            Ok(())
        } else {
            Err(Error::WrongMqttVersion(call))
        }
    }

    /// Connects with MQTT 5 (`MQTTClient_connect5`): `options` as for
    /// [`connect`](Client::connect) (`clean_session` is sent as MQTT 5's
    /// clean start, `cleanstart`), the CONNECT's properties (session expiry
    /// interval, receive maximum, maximum packet size, topic alias maximum,
    /// user properties...) and the will's (will delay interval, message
    /// expiry, content type, response topic, correlation data, user
    /// properties; only with a will).
    ///
    /// A refusal (a CONNACK reason code of 0x80 or above) is
    /// [`Error::ConnectionRefusedV5`]; failures before the broker answered
    /// are [`Error::Connect`] as for `connect`. The client must be created
    /// with [`CreateOptions::mqtt_version`](crate::CreateOptions::mqtt_version)`(MqttVersion::V5)`,
    /// else [`Error::WrongMqttVersion`].
    ///
    /// With [`ConnectOptions::automatic_reconnect`], a lost connection is
    /// connected again with `connect5` and these same properties (see
    /// there), and so is one the server ended with a DISCONNECT
    /// ([`Callbacks::on_disconnected`](crate::Callbacks::on_disconnected)),
    /// unless its reason is 0x8E, session taken over.
    pub fn connect5(
        &self,
        options: &ConnectOptions,
        connect_properties: &Properties,
        will_properties: &Properties,
    ) -> Result<ConnectResponse5> {
        self.enter()?;
        self.inner
            .connect5(options, connect_properties, will_properties)
    }

    /// Publishes with MQTT 5 properties (`MQTTClient_publish5`): message
    /// expiry interval, payload format indicator, content type, response
    /// topic, correlation data, topic alias, user properties. With a topic
    /// alias the broker already knows, `topic` may be empty. Returns the
    /// delivery token; the broker's acknowledgement (reason code and
    /// properties) comes through
    /// [`Callbacks::on_published`](crate::Callbacks::on_published), and
    /// [`wait_for_completion`](Client::wait_for_completion) returns once it
    /// came (whatever its reason code).
    pub fn publish5(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        retained: bool,
        properties: &Properties,
    ) -> Result<DeliveryToken> {
        self.enter()?;
        self.require_v5("publish5 needs a client created for MQTT 5")?;
        check_publish_topic(topic, properties)?;
        properties.check_for(Packet::Publish)?;
        let len = check_payload_len(payload.len())?;
        let handle = self.inner.handle;
        let props = properties.as_c_ptr();
        self.publish_raw(qos, |token| {
            with_cstr(topic, "topic", |t| {
                // SAFETY: valid handle; `t`, `payload` and the property list
                // outlive the call, which copies them.
                let resp = Response(unsafe {
                    ffi::MQTTClient_publish5(
                        handle,
                        t,
                        len,
                        payload.as_ptr().cast(),
                        qos as c_int,
                        c_int::from(retained),
                        props,
                        token,
                    )
                });
                resp.rc()
            })
        })
    }

    /// Publishes a [`Message`] with its properties
    /// ([`Message::with_properties`]) (`MQTTClient_publishMessage5`).
    pub fn publish_message5(&self, topic: &str, message: &Message) -> Result<DeliveryToken> {
        self.enter()?;
        self.require_v5("publish_message5 needs a client created for MQTT 5")?;
        check_publish_topic(topic, message.properties())?;
        message.properties().check_for(Packet::Publish)?;
        let mut raw = message.raw()?;
        let handle = self.inner.handle;
        self.publish_raw(message.qos(), |token| {
            with_cstr(topic, "topic", |t| {
                // SAFETY: valid handle; `raw` borrows the message's payload and
                // property list, alive for the call, which copies them.
                Response(unsafe { ffi::MQTTClient_publishMessage5(handle, t, &mut raw, token) })
                    .rc()
            })
        })
    }

    /// Subscribes with MQTT 5 options and properties (`MQTTClient_subscribe5`):
    /// subscription identifier, user properties. The result holds the SUBACK's
    /// reason code (a refusal is a reason code there, not an `Err`).
    pub fn subscribe5(
        &self,
        filter: &str,
        qos: QoS,
        options: &SubscribeOptions,
        properties: &Properties,
    ) -> Result<SubscribeResponse> {
        self.enter()?;
        self.require_v5("subscribe5 needs a client created for MQTT 5")?;
        self.check_subscribe(&[(filter, qos, *options)], properties)?;
        let name = cstring(filter, "topic filter")?;
        let mut opts = options.raw();
        let resp = {
            let _t = lock(&self.inner.commands);
            // SAFETY: valid handle; every pointer is valid for the call.
            Response(unsafe {
                ffi::MQTTClient_subscribe5(
                    self.inner.handle,
                    name.as_ptr(),
                    qos as c_int,
                    &mut opts,
                    properties.as_c_ptr(),
                )
            })
        };
        self.subscribe_result(resp, 1)
    }

    /// Subscribes to several filters, each with its QoS and options, in one
    /// SUBSCRIBE (`MQTTClient_subscribeMany5`); one reason code per filter.
    pub fn subscribe_many5(
        &self,
        filters: &[(&str, QoS, SubscribeOptions)],
        properties: &Properties,
    ) -> Result<SubscribeResponse> {
        self.enter()?;
        self.require_v5("subscribe_many5 needs a client created for MQTT 5")?;
        if filters.is_empty() {
            return Err(Error::InvalidArgument(
                "subscribe_many5 needs at least one filter".into(),
            ));
        }
        self.check_subscribe(filters, properties)?;
        let names = check_filters(filters.iter().map(|(f, _, _)| *f))?;
        let ptrs: Vec<*mut c_char> = names.iter().map(|n| n.as_ptr() as *mut c_char).collect();
        let mut qos: Vec<c_int> = filters.iter().map(|(_, q, _)| *q as c_int).collect();
        let mut opts: Vec<ffi::MQTTSubscribe_options> =
            filters.iter().map(|(_, _, o)| o.raw()).collect();
        let count = c_int::try_from(filters.len())
            .map_err(|_| Error::InvalidArgument("too many filters".into()))?;
        let resp = {
            let _t = lock(&self.inner.commands);
            // SAFETY: valid handle; the arrays hold `count` entries each and
            // outlive the call.
            Response(unsafe {
                ffi::MQTTClient_subscribeMany5(
                    self.inner.handle,
                    count,
                    ptrs.as_ptr(),
                    qos.as_mut_ptr(),
                    opts.as_mut_ptr(),
                    properties.as_c_ptr(),
                )
            })
        };
        self.subscribe_result(resp, filters.len())
    }

    fn check_subscribe(
        &self,
        filters: &[(&str, QoS, SubscribeOptions)],
        properties: &Properties,
    ) -> Result<()> {
        properties.check_for(Packet::Subscribe)?;
        for (f, _, o) in filters {
            validate_filter(f)?;
            if o.no_local && f.starts_with("$share/") {
                return Err(Error::InvalidArgument(format!(
                    "no_local is not allowed on the shared subscription {f:?} (MQTT 5, 3.8.3.1)"
                )));
            }
        }
        Ok(())
    }

    fn subscribe_result(&self, resp: Response, count: usize) -> Result<SubscribeResponse> {
        let rc = resp.rc();
        if rc < 0 {
            return Err(Error::from_code(rc));
        }
        let reason_codes = resp.codes();
        if reason_codes.len() != count {
            return Err(Error::Library(ffi::MQTTCLIENT_FAILURE));
        }
        Ok(SubscribeResponse {
            reason_codes,
            properties: resp.properties(),
        })
    }

    /// Unsubscribes with MQTT 5 properties (`MQTTClient_unsubscribe5`).
    pub fn unsubscribe5(
        &self,
        filter: &str,
        properties: &Properties,
    ) -> Result<UnsubscribeResponse> {
        self.enter()?;
        self.require_v5("unsubscribe5 needs a client created for MQTT 5")?;
        properties.check_for(Packet::Unsubscribe)?;
        let name = check_filters(std::iter::once(filter))?.remove(0);
        let resp = {
            let _t = lock(&self.inner.commands);
            // SAFETY: valid handle; the name and list outlive the call.
            Response(unsafe {
                ffi::MQTTClient_unsubscribe5(
                    self.inner.handle,
                    name.as_ptr(),
                    properties.as_c_ptr(),
                )
            })
        };
        self.unsubscribe_result(resp, 1)
    }

    /// Unsubscribes from several filters in one UNSUBSCRIBE
    /// (`MQTTClient_unsubscribeMany5`); one reason code per filter.
    pub fn unsubscribe_many5(
        &self,
        filters: &[&str],
        properties: &Properties,
    ) -> Result<UnsubscribeResponse> {
        self.enter()?;
        self.require_v5("unsubscribe_many5 needs a client created for MQTT 5")?;
        if filters.is_empty() {
            return Err(Error::InvalidArgument(
                "unsubscribe_many5 needs at least one filter".into(),
            ));
        }
        properties.check_for(Packet::Unsubscribe)?;
        let names = check_filters(filters.iter().copied())?;
        let ptrs: Vec<*mut c_char> = names.iter().map(|n| n.as_ptr() as *mut c_char).collect();
        let count = c_int::try_from(filters.len())
            .map_err(|_| Error::InvalidArgument("too many filters".into()))?;
        let resp = {
            let _t = lock(&self.inner.commands);
            // SAFETY: valid handle; `ptrs` holds `count` strings alive for the call.
            Response(unsafe {
                ffi::MQTTClient_unsubscribeMany5(
                    self.inner.handle,
                    count,
                    ptrs.as_ptr(),
                    properties.as_c_ptr(),
                )
            })
        };
        self.unsubscribe_result(resp, filters.len())
    }

    fn unsubscribe_result(&self, resp: Response, count: usize) -> Result<UnsubscribeResponse> {
        let rc = resp.rc();
        if rc < 0 {
            return Err(Error::from_code(rc));
        }
        let reason_codes = resp.codes();
        if reason_codes.len() != count {
            return Err(Error::Library(ffi::MQTTCLIENT_FAILURE));
        }
        Ok(UnsubscribeResponse {
            reason_codes,
            properties: resp.properties(),
        })
    }

    /// Disconnects with an MQTT 5 reason code and properties
    /// (`MQTTClient_disconnect5`): session expiry interval (to change the
    /// one given at connect, unless that was 0), reason string, user
    /// properties. `ReasonCode::DISCONNECT_WITH_WILL_MESSAGE` (0x04) asks the
    /// broker to publish the will. Otherwise as [`disconnect`](Client::disconnect).
    pub fn disconnect5(
        &self,
        timeout: Duration,
        reason: ReasonCode,
        properties: &Properties,
    ) -> Result<()> {
        self.enter()?;
        self.require_v5("disconnect5 needs a client created for MQTT 5")?;
        properties.check_for(Packet::Disconnect)?;
        self.ctx().reconnect().stop();
        let handle = self.inner.handle;
        let props = properties.as_c_ptr();
        self.inner.disconnect_with(timeout, |ms| {
            // SAFETY: valid handle; the list outlives the call, which only reads it.
            unsafe {
                ffi::MQTTClient_disconnect5(
                    handle,
                    ms,
                    ffi::MQTTReasonCodes::from(reason.value()),
                    props,
                )
            }
        })
    }
}

impl Inner {
    /// The body of [`Client::connect5`] (also used by the reconnect thread).
    pub(crate) fn connect5(
        &self,
        options: &ConnectOptions,
        connect_properties: &Properties,
        will_properties: &Properties,
    ) -> Result<ConnectResponse5> {
        if !matches!(options.version(), MqttVersion::Default | MqttVersion::V5) {
            return Err(Error::InvalidArgument(format!(
                "connect5 connects with MQTT 5, not {:?}",
                options.version()
            )));
        }
        connect_properties.check_for(Packet::Connect)?;
        will_properties.check_for(Packet::Will)?;
        if !will_properties.is_empty() && !options.has_will() {
            return Err(Error::InvalidArgument(
                "will properties without a will (ConnectOptions::will)".into(),
            ));
        }
        let inner = self;
        let ctx = &*self.ctx;
        let mut raw = options.raw()?;
        let uris: Vec<&str> = if options.uris().is_empty() {
            vec![inner.server_uri.as_str()]
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
        let handle = inner.handle;
        // One connect at a time (see `Inner::connecting`).
        let one_connect = crate::context::lock(&inner.connecting);
        // SAFETY: valid handle.
        if unsafe { ffi::MQTTClient_isConnected(handle) } != 0 {
            return Err(Error::AlreadyConnected);
        }
        let started = Instant::now();
        let deadline = started.checked_add(options.timeout());
        ctx.tls_errors().take();
        let after_refusal = ctx.take_refused();
        let cp = connect_properties.as_c_ptr();
        let wp = will_properties.as_c_ptr();
        let mut attempt = || -> Result<ConnectResponse5> {
            let timeout = time_left(deadline).unwrap_or(options.timeout());
            let _lifecycle = crate::run_thread::connecting();
            let result = raw.with(MqttVersion::V5, timeout, ctx.tls_errors(), |c| {
                // MQTT 5 has clean start instead of clean session; the library
                // refuses `cleansession` with MQTTVERSION_5.
                c.cleanstart = c.cleansession;
                c.cleansession = 0;
                // SAFETY: `c`, the property lists and everything they point to
                // live until the call returns; the library only reads them.
                let resp = Response(crate::run_thread::connect(|| unsafe {
                    ffi::MQTTClient_connect5(handle, c, cp, wp)
                }));
                let rc = resp.rc();
                if rc == ffi::MQTTCLIENT_SUCCESS {
                    let uri = if c.returned.serverURI.is_null() {
                        String::new()
                    } else {
                        // SAFETY: on success the library points this at a URI
                        // string that lives at least until the next connect.
                        unsafe { CStr::from_ptr(c.returned.serverURI) }
                            .to_string_lossy()
                            .into_owned()
                    };
                    Ok(ConnectResponse5 {
                        response: ConnectResponse::new(
                            c.returned.sessionPresent != 0,
                            MqttVersion::V5,
                            uri,
                        ),
                        reason: ReasonCode::SUCCESS,
                        properties: resp.properties(),
                    })
                } else if (1..=255).contains(&rc) {
                    let properties = resp.properties();
                    Err(Error::ConnectionRefusedV5 {
                        reason: ReasonCode::new(rc as u8),
                        reason_string: properties
                            .get_str(PropertyCode::ReasonString)
                            .map(str::to_owned),
                    })
                } else {
                    Err(Error::from_code(rc))
                }
            });
            match result {
                Err(Error::Library(ffi::MQTTCLIENT_FAILURE)) => Err(Error::Connect(diagnose(
                    &uris,
                    &ctx.tls_errors().take(),
                    started.elapsed(),
                    options.timeout(),
                ))),
                other => other,
            }
        };
        let mut result = attempt();
        // After a refusal the library may report a stale CONNACK signal once
        // (see Inner::connect_version).
        if after_refusal
            && matches!(result, Err(Error::Connect(_)))
            && time_left(deadline).is_none_or(|l| l >= Duration::from_secs(1))
        {
            result = attempt();
        }
        if matches!(result, Err(Error::ConnectionRefusedV5 { .. })) {
            ctx.set_refused();
        }
        let response = result?;
        crate::run_thread::connected();
        ctx.set_v5();
        // The library lowers its in-flight limit to the broker's Receive
        // Maximum (MQTTClient_connectAll); keep the crate's window the same.
        let inflight = options
            .inflight_limit()
            .min(response.receive_maximum().map_or(usize::MAX, usize::from));
        ctx.set_connected(options.is_clean_session(), inflight, || {
            // SAFETY: valid handle.
            unsafe { ffi::MQTTClient_isConnected(handle) != 0 }
        });
        ctx.reconnect()
            .connected5(options, connect_properties, will_properties);
        drop(one_connect);
        ctx.slots().run_connected(&response.response);
        Ok(response)
    }
}
