//! MQTT 5 against a real Mosquitto (2.0.x speaks MQTT 5): CONNACK properties
//! and assigned client ids, user properties, request/response, no local,
//! retain as published, retain handling, subscription identifiers, shared
//! subscriptions, session and message expiry, session takeover through the
//! disconnected callback, acknowledgement reason codes, refused connects,
//! topic aliases, will delay, maximum packet size, and bad input. (Issue 9.)

mod common;

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Broker, Proxy, WAIT};
use paho_mqtt_sync::{
    Callbacks, Client, ConnectOptions, ConnectResponse5, CreateOptions, Error, Message,
    MqttVersion, Persistence, Properties, PropertyCode as P, PropertyValue, PublishAckKind, QoS,
    ReasonCode, RetainHandling, SubscribeOptions, WillOptions,
};

const NONE: &Properties = &Properties::new();

/// Creates an MQTT 5 client with `id`.
fn create5_id(uri: &str, id: &str) -> anyhow::Result<Client> {
    common::library_setup();
    Ok(Client::create_with_options(
        uri,
        id,
        Persistence::None,
        &CreateOptions::new().mqtt_version(MqttVersion::V5),
    )?)
}

/// Creates an MQTT 5 client with a fresh id.
fn create5(uri: &str, tag: &str) -> anyhow::Result<Client> {
    create5_id(uri, &common::client_id(tag))
}

/// Creates and connects an MQTT 5 client with the test options.
fn connect5(uri: &str, tag: &str) -> anyhow::Result<Client> {
    let c = create5(uri, tag)?;
    c.connect5(&common::options(), NONE, NONE)?;
    Ok(c)
}

/// Whether the linked Paho C reports the CONNACK's session present flag
/// with MQTT 5: older releases (Debian's 1.3.11) read it for MQTT 3.1.1
/// only and always say false; the bundled 1.3.16 reads it.
fn reports_session_present() -> bool {
    let v: Vec<u32> = paho_mqtt_sync::library_version()
        .split('.')
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    v >= vec![1, 3, 16]
}

/// Asserts `session_present()` where the library reports it.
fn expect_session(r: &ConnectResponse5, present: bool) {
    if reports_session_present() {
        assert_eq!(r.session_present(), present, "{r:?}");
    }
}

fn props(f: impl FnOnce(&mut Properties) -> paho_mqtt_sync::Result<()>) -> Properties {
    let mut p = Properties::new();
    f(&mut p).expect("valid properties");
    p
}

fn sub(c: &Client, filter: &str, opts: SubscribeOptions) -> anyhow::Result<()> {
    let r = c.subscribe5(filter, QoS::AtLeastOnce, &opts, NONE)?;
    anyhow::ensure!(
        r.reason_codes() == [ReasonCode::GRANTED_QOS_1],
        "subscribe {filter}: {r:?}"
    );
    Ok(())
}

/// Every message `client` gets before a marker that `publisher` sends after
/// everything else (see common::until_marker; MQTT 5 flavour).
fn until_marker5(client: &Client, publisher: &Client) -> anyhow::Result<Vec<(String, Message)>> {
    let marker = format!("{}/marker", common::topic("m"));
    sub(client, &marker, SubscribeOptions::new())?;
    let tok = publisher.publish5(&marker, b"marker", QoS::AtLeastOnce, false, NONE)?;
    publisher.wait_for_completion(tok, WAIT)?;
    let mut before = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.receive(left)? {
            Some((t, _)) if t == marker => break,
            Some(m) => before.push(m),
            None => anyhow::bail!("marker {marker} never arrived"),
        }
    }
    Ok(before)
}

#[test]
fn connack_properties_and_assigned_client_id() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = create5_id(&broker.uri(), "")?;
    let cp = props(|p| {
        p.push_int(P::SessionExpiryInterval, 30)?;
        p.push_int(P::ReceiveMaximum, 5)?;
        p.push_int(P::TopicAliasMaximum, 3)?;
        p.push_user_property("who", "test")?;
        Ok(())
    });
    let r: ConnectResponse5 = c.connect5(&common::options(), &cp, NONE)?;
    assert_eq!(r.reason_code(), ReasonCode::SUCCESS);
    assert_eq!(r.response().mqtt_version(), MqttVersion::V5);
    assert!(!r.session_present());
    let assigned = r.assigned_client_identifier().expect("assigned id");
    assert!(!assigned.is_empty(), "{r:?}");
    // Mosquitto's defaults: 10 topic aliases.
    assert_eq!(r.topic_alias_maximum(), Some(10), "{r:?}");
    assert!(c.is_connected());
    c.disconnect(Duration::from_secs(1))?;
    Ok(())
}

#[test]
fn user_properties_round_trip_through_receive_and_callback() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let rx = connect5(&broker.uri(), "rx")?;
    let cb = create5(&broker.uri(), "cb")?;
    let (tx, got) = mpsc::channel();
    cb.set_callbacks(Callbacks::new().on_message_arrived(move |t, m| {
        let _ = tx.send((t.to_owned(), m.clone()));
        true
    }))?;
    cb.connect5(&common::options(), NONE, NONE)?;
    let publisher = connect5(&broker.uri(), "pub")?;
    let topic = common::topic("up");
    sub(&rx, &topic, SubscribeOptions::new())?;
    sub(&cb, &topic, SubscribeOptions::new())?;
    let sent = props(|p| {
        p.push_user_property("a", "1")?;
        p.push_user_property("a", "2")?;
        p.push_user_property("ünï", "cödé")?;
        p.push_str(P::ContentType, "text/plain")?;
        p.push_int(P::PayloadFormatIndicator, 1)?;
        Ok(())
    });
    let msg = Message::new("hello", QoS::AtLeastOnce, false).with_properties(sent.clone());
    let tok = publisher.publish_message5(&topic, &msg)?;
    publisher.wait_for_completion(tok, WAIT)?;
    let (t, m) = common::recv(&rx, WAIT)?;
    assert_eq!(t, topic);
    assert_eq!(m.payload(), b"hello");
    let p = m.properties();
    assert_eq!(
        p.user_properties(),
        vec![("a", "1"), ("a", "2"), ("ünï", "cödé")]
    );
    assert_eq!(p.get_str(P::ContentType), Some("text/plain"));
    assert_eq!(
        p.get(P::PayloadFormatIndicator),
        Some(PropertyValue::Byte(1))
    );
    let (t2, m2) = got.recv_timeout(WAIT)?;
    assert_eq!(t2, topic);
    assert_eq!(m2.properties().user_properties(), p.user_properties());
    assert_eq!(m2.properties().get_str(P::ContentType), Some("text/plain"));
    Ok(())
}

#[test]
fn properties_survive_a_message_handed_back_for_redelivery() -> anyhow::Result<()> {
    // A callback returning false leaves the message with the library, which
    // delivers it again: its properties go back into the C message too
    // (and are freed once, with it, in the end).
    let broker = Broker::new()?;
    let c = create5(&broker.uri(), "again")?;
    let (tx, got) = mpsc::channel();
    let mut calls = 0;
    c.set_callbacks(Callbacks::new().on_message_arrived(move |_, m| {
        calls += 1;
        let _ = tx.send((
            calls,
            m.properties().user_properties().len(),
            m.properties().clone(),
        ));
        calls >= 2
    }))?;
    c.connect5(&common::options(), NONE, NONE)?;
    let topic = common::topic("again");
    sub(&c, &topic, SubscribeOptions::new())?;
    let p = props(|p| {
        p.push_user_property("k", "v")?;
        p.push_binary(P::CorrelationData, b"id")?;
        Ok(())
    });
    c.publish5(&topic, b"x", QoS::AtLeastOnce, false, &p)?;
    let (n1, u1, p1) = got.recv_timeout(WAIT)?;
    let (n2, u2, p2) = got.recv_timeout(WAIT)?;
    assert_eq!((n1, u1, n2, u2), (1, 1, 2, 1));
    assert_eq!(p1, p2);
    assert_eq!(p2.get_binary(P::CorrelationData), Some(&b"id"[..]));
    Ok(())
}

#[test]
fn request_response_with_response_topic_and_correlation_data() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let base = common::topic("rpc");
    let (req_topic, reply_topic) = (format!("{base}/req"), format!("{base}/reply"));
    let server = connect5(&broker.uri(), "server")?;
    sub(&server, &req_topic, SubscribeOptions::new())?;
    let requests = server.start_consuming();
    let server = std::sync::Arc::new(server);
    let s2 = server.clone();
    let responder = std::thread::spawn(move || -> anyhow::Result<()> {
        let (_, req) = requests.recv_timeout(WAIT)?;
        let p = req.properties();
        let to = p
            .get_str(P::ResponseTopic)
            .expect("response topic")
            .to_owned();
        let corr = p
            .get_binary(P::CorrelationData)
            .expect("correlation")
            .to_vec();
        let answer = format!("{} squared", req.payload_str()?);
        let reply = props(|r| {
            r.push_binary(P::CorrelationData, &corr)?;
            Ok(())
        });
        let tok = s2.publish5(&to, answer.as_bytes(), QoS::AtLeastOnce, false, &reply)?;
        s2.wait_for_completion(tok, WAIT)?;
        Ok(())
    });
    let client = connect5(&broker.uri(), "client")?;
    sub(&client, &reply_topic, SubscribeOptions::new())?;
    let request = props(|p| {
        p.push_str(P::ResponseTopic, &reply_topic)?;
        p.push_binary(P::CorrelationData, b"\x00req-1\xff")?;
        Ok(())
    });
    client.publish5(&req_topic, b"7", QoS::AtLeastOnce, false, &request)?;
    let (t, m) = common::recv(&client, WAIT)?;
    responder.join().expect("responder")?;
    assert_eq!(t, reply_topic);
    assert_eq!(m.payload_str()?, "7 squared");
    assert_eq!(
        m.properties().get_binary(P::CorrelationData),
        Some(&b"\x00req-1\xff"[..])
    );
    Ok(())
}

#[test]
fn no_local_drops_own_messages_only() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let me = connect5(&broker.uri(), "me")?;
    let other = connect5(&broker.uri(), "other")?;
    let topic = common::topic("nl");
    sub(&me, &topic, SubscribeOptions::new().no_local(true))?;
    me.publish5(&topic, b"mine", QoS::AtLeastOnce, false, NONE)?;
    other.publish5(&topic, b"theirs", QoS::AtLeastOnce, false, NONE)?;
    let got = until_marker5(&me, &other)?;
    let payloads: Vec<_> = got.iter().map(|(_, m)| m.payload().to_vec()).collect();
    assert_eq!(payloads, vec![b"theirs".to_vec()]);
    Ok(())
}

#[test]
fn retain_as_published_keeps_the_flag() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let keep = connect5(&broker.uri(), "keep")?;
    let plain = connect5(&broker.uri(), "plain")?;
    let publisher = connect5(&broker.uri(), "pub")?;
    let topic = common::topic("rap");
    sub(
        &keep,
        &topic,
        SubscribeOptions::new().retain_as_published(true),
    )?;
    sub(&plain, &topic, SubscribeOptions::new())?;
    let tok = publisher.publish5(&topic, b"r", QoS::AtLeastOnce, true, NONE)?;
    publisher.wait_for_completion(tok, WAIT)?;
    let (_, k) = common::recv(&keep, WAIT)?;
    let (_, p) = common::recv(&plain, WAIT)?;
    assert!(k.retained(), "retain as published: flag kept");
    assert!(!p.retained(), "default: flag cleared on a live message");
    // Clear the retained message.
    publisher.publish5(&topic, b"", QoS::AtLeastOnce, true, NONE)?;
    Ok(())
}

#[test]
fn retain_handling_1_and_2() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let publisher = connect5(&broker.uri(), "pub")?;
    let topic = common::topic("rh");
    let tok = publisher.publish5(&topic, b"kept", QoS::AtLeastOnce, true, NONE)?;
    publisher.wait_for_completion(tok, WAIT)?;

    let c = connect5(&broker.uri(), "rh1")?;
    let rh1 = SubscribeOptions::new().retain_handling(RetainHandling::SendIfNewSubscription);
    sub(&c, &topic, rh1)?;
    let first = until_marker5(&c, &publisher)?;
    assert_eq!(first.len(), 1, "new subscription gets the retained message");
    assert!(first[0].1.retained());
    sub(&c, &topic, rh1)?;
    assert!(
        until_marker5(&c, &publisher)?.is_empty(),
        "existing subscription: not again"
    );
    // Retain handling 0 sends it at every subscribe.
    sub(&c, &topic, SubscribeOptions::new())?;
    assert_eq!(until_marker5(&c, &publisher)?.len(), 1);

    let d = connect5(&broker.uri(), "rh2")?;
    sub(
        &d,
        &topic,
        SubscribeOptions::new().retain_handling(RetainHandling::DoNotSend),
    )?;
    assert!(until_marker5(&d, &publisher)?.is_empty(), "2: never sent");
    publisher.publish5(&topic, b"", QoS::AtLeastOnce, true, NONE)?;
    Ok(())
}

#[test]
fn subscription_identifiers_come_back_on_messages() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = connect5(&broker.uri(), "sid")?;
    let publisher = connect5(&broker.uri(), "pub")?;
    let base = common::topic("sid");
    for (filter, id) in [(format!("{base}/#"), 7), (format!("{base}/+"), 300_000)] {
        let p = props(|p| {
            p.push_int(P::SubscriptionIdentifier, id)?;
            Ok(())
        });
        c.subscribe5(&filter, QoS::AtLeastOnce, &SubscribeOptions::new(), &p)?;
    }
    publisher.publish5(&format!("{base}/x"), b"1", QoS::AtLeastOnce, false, NONE)?;
    let got = until_marker5(&c, &publisher)?;
    assert!(!got.is_empty());
    let ids: BTreeSet<u32> = got
        .iter()
        .flat_map(|(_, m)| m.properties().get_ints(P::SubscriptionIdentifier))
        .collect();
    assert_eq!(ids, BTreeSet::from([7, 300_000]), "{got:?}");
    Ok(())
}

#[test]
fn shared_subscription_splits_messages() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let topic = common::topic("share");
    let shared = format!("$share/g/{topic}");
    let a = connect5(&broker.uri(), "a")?;
    let b = connect5(&broker.uri(), "b")?;
    sub(&a, &shared, SubscribeOptions::new())?;
    sub(&b, &shared, SubscribeOptions::new())?;
    let publisher = connect5(&broker.uri(), "pub")?;
    const N: usize = 20;
    for i in 0..N {
        let tok = publisher.publish5(
            &topic,
            i.to_string().as_bytes(),
            QoS::AtLeastOnce,
            false,
            NONE,
        )?;
        publisher.wait_for_completion(tok, WAIT)?;
    }
    let mut seen = Vec::new();
    let mut per_client = [0usize; 2];
    let deadline = Instant::now() + WAIT;
    while seen.len() < N && Instant::now() < deadline {
        for (i, c) in [&a, &b].into_iter().enumerate() {
            if let Some((_, m)) = c.receive(Duration::from_millis(20))? {
                per_client[i] += 1;
                seen.push(m.payload_str()?.parse::<usize>()?);
            }
        }
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..N).collect::<Vec<_>>(),
        "each message exactly once"
    );
    assert!(
        per_client[0] > 0 && per_client[1] > 0,
        "split: {per_client:?}"
    );
    Ok(())
}

#[test]
fn session_expiry_keeps_the_session_then_drops_it() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let id = common::client_id("sx");
    let topic = common::topic("sx");
    let opts = common::options().clean_session(false);
    let expiry = props(|p| {
        p.push_int(P::SessionExpiryInterval, 2)?;
        Ok(())
    });
    let c = create5_id(&broker.uri(), &id)?;
    assert!(!c.connect5(&opts, &expiry, NONE)?.session_present());
    sub(&c, &topic, SubscribeOptions::new())?;
    c.disconnect(Duration::from_secs(1))?;
    let publisher = connect5(&broker.uri(), "pub")?;
    let tok = publisher.publish5(&topic, b"queued", QoS::AtLeastOnce, false, NONE)?;
    publisher.wait_for_completion(tok, WAIT)?;
    // Back within the interval: session and queued message are there.
    expect_session(&c.connect5(&opts, &expiry, NONE)?, true);
    let (_, m) = common::recv(&c, WAIT)?;
    assert_eq!(m.payload(), b"queued");
    c.disconnect(Duration::from_secs(1))?;
    // Back after it: gone.
    std::thread::sleep(Duration::from_millis(3500));
    assert!(!c.connect5(&opts, &expiry, NONE)?.session_present());
    Ok(())
}

#[test]
fn disconnect5_session_expiry_zero_ends_the_session() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = create5(&broker.uri(), "dx")?;
    let publisher = connect5(&broker.uri(), "pub")?;
    let topic = common::topic("dx");
    let opts = common::options().clean_session(false);
    let keep = props(|p| {
        p.push_int(P::SessionExpiryInterval, 300)?;
        Ok(())
    });
    c.connect5(&opts, &keep, NONE)?;
    sub(&c, &topic, SubscribeOptions::new())?;
    c.disconnect(Duration::from_secs(1))?;
    // The session (and its subscription) outlived a plain disconnect.
    expect_session(&c.connect5(&opts, &keep, NONE)?, true);
    publisher.publish5(&topic, b"kept", QoS::AtLeastOnce, false, NONE)?;
    assert_eq!(until_marker5(&c, &publisher)?.len(), 1);
    // A DISCONNECT with Session Expiry Interval 0 (and a reason string and
    // a user property) ends it.
    let end = props(|p| {
        p.push_int(P::SessionExpiryInterval, 0)?;
        p.push_str(P::ReasonString, "done")?;
        p.push_user_property("k", "v")?;
        Ok(())
    });
    c.disconnect5(
        Duration::from_secs(1),
        ReasonCode::NORMAL_DISCONNECTION,
        &end,
    )?;
    assert!(!c.is_connected());
    expect_session(&c.connect5(&opts, &keep, NONE)?, false);
    publisher.publish5(&topic, b"gone", QoS::AtLeastOnce, false, NONE)?;
    assert!(
        until_marker5(&c, &publisher)?.is_empty(),
        "no subscription left"
    );
    Ok(())
}

#[test]
fn message_expiry_drops_late_messages() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = create5(&broker.uri(), "mx")?;
    let topic = common::topic("mx");
    let opts = common::options().clean_session(false);
    let keep = props(|p| {
        p.push_int(P::SessionExpiryInterval, 300)?;
        Ok(())
    });
    c.connect5(&opts, &keep, NONE)?;
    sub(&c, &topic, SubscribeOptions::new())?;
    c.disconnect(Duration::from_secs(1))?;
    let publisher = connect5(&broker.uri(), "pub")?;
    let short = props(|p| {
        p.push_int(P::MessageExpiryInterval, 1)?;
        Ok(())
    });
    let long = props(|p| {
        p.push_int(P::MessageExpiryInterval, 600)?;
        Ok(())
    });
    for (payload, p) in [(&b"short"[..], &short), (b"long", &long), (b"never", NONE)] {
        let tok = publisher.publish5(&topic, payload, QoS::AtLeastOnce, false, p)?;
        publisher.wait_for_completion(tok, WAIT)?;
    }
    std::thread::sleep(Duration::from_millis(2500));
    expect_session(&c.connect5(&opts, &keep, NONE)?, true);
    let got = until_marker5(&c, &publisher)?;
    let payloads: Vec<_> = got.iter().map(|(_, m)| m.payload().to_vec()).collect();
    assert_eq!(payloads, vec![b"long".to_vec(), b"never".to_vec()]);
    // The broker sends the time left.
    let left = got[0].1.properties().get_int(P::MessageExpiryInterval);
    assert!(left.is_some_and(|s| s < 600 && s > 590), "{left:?}");
    assert_eq!(
        got[1].1.properties().get_int(P::MessageExpiryInterval),
        None
    );
    Ok(())
}

/// What the MQTT 5 stub server does after reading a CONNECT.
#[derive(Clone, Copy)]
enum Stub {
    /// CONNACK with this failure reason code and a Reason String, then close.
    Refuse(u8, &'static str),
    /// CONNACK 0, then after 200 ms a DISCONNECT with this reason code, a
    /// Reason String and a user property, then close once the client did.
    AcceptThenDisconnect(u8, &'static str),
    /// CONNACK 0 and a DISCONNECT with this reason code in one write.
    AcceptAndDisconnectAtOnce(u8),
}

/// Appends an MQTT variable byte integer.
fn vbi(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

/// A packet: type byte, remaining length, body.
fn packet(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![kind];
    vbi(&mut p, body.len());
    p.extend_from_slice(body);
    p
}

/// A properties block: Reason String, plus one user property.
fn reason_props(reason: &str, user: Option<(&str, &str)>) -> Vec<u8> {
    let mut props = vec![0x1F];
    props.extend((reason.len() as u16).to_be_bytes());
    props.extend(reason.as_bytes());
    if let Some((k, v)) = user {
        props.push(0x26);
        props.extend((k.len() as u16).to_be_bytes());
        props.extend(k.as_bytes());
        props.extend((v.len() as u16).to_be_bytes());
        props.extend(v.as_bytes());
    }
    let mut out = Vec::new();
    vbi(&mut out, props.len());
    out.extend(props);
    out
}

/// A one-connection-at-a-time MQTT 5 server on 127.0.0.1 for what Mosquitto
/// 2.0.11 never sends (it closes a taken-over connection without a
/// DISCONNECT, and sends no Reason String with a refusal). Returns the port.
fn stub5(script: Stub) -> anyhow::Result<u16> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let _ = s.set_read_timeout(Some(WAIT));
            // Read the CONNECT (type byte, remaining length, body).
            let mut b = [0u8; 1];
            if s.read_exact(&mut b).is_err() {
                continue;
            }
            let (mut len, mut shift) = (0usize, 0);
            loop {
                if s.read_exact(&mut b).is_err() {
                    break;
                }
                len |= usize::from(b[0] & 0x7f) << shift;
                shift += 7;
                if b[0] & 0x80 == 0 || shift > 21 {
                    break;
                }
            }
            let mut body = vec![0u8; len];
            let _ = s.read_exact(&mut body);
            match script {
                Stub::Refuse(rc, reason) => {
                    let mut connack = vec![0, rc];
                    connack.extend(reason_props(reason, None));
                    let _ = s.write_all(&packet(0x20, &connack));
                }
                Stub::AcceptAndDisconnectAtOnce(rc) => {
                    let mut both = packet(0x20, &[0, 0, 0]);
                    both.extend(packet(0xE0, &[rc, 0]));
                    let _ = s.write_all(&both);
                    let mut rest = Vec::new();
                    let _ = s.read_to_end(&mut rest);
                }
                Stub::AcceptThenDisconnect(rc, reason) => {
                    let _ = s.write_all(&packet(0x20, &[0, 0, 0]));
                    std::thread::sleep(Duration::from_millis(200));
                    let mut disc = vec![rc];
                    disc.extend(reason_props(reason, Some(("by", "stub"))));
                    let _ = s.write_all(&packet(0xE0, &disc));
                    // Wait for the client to close.
                    let mut rest = Vec::new();
                    let _ = s.read_to_end(&mut rest);
                }
            }
        }
    });
    Ok(port)
}

#[test]
fn server_disconnect_reaches_the_disconnected_callback() -> anyhow::Result<()> {
    let port = stub5(Stub::AcceptThenDisconnect(
        0x8E,
        "another client took the session",
    ))?;
    let c = std::sync::Arc::new(create5(&format!("tcp://127.0.0.1:{port}"), "tk")?);
    let (tx, rx) = mpsc::channel();
    let weak = std::sync::Arc::downgrade(&c);
    let (lost_tx, lost_rx) = mpsc::channel();
    c.set_callbacks(
        Callbacks::new()
            .on_disconnected(move |reason, props| {
                // Client methods may be called here.
                let connected = weak.upgrade().map(|c| c.is_connected());
                let _ = tx.send((reason, props.clone(), connected));
            })
            .on_connection_lost(move |_| {
                let _ = lost_tx.send(());
            }),
    )?;
    c.connect5(&common::options(), NONE, NONE)?;
    let (reason, props, connected) = rx.recv_timeout(WAIT)?;
    assert_eq!(reason, ReasonCode::SESSION_TAKEN_OVER);
    assert_eq!(reason.value(), 0x8E);
    assert_eq!(
        props.get_str(P::ReasonString),
        Some("another client took the session")
    );
    assert_eq!(props.user_property("by"), Some("stub"));
    assert_eq!(connected, Some(false));
    assert!(!c.is_connected());
    assert!(matches!(
        c.publish5("t/x", b"x", QoS::AtLeastOnce, false, NONE),
        Err(Error::Disconnected)
    ));
    assert!(
        lost_rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "a server DISCONNECT is not a connection loss"
    );
    Ok(())
}

#[test]
#[cfg_attr(
    not(feature = "bundled"),
    ignore = "BUG (fixed in the bundled build, fix 035): destroy does not wait for the thread that runs the disconnected callback; crashed (SIGSEGV) once in the armv7 musl suite under qemu"
)]
fn drop_right_after_a_server_disconnect() -> anyhow::Result<()> {
    // The library calls the disconnected callback on a thread it starts; a
    // client dropped right after a server DISCONNECT races that thread unless
    // destroy waits for it (fix 035). Here the CONNACK and the DISCONNECT come in one
    // write (the connect usually fails, the callback still runs), and the
    // client is dropped at once, many times, in a child process so that a
    // crash is a test failure. (No use after free seen, also under
    // valgrind; the window, between the thread's start and its first read
    // of the client, is not widened here.)
    common::in_child(
        "drop_right_after_a_server_disconnect",
        Duration::from_secs(120),
        || {
            let port = stub5(Stub::AcceptAndDisconnectAtOnce(0x8B))?;
            let uri = format!("tcp://127.0.0.1:{port}");
            let rounds = std::env::var("MQ5_ROUNDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(50);
            for _ in 0..rounds {
                let c = create5(&uri, "drop")?;
                c.set_callbacks(Callbacks::new().on_disconnected(|_, _| {}))?;
                // The connect may already see the DISCONNECT.
                let _ = c.connect5(&common::options(), NONE, NONE);
                drop(c);
            }
            Ok(())
        },
    )
}

#[test]
fn server_disconnect_restarts_automatic_reconnect_except_after_a_takeover() -> anyhow::Result<()> {
    // The stub accepts every connection and ends it after 200 ms with a
    // DISCONNECT: 0x8B (server shutting down) is reconnected, 0x8E
    // (session taken over) is not.
    for (reason, reconnects) in [(0x8B, true), (0x8E, false)] {
        let port = stub5(Stub::AcceptThenDisconnect(reason, "bye"))?;
        let c = create5(&format!("tcp://127.0.0.1:{port}"), "rc")?;
        let (tx, rx) = mpsc::channel();
        c.set_callbacks(
            Callbacks::new()
                .on_connected(move |_| {
                    let _ = tx.send(());
                })
                .on_disconnected(|_, _| {}),
        )?;
        let opts = common::options()
            .automatic_reconnect(Duration::from_millis(50), Duration::from_millis(200));
        c.connect5(&opts, NONE, NONE)?;
        rx.recv_timeout(WAIT)?;
        let again = rx.recv_timeout(Duration::from_secs(2)).is_ok();
        assert_eq!(again, reconnects, "reason 0x{reason:02X}");
        c.disconnect(Duration::ZERO).ok();
    }
    Ok(())
}

#[test]
fn session_takeover_by_mosquitto_is_a_lost_connection() -> anyhow::Result<()> {
    // Mosquitto 2.0.11 closes the old connection without sending DISCONNECT
    // 0x8E (checked on the wire), so the old client sees a lost connection.
    let broker = Broker::new()?;
    let id = common::client_id("tk");
    let first = create5_id(&broker.uri(), &id)?;
    let (tx, rx) = mpsc::channel();
    first.set_callbacks(Callbacks::new().on_connection_lost(move |_| {
        let _ = tx.send(());
    }))?;
    first.connect5(&common::options(), NONE, NONE)?;
    let second = create5_id(&broker.uri(), &id)?;
    second.connect5(&common::options(), NONE, NONE)?;
    rx.recv_timeout(WAIT)?;
    assert!(!first.is_connected());
    assert!(second.is_connected());
    Ok(())
}

#[test]
fn no_matching_subscribers_reaches_on_published() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = create5(&broker.uri(), "nms")?;
    let (tx, rx) = mpsc::channel();
    c.set_callbacks(Callbacks::new().on_published(move |ack| {
        let _ = tx.send(ack.clone());
    }))?;
    c.connect5(&common::options(), NONE, NONE)?;
    let topic = common::topic("nobody");
    let tok = c.publish5(&topic, b"x", QoS::AtLeastOnce, false, NONE)?;
    c.wait_for_completion(tok, WAIT)?;
    let ack = rx.recv_timeout(WAIT)?;
    assert_eq!(ack.token(), tok);
    assert_eq!(ack.kind(), PublishAckKind::Puback);
    assert_eq!(ack.reason_code(), ReasonCode::NO_MATCHING_SUBSCRIBERS);
    assert_eq!(
        ack.reason_code().to_string(),
        "No matching subscribers (0x10)"
    );
    // With a subscriber: success, and QoS 2 ends with a PUBCOMP.
    sub(&c, &topic, SubscribeOptions::new())?;
    let tok = c.publish5(&topic, b"y", QoS::ExactlyOnce, false, NONE)?;
    c.wait_for_completion(tok, WAIT)?;
    let ack = rx.recv_timeout(WAIT)?;
    assert_eq!(
        (ack.token(), ack.kind(), ack.reason_code()),
        (tok, PublishAckKind::Pubcomp, ReasonCode::SUCCESS)
    );
    Ok(())
}

#[test]
fn refused_publishes_reach_on_published_and_complete() -> anyhow::Result<()> {
    let broker = Broker::builder()
        .user("alice", "secret")
        .acl("user alice\ntopic readwrite ok/#\n")
        .start()?;
    let c = create5(&broker.uri(), "acl")?;
    let (tx, rx) = mpsc::channel();
    c.set_callbacks(Callbacks::new().on_published(move |ack| {
        let _ = tx.send(ack.clone());
    }))?;
    c.connect5(
        &common::options().username("alice").password("secret"),
        NONE,
        NONE,
    )?;
    // QoS 1: PUBACK 0x87.
    let tok = c.publish5("denied/1", b"x", QoS::AtLeastOnce, false, NONE)?;
    c.wait_for_completion(tok, WAIT)?;
    let ack = rx.recv_timeout(WAIT)?;
    assert_eq!(
        (ack.token(), ack.kind(), ack.reason_code()),
        (tok, PublishAckKind::Puback, ReasonCode::NOT_AUTHORIZED)
    );
    // QoS 2: PUBREC 0x87 ends the exchange (no PUBREL, no PUBCOMP, no
    // deliveryComplete): the token completes anyway.
    let tok = c.publish5("denied/2", b"x", QoS::ExactlyOnce, false, NONE)?;
    c.wait_for_completion(tok, WAIT)?;
    let ack = rx.recv_timeout(WAIT)?;
    assert_eq!(
        (ack.token(), ack.kind(), ack.reason_code()),
        (tok, PublishAckKind::Pubrec, ReasonCode::NOT_AUTHORIZED)
    );
    assert!(c.pending_delivery_tokens()?.is_empty());
    // The next QoS 2 publish is not held up (reliable: one in flight).
    let tok = c.publish5("ok/1", b"x", QoS::ExactlyOnce, false, NONE)?;
    c.wait_for_completion(tok, WAIT)?;
    Ok(())
}

#[test]
fn brokers_receive_maximum_is_honoured() -> anyhow::Result<()> {
    let broker = Broker::builder()
        .config_line("max_inflight_messages 2")
        .start()?;
    let c = create5(&broker.uri(), "rmax")?;
    let r = c.connect5(&common::options().reliable(false), NONE, NONE)?;
    assert_eq!(r.receive_maximum(), Some(2));
    let topic = common::topic("rmax");
    let rx = connect5(&broker.uri(), "rx")?;
    sub(&rx, &topic, SubscribeOptions::new())?;
    // Ten QoS 1 publishes back to back: the crate waits for window room
    // (2 in flight, not the 10 of reliable(false)), so none of them enters
    // the library's sleeping wait or fails.
    let toks = (0..10)
        .map(|i| c.publish5(&topic, &[i], QoS::AtLeastOnce, false, NONE))
        .collect::<Result<Vec<_>, _>>()?;
    for t in toks {
        c.wait_for_completion(t, WAIT)?;
    }
    let got = common::recv_n(&rx, 10, WAIT)?;
    let payloads: Vec<u8> = got.iter().map(|(_, m)| m.payload()[0]).collect();
    assert_eq!(payloads, (0..10).collect::<Vec<u8>>());
    Ok(())
}

#[test]
fn refused_connect_carries_the_reason_code() -> anyhow::Result<()> {
    let broker = Broker::builder().user("alice", "secret").start()?;
    let c = create5(&broker.uri(), "bad")?;
    let opts = common::options().username("alice").password("wrong");
    let err = c.connect5(&opts, NONE, NONE).unwrap_err();
    match &err {
        // Mosquitto 2.0.11 answers a wrong password with 0x87 (not
        // authorized), not 0x86, and without a Reason String.
        Error::ConnectionRefusedV5 { reason, .. } => {
            assert_eq!(*reason, ReasonCode::NOT_AUTHORIZED)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.code(), 0x87);
    assert!(err.to_string().contains("Not authorized (0x87)"), "{err}");
    assert!(!c.is_connected());
    // The right password works on the same client afterwards.
    let ok = common::options().username("alice").password("secret");
    c.connect5(&ok, NONE, NONE)?;
    Ok(())
}

#[test]
fn refused_connect_carries_the_brokers_reason_string() -> anyhow::Result<()> {
    // Needs fix 033 (the CONNACK properties of a refusal are kept): with a
    // system library only the reason code comes through.
    let port = stub5(Stub::Refuse(0x86, "password expired"))?;
    let c = create5(&format!("tcp://127.0.0.1:{port}"), "why")?;
    let err = c.connect5(&common::options(), NONE, NONE).unwrap_err();
    if !cfg!(feature = "bundled") {
        assert!(
            matches!(
                err,
                Error::ConnectionRefusedV5 {
                    reason: ReasonCode::BAD_USER_NAME_OR_PASSWORD,
                    ..
                }
            ),
            "{err:?}"
        );
        return Ok(());
    }
    assert_eq!(
        err,
        Error::ConnectionRefusedV5 {
            reason: ReasonCode::BAD_USER_NAME_OR_PASSWORD,
            reason_string: Some("password expired".into()),
        }
    );
    assert_eq!(err.code(), 0x86);
    assert_eq!(
        err.to_string(),
        "connection refused by the broker: Bad User Name or Password (0x86): password expired"
    );
    Ok(())
}

#[test]
fn topic_alias_replaces_the_topic() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let rx = connect5(&broker.uri(), "rx")?;
    let publisher = connect5(&broker.uri(), "pub")?;
    let topic = common::topic("alias");
    sub(&rx, &topic, SubscribeOptions::new())?;
    let alias = props(|p| {
        p.push_int(P::TopicAlias, 1)?;
        Ok(())
    });
    publisher.publish5(&topic, b"first", QoS::AtLeastOnce, false, &alias)?;
    let tok = publisher.publish5("", b"second", QoS::AtLeastOnce, false, &alias)?;
    publisher.wait_for_completion(tok, WAIT)?;
    let got = common::recv_n(&rx, 2, WAIT)?;
    for ((t, m), want) in got.iter().zip([&b"first"[..], b"second"]) {
        assert_eq!(t, &topic);
        assert_eq!(m.payload(), want);
    }
    // An empty topic without an alias is refused before sending.
    assert!(matches!(
        publisher.publish5("", b"x", QoS::AtMostOnce, false, NONE),
        Err(Error::InvalidTopic { .. })
    ));
    Ok(())
}

#[test]
fn automatic_reconnect_reconnects_with_mqtt5_and_the_same_properties() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    let c = create5(&proxy.uri(), "auto")?;
    let (tx, rx) = mpsc::channel();
    c.set_callbacks(Callbacks::new().on_connected(move |r| {
        let _ = tx.send((r.mqtt_version(), r.session_present()));
    }))?;
    let opts = common::options()
        .clean_session(false)
        .automatic_reconnect(Duration::from_millis(100), Duration::from_secs(1));
    // The session outlives the connection only if the reconnect sends the
    // Session Expiry Interval again (MQTT 5's default is 0: ends at once).
    let session = props(|p| {
        p.push_int(P::SessionExpiryInterval, 60)?;
        Ok(())
    });
    c.connect5(&opts, &session, NONE)?;
    assert_eq!(rx.recv_timeout(WAIT)?, (MqttVersion::V5, false));
    let topic = common::topic("auto");
    sub(&c, &topic, SubscribeOptions::new())?;
    proxy.cut();
    let (version, present) = rx.recv_timeout(WAIT)?;
    assert_eq!(version, MqttVersion::V5);
    assert!(present || !reports_session_present());
    assert!(c.is_connected());
    // The subscription came back with the session.
    let publisher = connect5(&broker.uri(), "pub")?;
    publisher.publish5(&topic, b"after", QoS::AtLeastOnce, false, NONE)?;
    let (_, m) = common::recv(&c, WAIT)?;
    assert_eq!(m.payload(), b"after");
    c.disconnect(Duration::from_secs(1))?;
    Ok(())
}

#[test]
fn will_delay_interval() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let watcher = connect5(&broker.uri(), "watch")?;
    let will_topic = common::topic("will");
    sub(&watcher, &will_topic, SubscribeOptions::new())?;
    let proxy = Proxy::new(broker.port())?;
    let id = common::client_id("wd");
    let opts = common::options()
        .clean_session(false)
        .will(WillOptions::new(&will_topic, "gone").qos(QoS::AtLeastOnce));
    let session = props(|p| {
        p.push_int(P::SessionExpiryInterval, 60)?;
        Ok(())
    });
    let delay = props(|p| {
        p.push_int(P::WillDelayInterval, 2)?;
        p.push_user_property("why", "test")?;
        Ok(())
    });
    // Back in time: no will.
    let c = create5_id(&proxy.uri(), &id)?;
    c.connect5(&opts, &session, &delay)?;
    proxy.cut();
    assert!(common::wait_until(WAIT, || !c.is_connected()));
    c.connect5(&opts, &session, &delay)?;
    std::thread::sleep(Duration::from_millis(3000));
    assert!(
        watcher.receive(Duration::ZERO)?.is_none(),
        "no will when back in time"
    );
    // Not back: the will, after the delay.
    let cut_at = Instant::now();
    proxy.cut();
    let (t, m) = common::recv(&watcher, WAIT)?;
    let after = cut_at.elapsed();
    assert_eq!(t, will_topic);
    assert_eq!(m.payload(), b"gone");
    assert_eq!(m.properties().user_property("why"), Some("test"));
    assert!(after >= Duration::from_millis(1500), "will after {after:?}");
    Ok(())
}

#[test]
fn maximum_packet_size_is_honoured() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let small = create5(&broker.uri(), "small")?;
    let limit = props(|p| {
        p.push_int(P::MaximumPacketSize, 200)?;
        Ok(())
    });
    small.connect5(&common::options(), &limit, NONE)?;
    let topic = common::topic("mps");
    sub(&small, &topic, SubscribeOptions::new())?;
    let publisher = connect5(&broker.uri(), "pub")?;
    publisher.publish5(&topic, &[b'x'; 1000], QoS::AtLeastOnce, false, NONE)?;
    publisher.publish5(&topic, b"fits", QoS::AtLeastOnce, false, NONE)?;
    let got = until_marker5(&small, &publisher)?;
    let payloads: Vec<_> = got.iter().map(|(_, m)| m.payload().to_vec()).collect();
    assert_eq!(
        payloads,
        vec![b"fits".to_vec()],
        "the broker drops what is too large"
    );
    assert!(small.is_connected());
    Ok(())
}

#[test]
fn subscribe_and_unsubscribe_many_give_one_reason_code_per_filter() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = connect5(&broker.uri(), "many")?;
    let base = common::topic("many");
    let (a, b, never) = (
        format!("{base}/a"),
        format!("{base}/b"),
        format!("{base}/n"),
    );
    let user = props(|p| {
        p.push_user_property("k", "v")?;
        Ok(())
    });
    let r = c.subscribe_many5(
        &[
            (a.as_str(), QoS::ExactlyOnce, SubscribeOptions::new()),
            (
                b.as_str(),
                QoS::AtMostOnce,
                SubscribeOptions::new().no_local(true),
            ),
        ],
        &user,
    )?;
    assert_eq!(
        r.reason_codes(),
        [ReasonCode::GRANTED_QOS_2, ReasonCode::GRANTED_QOS_0]
    );
    assert_eq!(
        r.granted_qos(),
        vec![Some(QoS::ExactlyOnce), Some(QoS::AtMostOnce)]
    );
    let u = c.unsubscribe_many5(&[&a, &never, &b], &user)?;
    assert_eq!(
        u.reason_codes(),
        [
            ReasonCode::SUCCESS,
            ReasonCode::NO_SUBSCRIPTION_FOUND,
            ReasonCode::SUCCESS
        ]
    );
    let one = c.unsubscribe5(&a, NONE)?;
    assert_eq!(one.reason_codes(), [ReasonCode::NO_SUBSCRIPTION_FOUND]);
    Ok(())
}

#[test]
fn bad_input_is_refused_before_sending() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = connect5(&broker.uri(), "bad")?;
    let topic = common::topic("bad");
    let invalid = |r: paho_mqtt_sync::Result<_>, code| match r {
        Err(Error::InvalidProperty { property, .. }) => assert_eq!(property, code),
        Err(e) => panic!("expected InvalidProperty({code:?}), got {e:?}"),
        Ok(_) => panic!("expected InvalidProperty({code:?}), got Ok"),
    };
    // Wrong value types and ranges.
    let mut p = Properties::new();
    invalid(
        p.push(
            P::MessageExpiryInterval,
            PropertyValue::String("soon".into()),
        )
        .map(|_| ()),
        P::MessageExpiryInterval,
    );
    invalid(p.push_str(P::TopicAlias, "1").map(|_| ()), P::TopicAlias);
    invalid(p.push_int(P::TopicAlias, 65_536).map(|_| ()), P::TopicAlias);
    invalid(
        p.push_binary(P::CorrelationData, &[0; 65_536]).map(|_| ()),
        P::CorrelationData,
    );
    invalid(
        p.push_str(P::ContentType, &"x".repeat(65_536)).map(|_| ()),
        P::ContentType,
    );
    invalid(
        p.push_user_property("k", "v\0").map(|_| ()),
        P::UserProperty,
    );
    assert!(p.is_empty());
    // Properties not allowed in the packet.
    let session = props(|p| {
        p.push_int(P::SessionExpiryInterval, 5)?;
        Ok(())
    });
    invalid(
        c.publish5(&topic, b"x", QoS::AtLeastOnce, false, &session)
            .map(|_| ()),
        P::SessionExpiryInterval,
    );
    let sid = props(|p| {
        p.push_int(P::SubscriptionIdentifier, 3)?;
        Ok(())
    });
    invalid(
        c.publish5(&topic, b"x", QoS::AtLeastOnce, false, &sid)
            .map(|_| ()),
        P::SubscriptionIdentifier,
    );
    let alias = props(|p| {
        p.push_int(P::TopicAlias, 1)?;
        Ok(())
    });
    invalid(
        c.subscribe5(&topic, QoS::AtLeastOnce, &SubscribeOptions::new(), &alias)
            .map(|_| ()),
        P::TopicAlias,
    );
    invalid(
        c.unsubscribe5(&topic, &sid).map(|_| ()),
        P::SubscriptionIdentifier,
    );
    invalid(
        c.disconnect5(Duration::from_secs(1), ReasonCode::SUCCESS, &alias),
        P::TopicAlias,
    );
    let delay = props(|p| {
        p.push_int(P::WillDelayInterval, 5)?;
        Ok(())
    });
    let fresh = create5(&broker.uri(), "fresh")?;
    invalid(
        fresh.connect5(&common::options(), &delay, NONE).map(|_| ()),
        P::WillDelayInterval,
    );
    invalid(
        fresh
            .connect5(
                &common::options().will(WillOptions::new("w", "x")),
                NONE,
                &session,
            )
            .map(|_| ()),
        P::SessionExpiryInterval,
    );
    assert!(matches!(
        fresh.connect5(&common::options(), NONE, &delay),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        c.subscribe5(
            &format!("$share/g/{topic}"),
            QoS::AtLeastOnce,
            &SubscribeOptions::new().no_local(true),
            NONE
        ),
        Err(Error::InvalidArgument(_))
    ));
    // The client still works after all that.
    assert!(c.is_connected());
    sub(&c, &topic, SubscribeOptions::new())?;
    Ok(())
}

#[test]
fn wrong_mqtt_version_is_a_clear_error() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    // MQTT 5 calls on an MQTT 3.1.1 client.
    let v3 = common::connect(&broker.uri(), "v3")?;
    let wrong = |r: paho_mqtt_sync::Result<()>| match r {
        Err(e @ Error::WrongMqttVersion(_)) => assert_eq!(e.code(), -16),
        other => panic!("expected WrongMqttVersion, got {other:?}"),
    };
    wrong(
        v3.publish5("t/x", b"x", QoS::AtMostOnce, false, NONE)
            .map(|_| ()),
    );
    wrong(
        v3.subscribe5("t/x", QoS::AtMostOnce, &SubscribeOptions::new(), NONE)
            .map(|_| ()),
    );
    wrong(v3.unsubscribe5("t/x", NONE).map(|_| ()));
    wrong(v3.disconnect5(Duration::ZERO, ReasonCode::SUCCESS, NONE));
    let fresh3 = common::create(&broker.uri(), "fresh3")?;
    wrong(fresh3.connect5(&common::options(), NONE, NONE).map(|_| ()));
    assert!(v3.is_connected());
    // MQTT 3 calls on an MQTT 5 client.
    let v5 = create5(&broker.uri(), "v5")?;
    wrong(v5.connect(&common::options()).map(|_| ()));
    wrong(
        common::create(&broker.uri(), "v3b")?
            .connect(&ConnectOptions::new().mqtt_version(MqttVersion::V5))
            .map(|_| ()),
    );
    v5.connect5(&common::options(), NONE, NONE)?;
    wrong(v5.publish("t/x", b"x", QoS::AtMostOnce, false).map(|_| ()));
    wrong(v5.subscribe("t/x", QoS::AtMostOnce).map(|_| ()));
    wrong(v5.unsubscribe("t/x"));
    // Calls both versions share work on an MQTT 5 client.
    v5.disconnect(Duration::from_secs(1))?;
    Ok(())
}

/// Builds an example (as teaching_port.rs does) and returns its path.
fn example(name: &str) -> anyhow::Result<std::path::PathBuf> {
    use anyhow::Context as _;
    use std::path::Path;
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test binary outside a cargo target dir")?
        .to_path_buf();
    let mut target_dir = profile_dir.parent().context("no target dir")?.to_path_buf();
    let built_for = option_env!("PAHO_MQTT_SYNC_TARGET").unwrap_or_default();
    let mut triple = None;
    if !built_for.is_empty() && target_dir.file_name() == Some(std::ffi::OsStr::new(built_for)) {
        triple = Some(built_for);
        target_dir = target_dir.parent().context("no target dir")?.to_path_buf();
    }
    let profile = match profile_dir.file_name().and_then(|p| p.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let features: Vec<&str> = [
        (cfg!(feature = "bundled"), "bundled"),
        (cfg!(feature = "ssl"), "ssl"),
        (cfg!(feature = "build_bindgen"), "build_bindgen"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, f)| *f)
    .collect();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = std::process::Command::new(cargo);
    cmd.args(["build", "--quiet", "--example", name, "--profile", &profile])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--no-default-features", "--features", &features.join(",")]);
    if let Some(t) = triple {
        cmd.arg("--target").arg(t);
    }
    let out = cmd.stdin(std::process::Stdio::null()).output()?;
    anyhow::ensure!(
        out.status.success(),
        "cargo build --example {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(profile_dir.join("examples").join(name))
}

#[test]
fn rpc_examples_answer_requests() -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let _w = common::watchdog("rpc_examples", Duration::from_secs(300));
    let broker = Broker::new()?;
    let (server_bin, client_bin) = (example("mqtt5_rpc_server")?, example("mqtt5_rpc_client")?);
    let mut server = common::target_command(&server_bin)
        .args([broker.uri().as_str(), "--count", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut lines = BufReader::new(server.stdout.take().expect("stdout")).lines();
    let first = lines.next().transpose()?;
    assert_eq!(first.as_deref(), Some("ready"));
    let ask = |arg: &str| -> anyhow::Result<String> {
        let out = common::target_command(&client_bin)
            .args([broker.uri().as_str(), arg])
            .stdin(Stdio::null())
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "client failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    };
    assert_eq!(ask("7")?, "7 squared is 49");
    assert_eq!(ask("seven")?, "seven: error: not a number, or too large");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = server.try_wait()? {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = server.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.is_some_and(|s| s.success()), "server: {status:?}");
    Ok(())
}
