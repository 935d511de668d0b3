//! Automatic reconnect (`ConnectOptions::automatic_reconnect`), the
//! `on_connected` and `on_reconnect_stopped` callbacks, and `set_callbacks`
//! on a client shared in an `Arc`. (Issue list: 15.)

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Broker, Proxy, WAIT};
use paho_mqtt_sync::{Callbacks, ConnectOptions, Error, MqttVersion, QoS};

const MIN: Duration = Duration::from_millis(100);
const MAX: Duration = Duration::from_secs(2);

fn auto() -> ConnectOptions {
    common::options()
        .mqtt_version(MqttVersion::V3_1_1)
        .automatic_reconnect(MIN, MAX)
}

#[test]
fn invalid_backoff_is_an_error_before_connecting() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = common::create(&broker.uri(), "badbackoff")?;
    for (min, max) in [(Duration::ZERO, MAX), (MAX, MIN)] {
        let r = c.connect(&common::options().automatic_reconnect(min, max));
        assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    }
    assert!(!c.is_connected());
    Ok(())
}

/// Every connect runs `on_connected`, the first and each automatic one; a
/// callback holding a `Weak` to the shared client resubscribes there.
#[test]
fn reconnects_after_cuts_and_resubscribes_from_on_connected() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    let c = Arc::new(common::create(&proxy.uri(), "auto")?);
    let topic = common::topic("auto");
    let connects = Arc::new(AtomicUsize::new(0));
    let (weak, t, n) = (Arc::downgrade(&c), topic.clone(), connects.clone());
    // set_callbacks takes &self: the client is already shared.
    c.set_callbacks(Callbacks::new().on_connected(move |r| {
        if let Some(c) = weak.upgrade() {
            assert!(!r.session_present(), "clean session");
            c.subscribe(&t, QoS::AtLeastOnce).expect("resubscribe");
        }
        // Counted once the subscription is acknowledged: the test publishes
        // as soon as it sees the count (under qemu the SUBACK can lag).
        n.fetch_add(1, SeqCst);
    }))?;
    c.connect(&auto())?;
    assert_eq!(connects.load(SeqCst), 1);
    let publisher = common::connect(&broker.uri(), "autopub")?;
    for round in 1..=3 {
        proxy.cut();
        assert!(common::wait_until(WAIT, || !c.is_connected()));
        let t0 = Instant::now();
        assert!(
            common::wait_until(MAX + WAIT, || connects.load(SeqCst) == round + 1),
            "no automatic reconnect after cut {round}"
        );
        assert!(c.is_connected());
        assert!(
            t0.elapsed() < MAX + Duration::from_secs(1),
            "{:?}",
            t0.elapsed()
        );
        // The subscription made in on_connected works.
        let payload = format!("after cut {round}");
        publisher.publish(&topic, payload.as_bytes(), QoS::AtLeastOnce, false)?;
        let (_, m) = common::recv(&c, WAIT)?;
        assert_eq!(m.payload(), payload.as_bytes());
    }
    Ok(())
}

/// The backoff doubles while attempts fail and starts again at the minimum
/// after the next loss; a broker that comes back is found within `max`.
#[test]
fn keeps_trying_while_the_broker_is_down() -> anyhow::Result<()> {
    let mut broker = Broker::new()?;
    let c = common::create(&broker.uri(), "down")?;
    c.connect(&auto())?;
    broker.stop()?;
    assert!(common::wait_until(WAIT, || !c.is_connected()));
    std::thread::sleep(Duration::from_secs(3));
    assert!(!c.is_connected());
    broker.start()?;
    let t0 = Instant::now();
    assert!(
        common::wait_until(MAX + WAIT, || c.is_connected()),
        "not reconnected after the broker came back"
    );
    assert!(
        t0.elapsed() < MAX + Duration::from_secs(2),
        "{:?}",
        t0.elapsed()
    );
    Ok(())
}

/// A refused CONNACK stops the automatic reconnect and is reported once.
#[test]
fn a_refused_reconnect_stops_and_is_reported() -> anyhow::Result<()> {
    let open = Broker::new()?;
    let locked = Broker::builder().user("u", "p").start()?;
    let proxy = Proxy::new(open.port())?;
    let c = common::create(&proxy.uri(), "refusedre")?;
    let stopped = Arc::new(Mutex::new(Vec::new()));
    let s = stopped.clone();
    c.set_callbacks(
        Callbacks::new().on_reconnect_stopped(move |e| s.lock().unwrap().push(e.clone())),
    )?;
    c.connect(&auto())?;
    // The next connections reach a broker that does not know this client.
    proxy.set_target_port(locked.port());
    proxy.cut();
    assert!(common::wait_until(WAIT, || !stopped
        .lock()
        .unwrap()
        .is_empty()));
    let errors = stopped.lock().unwrap().clone();
    assert!(
        matches!(errors.as_slice(), [Error::ConnectionRefused(_)]),
        "{errors:?}"
    );
    let accepted = proxy.accepted();
    std::thread::sleep(MIN * 10);
    assert_eq!(proxy.accepted(), accepted, "it went on trying");
    assert!(!c.is_connected());
    Ok(())
}

/// `disconnect()` and drop during a reconnect wait return promptly and stop it.
#[test]
fn disconnect_and_drop_stop_a_waiting_reconnect() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    // A long minimum wait: the reconnect thread is waiting when we stop it.
    let slow = auto().automatic_reconnect(Duration::from_secs(30), Duration::from_secs(60));
    for drop_it in [false, true] {
        let c = common::create(&proxy.uri(), "stopre")?;
        c.connect(&slow)?;
        proxy.cut();
        assert!(common::wait_until(WAIT, || !c.is_connected()));
        let accepted = proxy.accepted();
        let t0 = Instant::now();
        if drop_it {
            drop(c);
        } else {
            c.disconnect(Duration::ZERO)?;
            assert!(!c.is_connected());
        }
        assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(proxy.accepted(), accepted, "a reconnect after the stop");
    }
    Ok(())
}

/// The broker restarts on the same port while another thread publishes QoS 1
/// every 10 ms: no panic, every publish acknowledged or reported failed, and
/// the client connected again within `max` + 1 s of the broker's return.
#[test]
fn publishing_through_a_broker_restart() -> anyhow::Result<()> {
    let mut broker = Broker::new()?;
    let c = Arc::new(common::create(&broker.uri(), "restartpub")?);
    c.connect(&auto())?;
    let topic = common::topic("restartpub");
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (c, stop, topic) = (c.clone(), stop.clone(), topic.clone());
        std::thread::spawn(move || -> (usize, usize) {
            let (mut acked, mut failed) = (0, 0);
            while !stop.load(SeqCst) {
                let r = c
                    .publish(&topic, b"x", QoS::AtLeastOnce, false)
                    .and_then(|t| c.wait_for_completion(t, Duration::from_secs(5)));
                match r {
                    Ok(()) => acked += 1,
                    Err(_) => failed += 1,
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            (acked, failed)
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    broker.stop()?;
    std::thread::sleep(Duration::from_secs(1));
    broker.start()?;
    let t0 = Instant::now();
    let back = common::wait_until(MAX + WAIT, || c.is_connected());
    let took = t0.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, SeqCst);
    let (acked, failed) = publisher.join().expect("the publisher thread panicked");
    assert!(back, "not connected again");
    assert!(took < MAX + Duration::from_secs(1), "{took:?}");
    assert!(acked > 20 && failed > 0, "acked {acked}, failed {failed}");
    Ok(())
}

/// Automatic reconnect into a persistent session through 20 cuts: every
/// QoS 1 message arrives at least once, every QoS 2 message exactly once.
fn through_cuts(qos: QoS) -> anyhow::Result<()> {
    const N: usize = 120;
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    let sub = common::create(&proxy.uri(), "autocuts")?;
    let topic = common::topic("autocuts");
    sub.connect(&auto().clean_session(false))?;
    sub.subscribe(&topic, qos)?;
    let rx = sub.start_consuming();
    let publisher = common::connect(&broker.uri(), "autocutspub")?;
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut cuts = 0;
    for i in 0..N {
        let tok = publisher.publish(&topic, format!("m{i:04}").as_bytes(), qos, false)?;
        publisher.wait_for_completion(tok, WAIT)?;
        if i % (N / 20) == N / 40 {
            proxy.cut();
            cuts += 1;
        }
        while let Ok((_, m)) = rx.try_recv() {
            *counts.entry(m.payload_str()?.to_owned()).or_default() += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while counts.len() < N && Instant::now() < deadline {
        if let Ok((_, m)) = rx.recv_timeout(Duration::from_millis(200)) {
            *counts.entry(m.payload_str()?.to_owned()).or_default() += 1;
        }
    }
    // Anything still on its way (a last redelivery) arrives before this.
    while let Ok((_, m)) = rx.recv_timeout(Duration::from_millis(500)) {
        *counts.entry(m.payload_str()?.to_owned()).or_default() += 1;
    }
    assert_eq!(cuts, 20);
    let missing: Vec<usize> = (0..N)
        .filter(|i| !counts.contains_key(&format!("m{i:04}")))
        .collect();
    assert!(missing.is_empty(), "{qos:?}: missing {missing:?}");
    if qos == QoS::ExactlyOnce {
        let dups: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
        assert!(dups.is_empty(), "QoS 2 duplicates: {dups:?}");
    }
    Ok(())
}

#[test]
fn qos1_at_least_once_through_automatic_reconnects() -> anyhow::Result<()> {
    through_cuts(QoS::AtLeastOnce)
}

#[test]
fn qos2_exactly_once_through_automatic_reconnects() -> anyhow::Result<()> {
    through_cuts(QoS::ExactlyOnce)
}
