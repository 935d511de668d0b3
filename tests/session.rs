//! Sessions: persistent sessions keep subscriptions and queue QoS 1/2
//! messages while the client is away (also across a broker restart with
//! persistence), `session_present()`, clean sessions, and QoS 2 exactly-once
//! (and QoS 1 at-least-once) delivery while the connection is cut again and
//! again. (Issue list: 3.)

mod common;

use std::collections::BTreeMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{Broker, Proxy, WAIT};
use paho_mqtt_sync::{Client, ConnectOptions, Error, MqttVersion, Persistence, QoS};

/// A persistent session, MQTT 3.1.1 only (`MqttVersion::Default` would fall
/// back to 3.1 after a failed attempt, where `session_present` is always false).
fn persistent() -> ConnectOptions {
    common::options()
        .clean_session(false)
        .mqtt_version(MqttVersion::V3_1_1)
}

/// Publishes `n` messages numbered `0..n` to `topic` and waits for each.
fn publish_numbered(c: &Client, topic: &str, n: u32, qos: QoS) -> anyhow::Result<()> {
    for i in 0..n {
        let tok = c.publish(topic, i.to_string().as_bytes(), qos, false)?;
        c.wait_for_completion(tok, WAIT)?;
    }
    Ok(())
}

#[test]
fn offline_messages_arrive_after_reconnect() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let id = common::client_id("offline");
    let sub = Client::create(&broker.uri(), &id, Persistence::None)?;
    let r = sub.connect(&persistent())?;
    assert!(!r.session_present(), "a new session");
    let base = common::topic("off");
    let (t1, t2) = (format!("{base}/q1"), format!("{base}/q2"));
    sub.subscribe_many(&[
        (t1.as_str(), QoS::AtLeastOnce),
        (t2.as_str(), QoS::ExactlyOnce),
    ])?;
    sub.disconnect(Duration::from_secs(1))?;
    assert!(!sub.is_connected());

    let publisher = common::connect(&broker.uri(), "offpub")?;
    publish_numbered(&publisher, &t1, 20, QoS::AtLeastOnce)?;
    publish_numbered(&publisher, &t2, 20, QoS::ExactlyOnce)?;
    // QoS 0 messages are not queued for offline clients by default.
    publisher.publish(&t1, b"qos0", QoS::AtMostOnce, false)?;

    let r = sub.connect(&persistent())?;
    assert!(r.session_present(), "the broker kept the session");
    let got = common::recv_n(&sub, 40, WAIT)?;
    let mut q1 = Vec::new();
    let mut q2 = Vec::new();
    for (t, m) in &got {
        let n: u32 = m.payload_str()?.parse()?;
        if *t == t1 {
            assert_eq!(m.qos(), QoS::AtLeastOnce);
            q1.push(n);
        } else {
            assert_eq!(*t, t2);
            assert_eq!(m.qos(), QoS::ExactlyOnce);
            q2.push(n);
        }
    }
    // In order, each once.
    assert_eq!(q1, (0..20).collect::<Vec<_>>());
    assert_eq!(q2, (0..20).collect::<Vec<_>>());
    let rest = common::until_marker(&sub, &publisher)?;
    assert!(rest.is_empty(), "extra messages: {rest:?}");
    Ok(())
}

#[test]
fn clean_session_has_no_session_present_and_discards_the_old_one() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let id = common::client_id("clean");
    let c = Client::create(&broker.uri(), &id, Persistence::None)?;
    let topic = common::topic("clean");
    assert!(!c.connect(&persistent())?.session_present());
    c.subscribe(&topic, QoS::AtLeastOnce)?;
    c.disconnect(Duration::from_secs(1))?;
    assert!(c.connect(&persistent())?.session_present());
    c.disconnect(Duration::from_secs(1))?;

    // A clean session never reports a session, and ends the stored one.
    assert!(!c.connect(&common::options())?.session_present());
    c.disconnect(Duration::from_secs(1))?;
    assert!(!c.connect(&persistent())?.session_present());
    // ... including its subscription.
    let publisher = common::connect(&broker.uri(), "cleanpub")?;
    publisher.publish(&topic, b"x", QoS::AtLeastOnce, false)?;
    let got = common::until_marker(&c, &publisher)?;
    assert!(got.is_empty(), "{got:?}");
    Ok(())
}

#[test]
fn session_survives_a_broker_restart_with_persistence() -> anyhow::Result<()> {
    let mut broker = Broker::builder().persistence(true).start()?;
    let id = common::client_id("restart");
    let topic = common::topic("restart");
    let sub = Client::create(&broker.uri(), &id, Persistence::None)?;
    sub.connect(&persistent())?;
    sub.subscribe(&topic, QoS::ExactlyOnce)?;
    sub.disconnect(Duration::from_secs(1))?;

    broker.restart()?;
    let publisher = common::connect(&broker.uri(), "rspub")?;
    publish_numbered(&publisher, &topic, 3, QoS::ExactlyOnce)?;
    broker.restart()?;

    let r = sub.connect(&persistent())?;
    assert!(r.session_present());
    let got: Vec<String> = common::recv_n(&sub, 3, WAIT)?
        .into_iter()
        .map(|(_, m)| m.payload_str().map(str::to_owned))
        .collect::<Result<_, _>>()?;
    assert_eq!(got, ["0", "1", "2"]);
    Ok(())
}

/// Keeps `sub` (connected through `proxy`, persistent session) receiving
/// until `want` messages with distinct payloads arrived or `deadline`;
/// reconnects after every connection loss. Returns how often each payload came.
fn receive_through_cuts(
    sub: &Client,
    want: usize,
    deadline: Instant,
) -> anyhow::Result<(BTreeMap<String, Vec<bool>>, usize)> {
    let mut seen: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    let mut reconnects = 0;
    while seen.len() < want {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {want} distinct messages arrived",
            seen.len()
        );
        match sub.receive(Duration::from_millis(200)) {
            Ok(Some((_, m))) => seen
                .entry(m.payload_str()?.to_owned())
                .or_default()
                .push(m.dup()),
            Ok(None) => {}
            Err(Error::Disconnected) => {
                // Connection lost: reconnect, keeping the session.
                match sub.connect(&persistent()) {
                    Ok(r) => {
                        assert!(r.session_present(), "no session after a cut: {r:?}");
                        reconnects += 1;
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok((seen, reconnects))
}

/// Cuts every connection through `proxy` every `period`, at most `max`
/// times, until [`Cutter::stop`]. The stop flag is checked and the cut made
/// under one lock, so once `stop` has returned no cut can follow (a cutter
/// that checked, slept, then cut could cut the connection after the test had
/// moved on, which made `until_marker` fail with `Disconnected`).
struct Cutter {
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Cutter {
    fn new() -> Cutter {
        Cutter {
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    /// Runs on the cutting thread; returns the number of cuts made.
    fn run(&self, proxy: &Proxy, period: Duration, max: usize) -> usize {
        let mut cuts = 0;
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        while cuts < max {
            stopped = self
                .wake
                .wait_timeout_while(stopped, period, |s| !*s)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            if *stopped {
                break;
            }
            proxy.cut();
            cuts += 1;
        }
        cuts
    }

    /// No cut starts after this returns (one in progress has finished).
    fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_all();
    }
}

/// After the cutter stopped: a cut made just before may not have reached the
/// client yet (it reads the EOF on its own thread). The proxy knows: the
/// client's connection is its only link, so no open link means the
/// connection is gone. Then wait until the client has seen the loss and
/// reconnect into the session.
fn reconnect_if_cut(sub: &Client, proxy: &Proxy) -> anyhow::Result<()> {
    if proxy.connections() > 0 {
        return Ok(());
    }
    anyhow::ensure!(
        common::wait_until(WAIT, || !sub.is_connected()),
        "the proxy closed the connection, but the client still reports it connected after {WAIT:?}"
    );
    let r = sub.connect(&persistent())?;
    anyhow::ensure!(r.session_present(), "no session after the last cut: {r:?}");
    Ok(())
}

fn delivery_through_cuts(qos: QoS) -> anyhow::Result<()> {
    const N: usize = 200;
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    let sub = Client::create(&proxy.uri(), &common::client_id("cuts"), Persistence::None)?;
    sub.connect(&persistent())?;
    let topic = common::topic("cuts");
    sub.subscribe(&topic, qos)?;

    let cutter = Cutter::new();
    let (seen, reconnects, cuts) = std::thread::scope(|s| -> anyhow::Result<_> {
        let cutting = s.spawn(|| cutter.run(&proxy, Duration::from_millis(80), 6));
        let publisher = s.spawn(|| -> anyhow::Result<()> {
            let p = common::connect(&broker.uri(), "cutpub")?;
            for i in 0..N {
                let tok = p.publish(&topic, format!("m{i:04}").as_bytes(), qos, false)?;
                p.wait_for_completion(tok, WAIT)?;
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(())
        });
        // Only reached when messages go missing: generous for a loaded
        // machine or qemu.
        let received = receive_through_cuts(&sub, N, Instant::now() + Duration::from_secs(60));
        cutter.stop();
        let cuts = cutting.join().expect("cutter thread");
        publisher.join().expect("publisher thread")?;
        let (seen, reconnects) = received?;
        Ok((seen, reconnects, cuts))
    })?;
    assert!(cuts >= 2, "only {cuts} cuts happened while receiving");
    assert!(reconnects >= 1, "the connection was never cut");
    // Nothing else arrives later either. (`late` first, so the reconnect is
    // not the process's only client coming back right after a loss.)
    let late = common::connect(&broker.uri(), "cutlate")?;
    reconnect_if_cut(&sub, &proxy)?;
    let extra = common::until_marker(&sub, &late)?;
    let mut counts = seen;
    for (_, m) in extra {
        counts
            .entry(m.payload_str()?.to_owned())
            .or_default()
            .push(m.dup());
    }
    assert_eq!(counts.len(), N);
    for (payload, copies) in &counts {
        match qos {
            QoS::ExactlyOnce => assert_eq!(
                copies.len(),
                1,
                "{payload} delivered {} times",
                copies.len()
            ),
            _ => assert!(
                copies.len() == 1 || copies[1..].iter().all(|&dup| dup),
                "{payload}: a redelivery without the DUP flag: {copies:?}"
            ),
        }
    }
    Ok(())
}

#[test]
fn qos2_exactly_once_across_connection_cuts() -> anyhow::Result<()> {
    delivery_through_cuts(QoS::ExactlyOnce)
}

#[test]
fn qos1_at_least_once_across_connection_cuts() -> anyhow::Result<()> {
    delivery_through_cuts(QoS::AtLeastOnce)
}

#[test]
fn default_version_falls_back_to_3_1_and_hides_the_session() -> anyhow::Result<()> {
    // Paho C's MQTTVERSION_DEFAULT: when the 3.1.1 attempt fails at the
    // socket level, it tries again with 3.1, whose CONNACK has no
    // session-present flag. The session is there, but session_present()
    // says false.
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    let id = common::client_id("fallbk");
    let c = Client::create(&proxy.uri(), &id, Persistence::None)?;
    let opts = common::options().clean_session(false);
    c.connect(&opts)?;
    let topic = common::topic("fallbk");
    c.subscribe(&topic, QoS::AtLeastOnce)?;
    c.disconnect(Duration::from_secs(1))?;
    let publisher = common::connect(&broker.uri(), "fbpub")?;
    publish_numbered(&publisher, &topic, 1, QoS::AtLeastOnce)?;

    proxy.refuse_next(1);
    let r = c.connect(&opts)?;
    // The refused 3.1.1 attempt, the crate's one probe connection that
    // tells a protocol rejection from a network failure, then the 3.1 one.
    assert_eq!(
        proxy.accepted(),
        4,
        "one refused attempt, a probe, then 3.1"
    );
    assert_eq!(r.mqtt_version(), MqttVersion::V3_1);
    assert!(!r.session_present());
    // ... yet the session and its queued message were there.
    assert_eq!(common::recv(&c, WAIT)?.1.payload(), b"0");
    Ok(())
}
