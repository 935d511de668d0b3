//! Callback rules: client methods called inside message-arrived and
//! delivery-complete callbacks fail fast with `CalledFromCallback` instead of
//! deadlocking; a client dropped inside its own callbacks goes away cleanly;
//! panics in each callback kind are caught and reported once; a
//! message-arrived callback returning false gets the message again.
//! (Issue list: 10.)

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use common::{Broker, Proxy, WAIT};
use paho_mqtt_sync::{Callbacks, Client, DeliveryToken, Error, Message, Persistence, QoS};

type Report = Vec<(&'static str, Result<(), Error>, Duration)>;

/// Calls every client method that must refuse to run inside a library
/// callback, timing each.
fn call_everything(c: &Client, other: Option<&Client>, topic: &str) -> Report {
    let mut out: Report = Vec::new();
    let mut run = |name: &'static str, f: &dyn Fn() -> Result<(), Error>| {
        let t0 = Instant::now();
        let r = f();
        out.push((name, r, t0.elapsed()));
    };
    let opts = common::options();
    run("publish", &|| {
        c.publish(topic, b"x", QoS::AtLeastOnce, false).map(drop)
    });
    run("publish qos0", &|| {
        c.publish(topic, b"x", QoS::AtMostOnce, false).map(drop)
    });
    run("publish_message", &|| {
        c.publish_message(topic, &Message::new("x", QoS::ExactlyOnce, false))
            .map(drop)
    });
    run("subscribe", &|| {
        c.subscribe("cb/other", QoS::AtLeastOnce).map(drop)
    });
    run("subscribe_many", &|| {
        c.subscribe_many(&[("cb/a", QoS::AtMostOnce)]).map(drop)
    });
    run("unsubscribe", &|| c.unsubscribe("cb/other"));
    run("unsubscribe_many", &|| c.unsubscribe_many(&["cb/a"]));
    run("wait_for_completion", &|| {
        c.wait_for_completion(DeliveryToken::from_id(1), Duration::from_secs(5))
    });
    run("pending_delivery_tokens", &|| {
        c.pending_delivery_tokens().map(drop)
    });
    run("receive", &|| c.receive(Duration::from_secs(5)).map(drop));
    run("connect", &|| c.connect(&opts).map(drop));
    run("disconnect", &|| c.disconnect(Duration::from_secs(5)));
    run("set_command_timeout", &|| {
        c.set_command_timeout(Duration::from_secs(20))
    });
    run("create", &|| {
        Client::create("tcp://127.0.0.1:1", "inside", Persistence::None).map(drop)
    });
    if let Some(o) = other {
        run("other client publish", &|| {
            o.publish(topic, b"x", QoS::AtLeastOnce, false).map(drop)
        });
        run("other client subscribe", &|| {
            o.subscribe("cb/x", QoS::AtMostOnce).map(drop)
        });
    }
    out
}

fn check_report(report: &Report) {
    assert!(report.len() >= 14, "{report:?}");
    for (name, r, took) in report {
        assert_eq!(r, &Err(Error::CalledFromCallback), "{name}");
        assert!(*took < Duration::from_millis(100), "{name} took {took:?}");
    }
}

#[test]
fn client_methods_fail_fast_inside_message_arrived() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let other = Arc::new(common::connect(&broker.uri(), "other")?);
    let topic = common::topic("inmsg");
    let me: Arc<OnceLock<Weak<Client>>> = Arc::new(OnceLock::new());
    let (tx, rx) = mpsc::channel::<(Report, bool)>();
    let c = common::create(&broker.uri(), "inmsg")?;
    {
        let (me, other, topic) = (me.clone(), other.clone(), topic.clone());
        let tx = Mutex::new(Some(tx));
        c.set_callbacks(Callbacks::new().on_message_arrived(move |_, _| {
            if let Some(tx) = tx.lock().expect("lock").take() {
                let c = me.get().and_then(Weak::upgrade).expect("client alive");
                let report = call_everything(&c, Some(&other), &topic);
                let _ = tx.send((report, c.is_connected()));
            }
            true
        }))?;
    }
    c.connect(&common::options())?;
    let c = Arc::new(c);
    me.set(Arc::downgrade(&c)).expect("set once");
    c.subscribe(&topic, QoS::AtLeastOnce)?;
    c.publish(&topic, b"go", QoS::AtLeastOnce, false)?;
    let (report, connected) = rx.recv_timeout(WAIT)?;
    check_report(&report);
    assert!(connected, "is_connected works inside the callback");
    // Nothing was done by the refused calls, and the client works as before.
    assert!(c.is_connected());
    let tok = c.publish(&topic, b"after", QoS::AtLeastOnce, false)?;
    c.wait_for_completion(tok, WAIT)?;
    Ok(())
}

#[test]
fn client_methods_fail_fast_inside_delivery_complete() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let topic = common::topic("indc");
    let me: Arc<OnceLock<Weak<Client>>> = Arc::new(OnceLock::new());
    let (tx, rx) = mpsc::channel::<Report>();
    let c = common::create(&broker.uri(), "indc")?;
    {
        let (me, topic) = (me.clone(), topic.clone());
        let tx = Mutex::new(Some(tx));
        c.set_callbacks(Callbacks::new().on_delivery_complete(move |_| {
            if let Some(tx) = tx.lock().expect("lock").take() {
                let c = me.get().and_then(Weak::upgrade).expect("client alive");
                let _ = tx.send(call_everything(&c, None, &topic));
            }
        }))?;
    }
    c.connect(&common::options())?;
    let c = Arc::new(c);
    me.set(Arc::downgrade(&c)).expect("set once");
    let tok = c.publish(&topic, b"go", QoS::AtLeastOnce, false)?;
    let report = rx.recv_timeout(WAIT)?;
    check_report(&report);
    c.wait_for_completion(tok, WAIT)?;
    assert!(c.is_connected());
    let tok = c.publish(&topic, b"after", QoS::ExactlyOnce, false)?;
    c.wait_for_completion(tok, WAIT)?;
    Ok(())
}

#[test]
fn dropping_the_client_inside_its_message_callback() -> anyhow::Result<()> {
    let _w = common::watchdog("drop_in_msg_cb", Duration::from_secs(60));
    let broker = Broker::new()?;
    let observer = common::connect(&broker.uri(), "dobs")?;
    let will = common::topic("dwill");
    observer.subscribe(&will, QoS::AtLeastOnce)?;
    let topic = common::topic("dmsg");

    let holder: Arc<Mutex<Option<Client>>> = Arc::new(Mutex::new(None));
    let (tx, rx) = mpsc::channel::<Duration>();
    let c = common::create(&broker.uri(), "dmsg")?;
    let id = c.client_id().to_owned();
    {
        let holder = holder.clone();
        c.set_callbacks(Callbacks::new().on_message_arrived(move |_, _| {
            let t0 = Instant::now();
            let taken = holder.lock().expect("lock").take();
            drop(taken);
            let _ = tx.send(t0.elapsed());
            true
        }))?;
    }
    c.connect(&common::options().will(paho_mqtt_sync::WillOptions::new(&will, "died")))?;
    c.subscribe(&topic, QoS::AtLeastOnce)?;
    *holder.lock().expect("lock") = Some(c);

    observer.publish(&topic, b"drop yourself", QoS::AtLeastOnce, false)?;
    let took = rx.recv_timeout(WAIT)?;
    assert!(
        took < Duration::from_secs(1),
        "the drop blocked the callback for {took:?}"
    );
    assert!(holder.lock().expect("lock").is_none());
    // The broker saw a clean DISCONNECT, hence no will.
    assert!(
        broker.wait_for_log(&format!("Client {id} disconnected."), WAIT),
        "the broker never saw the dropped client disconnect"
    );
    let got = common::until_marker(&observer, &observer)?;
    assert!(got.is_empty(), "{got:?}");
    // The library's callback thread still serves other clients.
    let (tx2, rx2) = mpsc::channel::<Vec<u8>>();
    let next = common::create(&broker.uri(), "dnext")?;
    next.set_callbacks(
        Callbacks::new().on_message_arrived(move |_, m| tx2.send(m.payload().to_vec()).is_ok()),
    )?;
    next.connect(&common::options())?;
    next.subscribe(&topic, QoS::AtLeastOnce)?;
    observer.publish(&topic, b"still alive", QoS::AtLeastOnce, false)?;
    assert_eq!(rx2.recv_timeout(WAIT)?, b"still alive");
    Ok(())
}

#[test]
fn dropping_the_client_inside_its_delivery_and_connection_lost_callbacks() -> anyhow::Result<()> {
    let _w = common::watchdog("drop_in_dc_cl", Duration::from_secs(60));
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    let topic = common::topic("ddc");

    // Delivery complete.
    let holder: Arc<Mutex<Option<Client>>> = Arc::new(Mutex::new(None));
    let (tx, rx) = mpsc::channel::<bool>();
    let c = common::create(&broker.uri(), "ddc")?;
    let id = c.client_id().to_owned();
    {
        let holder = holder.clone();
        c.set_callbacks(Callbacks::new().on_delivery_complete(move |_| {
            let taken = holder.lock().expect("lock").take();
            let _ = tx.send(taken.is_some());
            drop(taken);
        }))?;
    }
    c.connect(&common::options())?;
    *holder.lock().expect("lock") = Some(c);
    {
        let guard = holder.lock().expect("lock");
        let c = guard.as_ref().expect("just stored");
        c.publish(&topic, b"x", QoS::AtLeastOnce, false)?;
    }
    assert!(
        rx.recv_timeout(WAIT)?,
        "the callback found no client to drop"
    );
    assert!(holder.lock().expect("lock").is_none());
    assert!(
        broker.wait_for_log(&format!("Client {id} disconnected."), WAIT),
        "the broker never saw the client dropped in delivery-complete go"
    );

    // Connection lost.
    let holder: Arc<Mutex<Option<Client>>> = Arc::new(Mutex::new(None));
    let (tx, rx) = mpsc::channel::<()>();
    let c = common::create(&proxy.uri(), "dcl")?;
    {
        let holder = holder.clone();
        c.set_callbacks(Callbacks::new().on_connection_lost(move |_| {
            drop(holder.lock().expect("lock").take());
            let _ = tx.send(());
        }))?;
    }
    c.connect(&common::options())?;
    *holder.lock().expect("lock") = Some(c);
    proxy.cut();
    rx.recv_timeout(WAIT)?;
    assert!(holder.lock().expect("lock").is_none());
    // Everything still works.
    let d = common::connect(&broker.uri(), "dafter")?;
    d.subscribe(&topic, QoS::AtLeastOnce)?;
    d.publish(&topic, b"ok", QoS::AtLeastOnce, false)?;
    assert_eq!(common::recv(&d, WAIT)?.1.payload(), b"ok");
    Ok(())
}

/// Polls a side-effect-free method until it reports the panic a callback
/// recorded (the callback may still be unwinding when its counter moved).
fn panic_report(c: &Client) -> anyhow::Result<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        match c.pending_delivery_tokens() {
            Err(Error::CallbackPanicked(text)) => return Ok(text),
            Err(e) => anyhow::bail!("expected CallbackPanicked, got {e:?}"),
            Ok(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(_) => anyhow::bail!("no panic reported"),
        }
    }
}

#[test]
fn panic_in_message_arrived_is_reported_once_and_not_redelivered() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let topic = common::topic("pma");
    let boom_calls = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let c = common::create(&broker.uri(), "pma")?;
    {
        let boom_calls = boom_calls.clone();
        c.set_callbacks(Callbacks::new().on_message_arrived(move |_, m| {
            if m.payload() == b"boom" {
                boom_calls.fetch_add(1, SeqCst);
                panic!("boom in message-arrived");
            }
            tx.send(m.payload().to_vec()).is_ok()
        }))?;
    }
    c.connect(&common::options())?;
    c.subscribe(&topic, QoS::AtLeastOnce)?;
    let tok = c.publish(&topic, b"boom", QoS::AtLeastOnce, false)?;
    assert!(common::wait_until(WAIT, || boom_calls.load(SeqCst) == 1));
    // The next call reports the panic, once.
    let text = panic_report(&c)?;
    assert!(text.contains("boom in message-arrived"), "{text}");
    c.wait_for_completion(tok, WAIT)?;
    // The process and the client keep working, and "boom" is not redelivered.
    c.publish(&topic, b"fine", QoS::AtLeastOnce, false)?;
    assert_eq!(rx.recv_timeout(WAIT)?, b"fine");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(boom_calls.load(SeqCst), 1);
    assert!(c.is_connected());
    Ok(())
}

#[test]
fn panic_in_delivery_complete_is_reported() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let topic = common::topic("pdc");
    let calls = Arc::new(AtomicUsize::new(0));
    let c = common::create(&broker.uri(), "pdc")?;
    {
        let calls = calls.clone();
        c.set_callbacks(Callbacks::new().on_delivery_complete(move |_| {
            if calls.fetch_add(1, SeqCst) == 0 {
                panic!("boom in delivery-complete");
            }
        }))?;
    }
    c.connect(&common::options())?;
    c.publish(&topic, b"1", QoS::AtLeastOnce, false)?;
    assert!(common::wait_until(WAIT, || calls.load(SeqCst) == 1));
    let text = panic_report(&c)?;
    assert!(text.contains("boom in delivery-complete"), "{text}");
    // Reported once; the token bookkeeping survived the panic.
    let tok = c.publish(&topic, b"2", QoS::AtLeastOnce, false)?;
    c.wait_for_completion(tok, WAIT)?;
    assert!(c.pending_delivery_tokens()?.is_empty());
    assert_eq!(calls.load(SeqCst), 2);
    Ok(())
}

#[test]
fn panic_in_connection_lost_is_reported() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = common::create(&proxy.uri(), "pcl")?;
    {
        let calls = calls.clone();
        c.set_callbacks(Callbacks::new().on_connection_lost(move |_| {
            calls.fetch_add(1, SeqCst);
            panic!("boom in connection-lost");
        }))?;
    }
    c.connect(&common::options())?;
    proxy.cut();
    assert!(common::wait_until(WAIT, || calls.load(SeqCst) == 1));
    let text = panic_report(&c)?;
    assert!(text.contains("boom in connection-lost"), "{text}");
    c.connect(&common::options())?;
    let topic = common::topic("pcl");
    c.subscribe(&topic, QoS::AtLeastOnce)?;
    c.publish(&topic, b"back", QoS::AtLeastOnce, false)?;
    assert_eq!(common::recv(&c, WAIT)?.1.payload(), b"back");
    Ok(())
}

/// A refused message is offered again when the library's thread next finds
/// data on this client's socket (MQTTClient.c, MQTTClient_run): on an idle
/// connection that is the next PINGRESP, so this test uses a 1 s keepalive
/// (checked at an interval other tests' connects can stretch to 1 s, hence
/// the 5 s bound). Later messages wait behind the refused one.
#[test]
fn returning_false_gets_the_same_message_again() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let topic = common::topic("again");
    let (tx, rx) = mpsc::channel::<(Vec<u8>, QoS, i32, Instant)>();
    let c = common::create(&broker.uri(), "again")?;
    let mut refused = std::collections::HashSet::new();
    c.set_callbacks(Callbacks::new().on_message_arrived(move |_, m| {
        let _ = tx.send((m.payload().to_vec(), m.qos(), m.msgid(), Instant::now()));
        // Refuse each payload the first time it comes.
        !refused.insert(m.payload().to_vec())
    }))?;
    c.connect(&common::options().keep_alive_interval(Duration::from_secs(1)))?;
    c.subscribe(&topic, QoS::ExactlyOnce)?;
    let publisher = common::connect(&broker.uri(), "againpub")?;
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let payload = format!("again {i}").into_bytes();
        let tok = publisher.publish(&topic, &payload, qos, false)?;
        publisher.wait_for_completion(tok, WAIT)?;
        let first = rx.recv_timeout(WAIT)?;
        let second = rx.recv_timeout(Duration::from_secs(5))?;
        assert_eq!(
            (&first.0, first.1, first.2),
            (&second.0, second.1, second.2),
            "the same message (payload, QoS, packet id) again"
        );
        assert_eq!((first.0.as_slice(), first.1), (payload.as_slice(), qos));
        assert!(second.3 - first.3 < Duration::from_secs(5));
    }
    // Order is kept: a refused message holds back the ones behind it.
    for p in [&b"x1"[..], b"x2"] {
        let tok = publisher.publish(&topic, p, QoS::AtLeastOnce, false)?;
        publisher.wait_for_completion(tok, WAIT)?;
    }
    let order: Vec<Vec<u8>> = (0..4)
        .map(|_| rx.recv_timeout(Duration::from_secs(5)).map(|m| m.0))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        order,
        [
            b"x1".to_vec(),
            b"x1".to_vec(),
            b"x2".to_vec(),
            b"x2".to_vec()
        ]
    );
    assert!(
        rx.recv_timeout(Duration::from_millis(1500)).is_err(),
        "delivered a third time"
    );
    Ok(())
}
