//! Publish and subscribe: QoS 0/1/2 round trips through `receive()` and
//! through callbacks with empty, binary and 1 MiB payloads; delivery tokens;
//! `wait_for_completion` and `pending_delivery_tokens`; retained messages;
//! wildcards and `$SYS`; subscribe/unsubscribe (many); refused subscriptions;
//! a speed sanity bound. (Issue list: 4, 5, 8.)

mod common;

use std::collections::BTreeSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Broker, Proxy, WAIT};
use paho_mqtt_sync::{
    topic_matches, Callbacks, Client, DeliveryToken, Error, Message, Persistence, QoS,
};

const QOS: [QoS; 3] = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];

/// Empty, binary with NUL bytes (and not UTF-8), and 1 MiB.
fn payloads() -> Vec<Vec<u8>> {
    let big: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    vec![Vec::new(), b"\0a\0b\xff\xfe\0".to_vec(), big]
}

fn check_received(topic: &str, msg: &Message, want_topic: &str, payload: &[u8], qos: QoS) {
    assert_eq!(topic, want_topic);
    assert_eq!(
        msg.payload().len(),
        payload.len(),
        "payload length on {topic}"
    );
    assert!(msg.payload() == payload, "payload bytes differ on {topic}");
    assert_eq!(msg.qos(), qos, "{topic}");
    assert!(!msg.retained(), "{topic}");
    assert!(!msg.dup(), "{topic}");
    if qos == QoS::AtMostOnce {
        assert_eq!(msg.msgid(), 0);
    } else {
        assert!(msg.msgid() > 0, "QoS {qos:?} message without a packet id");
    }
}

#[test]
fn round_trips_with_receive() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let sub = common::connect(&broker.uri(), "sub")?;
    let publisher = common::connect(&broker.uri(), "pub")?;
    let base = common::topic("rt");
    assert_eq!(
        sub.subscribe(&format!("{base}/#"), QoS::ExactlyOnce)?,
        QoS::ExactlyOnce
    );
    for qos in QOS {
        for (i, payload) in payloads().iter().enumerate() {
            let topic = format!("{base}/{}/{i}", qos as i32);
            let tok = if i == 1 {
                publisher.publish_message(&topic, &Message::new(payload.clone(), qos, false))?
            } else {
                publisher.publish(&topic, payload, qos, false)?
            };
            if qos == QoS::AtMostOnce {
                assert_eq!(tok, DeliveryToken::from_id(0));
            } else {
                assert!(tok.id() > 0, "{tok:?}");
            }
            publisher.wait_for_completion(tok, WAIT)?;
            let (t, m) = common::recv(&sub, WAIT)?;
            check_received(&t, &m, &topic, payload, qos);
        }
    }
    assert!(publisher.pending_delivery_tokens()?.is_empty());
    Ok(())
}

#[test]
fn granted_qos_caps_delivery_qos() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = common::connect(&broker.uri(), "cap")?;
    let base = common::topic("cap");
    for sub_qos in QOS {
        let filter = format!("{base}/{}", sub_qos as i32);
        assert_eq!(c.subscribe(&filter, sub_qos)?, sub_qos);
        for pub_qos in QOS {
            let tok = c.publish(&filter, b"q", pub_qos, false)?;
            c.wait_for_completion(tok, WAIT)?;
            let (_, m) = common::recv(&c, WAIT)?;
            assert_eq!(
                m.qos(),
                sub_qos.min(pub_qos),
                "sub {sub_qos:?} pub {pub_qos:?}"
            );
        }
    }
    Ok(())
}

#[test]
fn round_trips_with_callbacks_and_delivery_tokens() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let (msg_tx, msg_rx) = mpsc::channel::<(String, Message)>();
    let sub = common::create(&broker.uri(), "cbsub")?;
    sub.set_callbacks(
        Callbacks::new()
            .on_message_arrived(move |t, m| msg_tx.send((t.to_owned(), m.clone())).is_ok()),
    )?;
    sub.connect(&common::options())?;
    assert_eq!(sub.receive(Duration::ZERO), Err(Error::CallbacksSet));

    let (tok_tx, tok_rx) = mpsc::channel::<DeliveryToken>();
    let publisher = common::create(&broker.uri(), "cbpub")?;
    publisher.set_callbacks(Callbacks::new().on_delivery_complete(move |t| {
        let _ = tok_tx.send(t);
    }))?;
    publisher.connect(&common::options().max_inflight_messages(20))?;

    let base = common::topic("cb");
    sub.subscribe(&format!("{base}/#"), QoS::ExactlyOnce)?;
    let mut published = BTreeSet::new();
    let mut expected = Vec::new();
    for qos in QOS {
        for (i, payload) in payloads().into_iter().enumerate() {
            let topic = format!("{base}/{}/{i}", qos as i32);
            let tok = publisher.publish(&topic, &payload, qos, false)?;
            if qos != QoS::AtMostOnce {
                assert!(published.insert(tok.id()), "token {tok:?} handed out twice");
            }
            expected.push((topic, payload, qos));
        }
    }
    // Each QoS 1/2 token reaches on_delivery_complete once, and wait returns.
    let mut completed = BTreeSet::new();
    for _ in 0..published.len() {
        let t = tok_rx.recv_timeout(WAIT)?;
        assert!(completed.insert(t.id()), "token {t:?} completed twice");
    }
    assert_eq!(completed, published);
    for id in &published {
        publisher.wait_for_completion(DeliveryToken::from_id(*id), Duration::ZERO)?;
    }
    // No completion for QoS 0 messages.
    assert!(tok_rx.recv_timeout(Duration::from_millis(200)).is_err());

    // Messages of one QoS keep their order; across QoS levels Mosquitto may
    // interleave, so match each one up.
    let mut got = Vec::new();
    for _ in 0..expected.len() {
        got.push(msg_rx.recv_timeout(WAIT)?);
    }
    for (topic, payload, qos) in &expected {
        let (t, m) = got
            .iter()
            .find(|(t, _)| t == topic)
            .unwrap_or_else(|| panic!("{topic} never arrived"));
        check_received(t, m, topic, payload, *qos);
    }
    assert!(
        msg_rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "extra message"
    );
    Ok(())
}

#[test]
fn tokens_stay_pending_until_acknowledged() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    let c = common::create(&proxy.uri(), "pend")?;
    c.connect(&common::options().max_inflight_messages(10))?;
    let topic = common::topic("pend");

    proxy.stall();
    let t1 = c.publish(&topic, b"1", QoS::AtLeastOnce, false)?;
    let t2 = c.publish(&topic, b"2", QoS::ExactlyOnce, false)?;
    let t0 = c.publish(&topic, b"0", QoS::AtMostOnce, false)?;
    assert_eq!(t0.id(), 0);
    assert_ne!(t1, t2);
    // QoS 0: complete at once, never listed.
    c.wait_for_completion(t0, Duration::ZERO)?;
    let pending: BTreeSet<i32> = c
        .pending_delivery_tokens()?
        .iter()
        .map(|t| t.id())
        .collect();
    assert_eq!(pending, BTreeSet::from([t1.id(), t2.id()]));

    let start = Instant::now();
    assert_eq!(
        c.wait_for_completion(t1, Duration::from_millis(300)),
        Err(Error::Timeout)
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(290) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(
        c.wait_for_completion(t2, Duration::ZERO),
        Err(Error::Timeout)
    );

    proxy.resume();
    c.wait_for_completion(t1, WAIT)?;
    c.wait_for_completion(t2, WAIT)?;
    assert!(c.pending_delivery_tokens()?.is_empty());
    // Completed tokens stay complete.
    c.wait_for_completion(t1, Duration::ZERO)?;
    Ok(())
}

/// With a clean session, a connection loss makes the library drop the
/// messages in flight (MQTTClient_cleanSession): `wait_for_completion` must
/// not report such a never-acknowledged message as complete (C's
/// MQTTClient_waitForCompletion returns MQTTCLIENT_DISCONNECTED there).
#[test]
fn wait_for_completion_after_a_clean_session_loss() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    let c = common::create(&proxy.uri(), "lostw")?;
    c.connect(&common::options())?;
    proxy.stall();
    let tok = c.publish(&common::topic("lostw"), b"x", QoS::AtLeastOnce, false)?;
    assert_eq!(c.pending_delivery_tokens()?, vec![tok]);
    assert_eq!(
        c.wait_for_completion(tok, Duration::from_millis(100)),
        Err(Error::Timeout)
    );
    proxy.cut();
    assert!(common::wait_until(WAIT, || !c.is_connected()));
    // Lost with the clean session: publishing again is up to the caller.
    assert_eq!(
        c.wait_for_completion(tok, WAIT),
        Err(Error::Unacknowledged {
            tokens: vec![tok],
            will_resend: false
        })
    );
    Ok(())
}

#[test]
fn wait_for_completion_is_woken_by_a_connection_loss() -> anyhow::Result<()> {
    // Persistent session: the message stays in flight across the loss, the
    // waiter is told at once, and after a reconnect the library sends the
    // message again and it completes.
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    let sub = common::connect_with(&broker.uri(), "lsub", &common::options())?;
    let topic = common::topic("lost");
    sub.subscribe(&topic, QoS::AtLeastOnce)?;
    let c = common::create(&proxy.uri(), "lostp")?;
    let opts = common::options().clean_session(false);
    c.connect(&opts)?;
    proxy.stall();
    let tok = c.publish(&topic, b"kept", QoS::AtLeastOnce, false)?;
    let start = Instant::now();
    let waiter = std::thread::scope(|s| {
        let h = s.spawn(|| c.wait_for_completion(tok, WAIT));
        std::thread::sleep(Duration::from_millis(200));
        proxy.cut();
        h.join().expect("waiter thread")
    });
    // Kept by the persistent session: sent again after the reconnect.
    assert_eq!(
        waiter,
        Err(Error::Unacknowledged {
            tokens: vec![tok],
            will_resend: true
        })
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(c.pending_delivery_tokens()?, vec![tok]);
    proxy.resume();
    assert!(common::wait_until(WAIT, || !c.is_connected()));
    let r = c.connect(&opts)?;
    assert!(r.session_present());
    c.wait_for_completion(tok, WAIT)?;
    let (_, m) = common::recv(&sub, WAIT)?;
    assert_eq!(m.payload(), b"kept");
    assert!(c.pending_delivery_tokens()?.is_empty());
    Ok(())
}

#[test]
fn retained_messages() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let publisher = common::connect(&broker.uri(), "rpub")?;
    let live = common::connect(&broker.uri(), "rlive")?;
    let topic = common::topic("ret");
    live.subscribe(&topic, QoS::ExactlyOnce)?;

    let tok = publisher.publish(&topic, b"state", QoS::AtLeastOnce, true)?;
    publisher.wait_for_completion(tok, WAIT)?;
    // A subscriber that was already there gets it as a normal message.
    let (_, m) = common::recv(&live, WAIT)?;
    assert_eq!((m.payload(), m.retained()), (&b"state"[..], false));

    // New subscribers get the stored copy, flagged retained, at min(QoS).
    for (sub_qos, want) in [
        (QoS::ExactlyOnce, QoS::AtLeastOnce),
        (QoS::AtMostOnce, QoS::AtMostOnce),
    ] {
        let late = common::connect(&broker.uri(), "rlate")?;
        late.subscribe(&topic, sub_qos)?;
        let (t, m) = common::recv(&late, WAIT)?;
        assert_eq!(t, topic);
        assert_eq!(
            (m.payload(), m.retained(), m.qos()),
            (&b"state"[..], true, want)
        );
    }

    // A newer retained message replaces it.
    let tok = publisher.publish(&topic, b"state2", QoS::AtLeastOnce, true)?;
    publisher.wait_for_completion(tok, WAIT)?;
    assert_eq!(common::recv(&live, WAIT)?.1.payload(), b"state2");
    let late = common::connect(&broker.uri(), "rlate")?;
    late.subscribe(&topic, QoS::AtLeastOnce)?;
    assert_eq!(common::recv(&late, WAIT)?.1.payload(), b"state2");
    let extra = common::until_marker(&late, &publisher)?;
    assert!(
        extra.is_empty(),
        "only the latest retained message: {extra:?}"
    );

    // An empty retained payload clears it (and reaches live subscribers).
    let tok = publisher.publish(&topic, b"", QoS::AtLeastOnce, true)?;
    publisher.wait_for_completion(tok, WAIT)?;
    let (_, m) = common::recv(&live, WAIT)?;
    assert!(m.payload().is_empty());
    let after = common::connect(&broker.uri(), "rafter")?;
    after.subscribe(&topic, QoS::AtLeastOnce)?;
    let before_marker = common::until_marker(&after, &publisher)?;
    assert!(
        before_marker.is_empty(),
        "retained message not cleared: {before_marker:?}"
    );
    Ok(())
}

#[test]
fn wildcards() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let publisher = common::connect(&broker.uri(), "wpub")?;
    let base = common::topic("wild");
    let filters = [
        format!("{base}/+/temp"),
        format!("{base}/#"),
        format!("{base}/+"),
        format!("{base}/kitchen/#"),
    ];
    let topics = [
        format!("{base}/kitchen/temp"),
        format!("{base}/a/b/temp"),
        base.clone(),
        format!("{base}/x"),
        format!("{base}/kitchen"),
        format!("{base}//temp"),
    ];
    let subs: Vec<Client> = filters
        .iter()
        .map(|f| {
            let c = common::connect(&broker.uri(), "wsub")?;
            c.subscribe(f, QoS::AtLeastOnce)?;
            Ok(c)
        })
        .collect::<anyhow::Result<_>>()?;
    for t in &topics {
        let tok = publisher.publish(t, t.as_bytes(), QoS::AtLeastOnce, false)?;
        publisher.wait_for_completion(tok, WAIT)?;
    }
    for (f, c) in filters.iter().zip(&subs) {
        let got: Vec<String> = common::until_marker(c, &publisher)?
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        let want: Vec<String> = topics
            .iter()
            .filter(|t| topic_matches(f, t))
            .cloned()
            .collect();
        assert_eq!(got, want, "filter {f}");
        assert!(!want.is_empty());
    }
    // Spot checks that do not depend on topic_matches.
    let plus: Vec<&String> = topics
        .iter()
        .filter(|t| topic_matches(&filters[0], t))
        .collect();
    assert_eq!(plus, [&topics[0], &topics[5]]);
    assert!(topic_matches(&filters[1], &base), "a/# matches a");
    Ok(())
}

#[test]
fn sys_topics_are_not_matched_by_hash() -> anyhow::Result<()> {
    let broker = Broker::builder().sys_interval(1).start()?;
    let all = common::connect(&broker.uri(), "hash")?;
    all.subscribe("#", QoS::AtMostOnce)?;
    all.subscribe("+/broker/uptime", QoS::AtMostOnce)?;
    let sys = common::connect(&broker.uri(), "sys")?;
    sys.subscribe("$SYS/broker/uptime", QoS::AtMostOnce)?;
    // Wait for a periodic (not retained) $SYS update: published after `all`
    // subscribed, so it would have reached `all` if '#' matched it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        anyhow::ensure!(Instant::now() < deadline, "no periodic $SYS update");
        let (t, m) = common::recv(&sys, Duration::from_secs(5))?;
        assert_eq!(t, "$SYS/broker/uptime");
        if !m.retained() {
            break;
        }
    }
    let got = common::until_marker(&all, &sys)?;
    let sys_topics: Vec<&String> = got
        .iter()
        .map(|(t, _)| t)
        .filter(|t| t.starts_with('$'))
        .collect();
    assert!(sys_topics.is_empty(), "'#' matched {sys_topics:?}");
    Ok(())
}

#[test]
fn unsubscribe_stops_delivery() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = common::connect(&broker.uri(), "unsub")?;
    let publisher = common::connect(&broker.uri(), "unpub")?;
    let topic = common::topic("unsub");
    c.subscribe(&topic, QoS::AtLeastOnce)?;
    publisher.publish(&topic, b"before", QoS::AtLeastOnce, false)?;
    assert_eq!(common::recv(&c, WAIT)?.1.payload(), b"before");
    c.unsubscribe(&topic)?;
    let tok = publisher.publish(&topic, b"after", QoS::AtLeastOnce, false)?;
    publisher.wait_for_completion(tok, WAIT)?;
    let got = common::until_marker(&c, &publisher)?;
    assert!(got.is_empty(), "delivered after unsubscribe: {got:?}");
    // Unsubscribing from something never subscribed is fine in MQTT.
    c.unsubscribe(&format!("{topic}/never"))?;
    Ok(())
}

#[test]
fn subscribe_many_and_unsubscribe_many() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = common::connect(&broker.uri(), "many")?;
    let base = common::topic("many");
    let (a, b, d) = (
        format!("{base}/a"),
        format!("{base}/b"),
        format!("{base}/d"),
    );
    let granted = c.subscribe_many(&[
        (a.as_str(), QoS::AtMostOnce),
        (b.as_str(), QoS::AtLeastOnce),
        (d.as_str(), QoS::ExactlyOnce),
    ])?;
    assert_eq!(granted, QOS.to_vec());
    for t in [&a, &b, &d] {
        let tok = c.publish(t, t.as_bytes(), QoS::ExactlyOnce, false)?;
        c.wait_for_completion(tok, WAIT)?;
    }
    let mut got: Vec<(String, QoS)> = common::recv_n(&c, 3, WAIT)?
        .into_iter()
        .map(|(t, m)| (t, m.qos()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (a.clone(), QoS::AtMostOnce),
            (b.clone(), QoS::AtLeastOnce),
            (d.clone(), QoS::ExactlyOnce)
        ]
    );

    c.unsubscribe_many(&[&a, &b])?;
    for t in [&a, &b, &d] {
        let tok = c.publish(t, t.as_bytes(), QoS::AtLeastOnce, false)?;
        c.wait_for_completion(tok, WAIT)?;
    }
    let rest: Vec<String> = common::until_marker(&c, &c)?
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(rest, vec![d.clone()]);
    Ok(())
}

#[test]
fn acl_denied_subscriptions_are_granted_but_silent_in_mosquitto_2() -> anyhow::Result<()> {
    // Mosquitto 2.0.11 answers an ACL-denied MQTT 3.1.1 subscription with the
    // requested QoS (only MQTT 5 clients get "not authorized") and then
    // delivers nothing on it.
    let broker = Broker::builder()
        .user("u", "p")
        .user("admin", "p")
        .acl("user u\ntopic readwrite ok/#\n\nuser admin\ntopic readwrite #\n")
        .start()?;
    let c = common::create(&broker.uri(), "acl")?;
    c.connect(&common::options().username("u").password("p"))?;
    let admin = common::create(&broker.uri(), "admin")?;
    admin.connect(&common::options().username("admin").password("p"))?;
    assert_eq!(c.subscribe("denied/x", QoS::AtLeastOnce)?, QoS::AtLeastOnce);
    assert_eq!(c.subscribe("ok/a", QoS::AtLeastOnce)?, QoS::AtLeastOnce);
    for t in ["denied/x", "ok/a"] {
        let tok = admin.publish(t, t.as_bytes(), QoS::AtLeastOnce, false)?;
        admin.wait_for_completion(tok, WAIT)?;
    }
    let (t, _) = common::recv(&c, WAIT)?;
    assert_eq!(t, "ok/a");
    assert!(c.receive(Duration::from_millis(300))?.is_none());
    assert!(c.is_connected());
    Ok(())
}

#[test]
fn refused_subscriptions_are_errors() -> anyhow::Result<()> {
    // A SUBACK return code 0x80, which Mosquitto 2.0 never sends to MQTT 3.1.1
    // clients, from a scripted server.
    let port = common::stub_mqtt_server()?;
    let c = Client::create(
        &format!("tcp://127.0.0.1:{port}"),
        &common::client_id("refuse"),
        Persistence::None,
    )?;
    c.connect(&common::options())?;
    let e = c.subscribe("refuse/x", QoS::AtLeastOnce).unwrap_err();
    assert_eq!(e, Error::SubscriptionRefused(vec!["refuse/x".to_owned()]));
    assert_eq!(e.code(), 0x80);
    let e = c
        .subscribe_many(&[
            ("ok/a", QoS::ExactlyOnce),
            ("refuse/b", QoS::AtMostOnce),
            ("ok/c", QoS::AtMostOnce),
        ])
        .unwrap_err();
    assert_eq!(e, Error::SubscriptionRefused(vec!["refuse/b".to_owned()]));
    assert_eq!(
        c.subscribe_many(&[("ok/a", QoS::ExactlyOnce), ("ok/b", QoS::AtMostOnce)])?,
        vec![QoS::ExactlyOnce, QoS::AtMostOnce]
    );
    c.unsubscribe_many(&["ok/a", "ok/b"])?;
    assert!(c.is_connected());
    Ok(())
}

#[test]
fn two_hundred_qos1_round_trips_are_fast() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = common::connect(&broker.uri(), "speed")?;
    let topic = common::topic("speed");
    let start = Instant::now();
    for i in 0..200u32 {
        let tok = c.publish(&topic, &i.to_be_bytes(), QoS::AtLeastOnce, false)?;
        c.wait_for_completion(tok, WAIT)?;
    }
    let took = start.elapsed();
    // About 20 ms on the reference machine; the C library's own
    // waitForCompletion polls in 100 ms steps and would need ~20 s.
    assert!(
        took < Duration::from_secs(2),
        "200 QoS 1 publish+wait took {took:?}"
    );
    Ok(())
}

/// The acknowledgements of a whole window arrive in one write, with a
/// message behind them. The bundled library reads them all with one `recv`
/// (fix 034) and must hand on what it read ahead without waiting for its next
/// poll, which nothing would wake (each would wait up to 100 ms for the
/// background thread's poll timeout: about 2 s for these 20).
#[test]
fn a_window_of_acknowledgements_in_one_write_completes_at_once() -> anyhow::Result<()> {
    use common::fake_broker::{pkt, FakeBroker, PUBACK, PUBLISH, SCRIPT_WAIT};
    const N: u16 = 20;
    let broker = FakeBroker::start(|l| {
        let (mut c, _) = l.accept_client()?;
        let mut bytes = Vec::new();
        for _ in 0..N {
            let id = c.expect(PUBLISH, SCRIPT_WAIT)?.packet_id()?;
            bytes.extend(pkt::ack(PUBACK, id));
        }
        bytes.extend(pkt::publish("window/back", b"behind the acks", 0, 0));
        c.write(&bytes)?;
        c.wait_closed(SCRIPT_WAIT);
        Ok(())
    })?;
    let opts = common::options()
        .reliable(false)
        .max_inflight_messages(u32::from(N));
    let c = common::connect_with(&broker.uri(), "onewrite", &opts)?;
    let mut tokens = Vec::new();
    for i in 0..N {
        tokens.push(c.publish("window/out", &i.to_be_bytes(), QoS::AtLeastOnce, false)?);
    }
    let t0 = Instant::now();
    for t in tokens {
        c.wait_for_completion(t, WAIT)?;
    }
    let (topic, msg) = c
        .receive(WAIT)?
        .ok_or_else(|| anyhow::anyhow!("no message behind the acknowledgements"))?;
    let took = t0.elapsed();
    assert_eq!(topic, "window/back");
    assert_eq!(msg.payload(), b"behind the acks");
    assert!(
        took < Duration::from_millis(900),
        "{N} acknowledgements and a message in one write took {took:?}"
    );
    c.disconnect(Duration::from_secs(1))?;
    broker.finish(WAIT)
}

#[test]
fn publishes_from_many_clients_with_file_persistence() -> anyhow::Result<()> {
    // Many clients in one process each with their own persistence directory.
    let broker = Broker::new()?;
    let sub = common::connect(&broker.uri(), "fpsub")?;
    let topic = common::topic("fp");
    sub.subscribe(&topic, QoS::AtLeastOnce)?;
    let dirs: Vec<common::TempDir> = (0..4)
        .map(|_| common::TempDir::new("fp"))
        .collect::<anyhow::Result<_>>()?;
    for (i, d) in dirs.iter().enumerate() {
        let c = Client::create(
            &broker.uri(),
            &common::client_id("fp"),
            Persistence::File(d.path().to_path_buf()),
        )?;
        c.connect(&common::options())?;
        let tok = c.publish(&topic, &[i as u8], QoS::AtLeastOnce, false)?;
        c.wait_for_completion(tok, WAIT)?;
    }
    let mut got: Vec<u8> = common::recv_n(&sub, 4, WAIT)?
        .into_iter()
        .map(|(_, m)| m.payload()[0])
        .collect();
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, 2, 3]);
    Ok(())
}

/// A connection that drops while `subscribe` / `unsubscribe` wait for the
/// broker's acknowledgement: the C library keeps waiting until the command
/// timeout and then fails (-1); it never hangs, and the client reconnects and
/// subscribes afterwards. (README, "Limitations of the C library that remain".)
#[test]
fn subscribe_interrupted_by_a_connection_loss_returns_by_the_command_timeout() -> anyhow::Result<()>
{
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    let c = common::connect(&proxy.uri(), "subloss")?;
    c.set_command_timeout(Duration::from_secs(5))?;
    let topic = common::topic("subloss");
    for unsubscribe in [false, true] {
        proxy.stall();
        let t0 = Instant::now();
        let r = std::thread::scope(|s| {
            let call = s.spawn(|| {
                if unsubscribe {
                    c.unsubscribe(&topic).map(drop)
                } else {
                    c.subscribe(&topic, QoS::AtLeastOnce).map(drop)
                }
            });
            std::thread::sleep(Duration::from_millis(300));
            proxy.cut();
            proxy.resume();
            call.join().expect("subscribe thread")
        });
        let took = t0.elapsed();
        assert!(
            r.is_err(),
            "a call whose acknowledgement never came succeeded"
        );
        assert!(took < Duration::from_secs(8), "returned after {took:?}");
        assert!(!c.is_connected());
        c.connect(&common::options())?;
        assert_eq!(c.subscribe(&topic, QoS::AtLeastOnce)?, QoS::AtLeastOnce);
    }
    Ok(())
}

#[test]
fn a_topic_that_is_not_utf8_is_dropped_not_mangled() -> anyhow::Result<()> {
    // A scripted server sends "nonutf8/\xff" and then "nonutf8/ok": the
    // first is a protocol error of the server and must not come out with a
    // replacement character (two topics could then look the same).
    let port = common::stub_mqtt_server()?;
    let c = Client::create(
        &format!("tcp://127.0.0.1:{port}"),
        &common::client_id("nonutf8"),
        Persistence::None,
    )?;
    c.connect(&common::options())?;
    c.subscribe("nonutf8/#", QoS::AtMostOnce)?;
    let (topic, msg) = common::recv(&c, WAIT)?;
    assert_eq!(
        (topic.as_str(), msg.payload()),
        ("nonutf8/ok", &b"good"[..])
    );
    assert!(c.receive(Duration::from_millis(200))?.is_none());
    Ok(())
}

#[test]
fn a_full_window_that_is_never_acknowledged_times_out_publishes() -> anyhow::Result<()> {
    // The scripted server never acknowledges a PUBLISH: with one message in
    // flight allowed (the default), the next publish waits for room up to
    // the command timeout instead of for ever.
    let port = common::stub_mqtt_server()?;
    let c = Client::create(
        &format!("tcp://127.0.0.1:{port}"),
        &common::client_id("noack"),
        Persistence::None,
    )?;
    c.connect(&common::options())?;
    c.set_command_timeout(Duration::from_secs(5))?;
    c.publish("noack/1", b"1", QoS::AtLeastOnce, false)?;
    for qos in [QoS::AtLeastOnce, QoS::AtMostOnce] {
        let t0 = Instant::now();
        let e = c.publish("noack/2", b"2", qos, false).unwrap_err();
        assert_eq!(e, Error::Timeout, "{qos:?}");
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(4) && waited < Duration::from_secs(60),
            "{qos:?}: waited {waited:?}"
        );
    }
    assert!(c.is_connected());
    Ok(())
}

#[test]
fn disconnect_reports_what_was_not_acknowledged() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    for clean in [true, false] {
        let c = common::create(&proxy.uri(), "unacked")?;
        c.connect(&common::options().clean_session(clean))?;
        proxy.stall();
        let tok = c.publish(&common::topic("unacked"), b"x", QoS::AtLeastOnce, false)?;
        let t0 = Instant::now();
        let r = c.disconnect(Duration::from_millis(300));
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert_eq!(
            r,
            Err(Error::Unacknowledged {
                tokens: vec![tok],
                will_resend: !clean
            }),
            "clean session {clean}"
        );
        assert_eq!(r.unwrap_err().code(), -3);
        assert!(!c.is_connected());
        proxy.resume();
    }
    // Nothing in flight: Ok.
    let c = common::connect(&broker.uri(), "acked")?;
    let tok = c.publish(&common::topic("acked"), b"x", QoS::AtLeastOnce, false)?;
    c.wait_for_completion(tok, WAIT)?;
    c.disconnect(Duration::from_secs(1))?;
    Ok(())
}
