//! The C library's process-wide lifecycle seen through the binding: its one
//! background thread (`MQTTClient_run`), started by the first connect and
//! stopped when no client is connected, and its global state, freed when the
//! last client is destroyed (`MQTTClient_terminate`). Client ids and
//! threads are independent in the binding's API (`Client` is `Send + Sync`,
//! clients of one process know nothing of each other), so none of this may
//! leak into what a user sees.
//!
//! These tests run WITHOUT the harness's library pin (see tests/common), each
//! race in a child process of its own (this test binary, re-run with an
//! environment variable), so a crash is reported as a failure instead of
//! killing the other tests. They also check Paho C's timeout arithmetic.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Broker, SilentServer};
use paho_mqtt_sync::{Client, ConnectOptions, Persistence, QoS};

const CHILD: &str = "PAHO_SYNC_LIFECYCLE_CHILD";

/// In the parent: re-runs test `name` of this binary in a child process and
/// fails unless it exits successfully within `limit`. In the child: runs `body`.
fn in_child(name: &str, limit: Duration, body: fn() -> anyhow::Result<()>) -> anyhow::Result<()> {
    if std::env::var_os(CHILD).is_some() {
        return body();
    }
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            name,
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            anyhow::bail!(
                "child still running after {limit:?} (hang):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.success(),
        "child process failed: {status}\n--- stdout\n{stdout}\n--- stderr\n{}",
        stderr
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(())
}

fn unpinned_broker() -> anyhow::Result<Broker> {
    Broker::builder()
        .user("u", "p")
        .without_library_pin()
        .start()
}

fn good() -> ConnectOptions {
    common::options()
        .username("u")
        .password("p")
        .connect_timeout(Duration::from_secs(3))
}

/// Client A connects and disconnects in a loop (each disconnect of the only
/// connected client tells the library's background thread to stop) while the
/// test thread connects client B again and again.
fn connect_during_disconnect_body() -> anyhow::Result<()> {
    let broker = unpinned_broker()?;
    let stop = Arc::new(AtomicBool::new(false));
    let uri = broker.uri();
    let s = stop.clone();
    let churn = std::thread::spawn(move || -> anyhow::Result<()> {
        let a = Client::create(&uri, &common::client_id("churn"), Persistence::None)?;
        while !s.load(SeqCst) {
            let t0 = Instant::now();
            a.connect(&good()).map_err(|e| {
                anyhow::anyhow!(
                    "connect of the churning client failed after {:?}: {e:?}",
                    t0.elapsed()
                )
            })?;
            a.disconnect(Duration::ZERO)?;
        }
        Ok(())
    });
    let mut result = Ok(());
    let deadline = Instant::now() + Duration::from_secs(8);
    let mut attempts = 0;
    while Instant::now() < deadline {
        attempts += 1;
        let b = Client::create(&broker.uri(), &common::client_id("b"), Persistence::None)?;
        let t0 = Instant::now();
        if let Err(e) = b.connect(&good()) {
            result = Err(anyhow::anyhow!(
                "connect #{attempts} of a second client failed after {:?}: {e:?} \
                 (a healthy broker on loopback)",
                t0.elapsed()
            ));
            break;
        }
    }
    stop.store(true, SeqCst);
    let churn_result = churn.join().expect("churn thread");
    result?;
    // The churning client can hit the same race.
    churn_result
}

/// BUG (Paho C 1.3.16 MQTTClient.c, surfaced by the binding): when the last
/// connected client disconnects, `MQTTClient_stop` sets `tostop` and waits
/// for the background thread with the library mutex released. A connect on
/// another thread in that window sees `running == 1`, starts no thread, and
/// the thread then exits: nobody reads the socket, the CONNACK is never
/// processed, and the connect fails with -1 after its full connect timeout.
#[test]
#[ignore = "BUG: connect fails (-1 after connect_timeout) when another client disconnects at the same time (Paho C run-thread stop race)"]
fn connect_while_the_last_connected_client_disconnects() -> anyhow::Result<()> {
    in_child(
        "connect_while_the_last_connected_client_disconnects",
        Duration::from_secs(40),
        connect_during_disconnect_body,
    )
}

/// One thread has a connect refused and destroys that client (the last one
/// of the process, so the library frees its global lists, after waiting for
/// its background thread with the mutex released); another thread creates
/// and uses clients meanwhile.
fn destroy_during_create_body() -> anyhow::Result<()> {
    let broker = unpinned_broker()?;
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for t in 0..2 {
        let (uri, s, r) = (broker.uri(), stop.clone(), rounds.clone());
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            while !s.load(SeqCst) {
                let c = Client::create(&uri, &common::client_id("d"), Persistence::None)?;
                if t == 0 {
                    let refused = c.connect(&good().password("wrong"));
                    anyhow::ensure!(refused.is_err(), "wrong password accepted");
                } else {
                    // Connect failures from the race above are not what this
                    // test is about; only crashes and wrong state are.
                    if c.connect(&good()).is_ok() {
                        c.publish("lifecycle/x", b"x", QoS::AtMostOnce, false)?;
                    }
                    let _ = c.is_connected();
                }
                drop(c);
                r.fetch_add(1, SeqCst);
            }
            Ok(())
        }));
    }
    std::thread::sleep(Duration::from_secs(8));
    stop.store(true, SeqCst);
    for t in threads {
        t.join().expect("worker thread")?;
    }
    eprintln!("{} create/connect/destroy rounds", rounds.load(SeqCst));
    Ok(())
}

/// BUG (Paho C 1.3.16, surfaced by the binding): `MQTTClient_destroy` of the
/// process's last client calls `MQTTClient_terminate`, which waits for the
/// background thread with the library mutex released and then frees the
/// global client lists (`ListFree(handles)`, `ListFree(bstate->clients)`),
/// including any client another thread created meanwhile; and it does not
/// wait for a background thread that was already told to stop. Seen as
/// SIGSEGV in `MQTTClient_isConnected` (client freed under its owner) and in
/// `MQTTClient_cycle` (`ListFindItem(handles == NULL)`).
#[test]
#[ignore = "BUG: SIGSEGV when the last client is destroyed while another thread creates/uses a client (Paho C MQTTClient_terminate frees live clients)"]
fn destroy_of_the_last_client_while_another_is_created() -> anyhow::Result<()> {
    in_child(
        "destroy_of_the_last_client_while_another_is_created",
        Duration::from_secs(60),
        destroy_during_create_body,
    )
}

/// Sequential create/connect/drop cycles (no concurrency) are fine: each
/// starts and stops the background thread cleanly.
#[test]
fn sequential_client_lifecycles_without_pin() -> anyhow::Result<()> {
    in_child(
        "sequential_client_lifecycles_without_pin",
        Duration::from_secs(60),
        || {
            let broker = unpinned_broker()?;
            for i in 0..10 {
                let c =
                    Client::create(&broker.uri(), &common::client_id("seq"), Persistence::None)?;
                if i % 3 == 0 {
                    assert!(c.connect(&good().password("bad")).is_err());
                }
                c.connect(&good())?;
                let t = common::topic("seq");
                c.subscribe(&t, QoS::AtLeastOnce)?;
                let tok = c.publish(&t, b"x", QoS::AtLeastOnce, false)?;
                c.wait_for_completion(tok, common::WAIT)?;
                assert_eq!(common::recv(&c, common::WAIT)?.1.payload(), b"x");
                if i % 2 == 0 {
                    c.disconnect(Duration::from_secs(1))?;
                }
            }
            Ok(())
        },
    )
}

/// BUG (Paho C 1.3.16 Thread.c `Thread_time_from_now`, upstream issue
/// eclipse-paho/paho.mqtt.c#1682): it adds `interval.tv_sec` to `tv_nsec`,
/// dropping the sub-second part of every timed wait. `MQTTClient_connect`
/// waits for the TCP connection and the CONNACK with what is left of the
/// connect timeout, about 900 ms after the first connect's 100 ms thread
/// start: truncated to 0 s. A `connect_timeout(1 s)` connect to a broker that
/// takes a few ms to answer then fails at once, and even against a healthy
/// local Mosquitto a few percent of such connects fail.
#[test]
#[ignore = "BUG: connect_timeout(1 s) gives up after ~0.1 s (Paho C Thread_time_from_now drops sub-second timeouts, paho.mqtt.c#1682)"]
fn one_second_connect_timeout_is_honoured() -> anyhow::Result<()> {
    let silent = SilentServer::start()?;
    let c = Client::create(
        &format!("tcp://127.0.0.1:{}", silent.port()),
        &common::client_id("t1s"),
        Persistence::None,
    )?;
    let t0 = Instant::now();
    let r = c.connect(&ConnectOptions::new().connect_timeout(Duration::from_secs(1)));
    let took = t0.elapsed();
    assert!(r.is_err());
    assert!(
        took >= Duration::from_millis(900),
        "connect_timeout(1 s) gave up after {took:?}"
    );
    Ok(())
}

#[test]
#[ignore = "BUG: some connect_timeout(1 s) connects to a healthy local broker fail (paho.mqtt.c#1682)"]
fn one_second_connect_timeout_against_a_healthy_broker() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let mut failures = Vec::new();
    for i in 0..60 {
        let c = common::create(&broker.uri(), "t1s")?;
        let t0 = Instant::now();
        if let Err(e) = c.connect(&ConnectOptions::new().connect_timeout(Duration::from_secs(1))) {
            failures.push(format!("#{i}: {e:?} after {:?}", t0.elapsed()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 60 failed: {failures:?}",
        failures.len()
    );
    Ok(())
}
