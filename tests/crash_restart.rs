//! Crash-restart redelivery: a child process publishes QoS 1/2 messages
//! through the stall proxy (so part of them, or their acknowledgements, are
//! held back), is killed with SIGKILL with messages in flight, and a new
//! process (the test itself) with the same client id, store and
//! `clean_session(false)` delivers every message after it connects: QoS 1 at
//! least once, QoS 2 exactly once, as counted by a subscriber. For the
//! library's file persistence (`Persistence::File`) and the user store
//! (`Persistence::User` with `DirStore`), with the broker running on and
//! with the broker restarted in between (Mosquitto with its own persistence).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use common::{Broker, Proxy, TempDir, WAIT};
use paho_mqtt_sync::{Client, ConnectOptions, DirStore, Persistence, QoS};

/// Messages each child publishes.
const N: usize = 20;
/// The subscriber has seen this many when the proxy is stalled.
const BEFORE_STALL: usize = 5;
/// Environment of the child: store kind, directory, URI, client id, topic, QoS.
const ENV: &str = "PAHO_SYNC_CRASH_CHILD";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Store {
    File,
    User,
}

fn persistence(store: Store, dir: &str) -> Persistence {
    match store {
        Store::File => Persistence::File(dir.into()),
        Store::User => Persistence::User(Box::new(DirStore::new(dir))),
    }
}

fn publisher_options() -> ConnectOptions {
    common::options()
        .clean_session(false)
        .reliable(false)
        .max_inflight_messages(N as u32)
}

/// The child's side: connect, publish N messages, then report the number of
/// messages in flight every 20 ms until killed.
fn child_body(spec: &str) -> anyhow::Result<()> {
    let f: Vec<&str> = spec.split('|').collect();
    let [store, dir, uri, id, topic, qos] = f[..] else {
        bail!("bad child spec {spec}");
    };
    let store = if store == "file" {
        Store::File
    } else {
        Store::User
    };
    let qos = if qos == "2" {
        QoS::ExactlyOnce
    } else {
        QoS::AtLeastOnce
    };
    let c = Client::create(uri, id, persistence(store, dir))?;
    c.connect(&publisher_options())?;
    // Slowly enough that the parent stalls the proxy in the middle.
    for i in 0..N {
        c.publish(topic, format!("m-{i}").as_bytes(), qos, false)?;
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("PUBLISHED");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        println!("PENDING {}", c.pending_delivery_tokens()?.len());
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("the child was not killed")
}

/// Starts this test in a child process with `spec`; its stdout lines come
/// through the receiver.
fn spawn_child(test: &str, spec: &str) -> anyhow::Result<(Child, mpsc::Receiver<String>)> {
    let mut child = common::target_command(std::env::current_exe()?)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ENV, spec)
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let out = child.stdout.take().context("child stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok((child, rx))
}

/// The rest of the next line from the child that contains `prefix`, after
/// it (libtest may print `test NAME ... ` at the start of the first line).
fn line_with(rx: &mpsc::Receiver<String>, prefix: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                if let Some(i) = l.find(prefix) {
                    return Ok(l[i + prefix.len()..].to_owned());
                }
            }
            Err(e) => bail!("no {prefix} line from the child: {e:?}"),
        }
    }
}

/// Payload -> times received, until every `m-i` arrived, then until a
/// marker (so late duplicates are counted too).
fn count_all(
    mut seen: BTreeMap<String, usize>,
    sub: &Client,
    topic: &str,
    marker_from: &Client,
) -> anyhow::Result<BTreeMap<String, usize>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < N {
        let left = deadline.saturating_duration_since(Instant::now());
        match sub.receive(left)? {
            Some((t, m)) if t == topic => {
                *seen.entry(m.payload_str()?.to_owned()).or_insert(0) += 1;
            }
            Some(_) => {}
            None => bail!("only {} of {N} messages arrived: {seen:?}", seen.len()),
        }
    }
    for (t, m) in common::until_marker(sub, marker_from)? {
        if t == topic {
            *seen.entry(m.payload_str()?.to_owned()).or_insert(0) += 1;
        }
    }
    Ok(seen)
}

fn crash_restart(test: &str, store: Store, qos: QoS, restart_broker: bool) -> anyhow::Result<()> {
    if let Some(spec) = std::env::var_os(ENV) {
        return child_body(&spec.to_string_lossy());
    }
    let _w = common::watchdog(test, Duration::from_secs(90));
    common::library_setup();
    let mut broker = Broker::builder().persistence(restart_broker).start()?;
    let proxy = Proxy::new(broker.port())?;
    let dir = TempDir::new("crash")?;
    let dir_s = dir.path().to_str().context("temp dir path")?.to_owned();
    let id = common::client_id("crash");
    let topic = common::topic("crash");
    let sub_opts = common::options().clean_session(false);
    let sub = Client::create(&broker.uri(), &common::client_id("csub"), Persistence::None)?;
    sub.connect(&sub_opts)
        .map_err(|e| anyhow::anyhow!("subscriber: {e}\n--- broker log\n{}", broker.log()))?;
    sub.subscribe(&topic, QoS::ExactlyOnce)?;

    let spec = format!(
        "{}|{dir_s}|{}|{id}|{topic}|{}",
        if store == Store::File { "file" } else { "user" },
        proxy.uri(),
        qos as i32
    );
    let (mut child, rx) = spawn_child(test, &spec)?;
    // Stall once a few messages went through: the rest, or their
    // acknowledgements, are held back.
    let mut early = BTreeMap::new();
    while early.values().sum::<usize>() < BEFORE_STALL {
        let (t, m) = common::recv(&sub, WAIT)?;
        if t == topic {
            *early.entry(m.payload_str()?.to_owned()).or_insert(0usize) += 1;
        }
    }
    proxy.stall();
    line_with(&rx, "PUBLISHED")?;
    // A report made after the stall: nothing changes any more.
    let stalled_at = Instant::now();
    let in_flight = loop {
        let l = line_with(&rx, "PENDING ")?;
        if stalled_at.elapsed() > Duration::from_millis(100) {
            break l.trim().parse::<usize>()?;
        }
    };
    child.kill()?; // SIGKILL
    let status = child.wait()?;
    assert!(!status.success(), "child: {status}");
    assert!(
        in_flight > 0,
        "nothing was in flight when the child was killed"
    );
    // Bytes the child sent after the stall die with the connection.
    proxy.cut();
    proxy.resume();

    if restart_broker {
        broker.restart()?;
        assert!(common::wait_until(WAIT, || !sub.is_connected()));
        let r = sub.connect(&sub_opts)?;
        assert!(
            r.session_present(),
            "the broker lost the subscriber's session"
        );
    }

    // The new process: same id, same store, a persistent session.
    let c = Client::create(&proxy.uri(), &id, persistence(store, &dir_s))?;
    let restored = c.pending_delivery_tokens()?;
    assert_eq!(
        restored.len(),
        in_flight,
        "restored tokens {restored:?}, the child had {in_flight} in flight"
    );
    c.connect(&publisher_options())
        .map_err(|e| anyhow::anyhow!("restarted client: {e}\n--- broker log\n{}", broker.log()))?;
    for t in &restored {
        c.wait_for_completion(*t, WAIT)
            .with_context(|| format!("restored token {t:?}"))?;
    }
    assert_eq!(c.pending_delivery_tokens()?, vec![]);

    let seen = count_all(early, &sub, &topic, &sub)?;
    assert_eq!(seen.len(), N, "{seen:?}");
    for (p, n) in &seen {
        match qos {
            QoS::ExactlyOnce => assert_eq!(*n, 1, "{p} delivered {n} times: {seen:?}"),
            _ => assert!(*n >= 1, "{p}: {seen:?}"),
        }
    }
    c.disconnect(Duration::from_secs(2))?;
    drop(c);
    // Everything was acknowledged: the store is empty.
    let left: Vec<_> = walk(dir.path());
    assert!(left.is_empty(), "left in the store: {left:?}");
    eprintln!("{test}: {in_flight} in flight at the kill, restored and delivered; {seen:?}");
    Ok(())
}

/// Files below `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn file_store_qos1_after_sigkill() -> anyhow::Result<()> {
    crash_restart(
        "file_store_qos1_after_sigkill",
        Store::File,
        QoS::AtLeastOnce,
        false,
    )
}

#[test]
fn file_store_qos2_after_sigkill() -> anyhow::Result<()> {
    crash_restart(
        "file_store_qos2_after_sigkill",
        Store::File,
        QoS::ExactlyOnce,
        false,
    )
}

#[test]
fn user_store_qos1_after_sigkill() -> anyhow::Result<()> {
    crash_restart(
        "user_store_qos1_after_sigkill",
        Store::User,
        QoS::AtLeastOnce,
        false,
    )
}

#[test]
fn user_store_qos2_after_sigkill() -> anyhow::Result<()> {
    crash_restart(
        "user_store_qos2_after_sigkill",
        Store::User,
        QoS::ExactlyOnce,
        false,
    )
}

#[test]
fn file_store_qos1_after_sigkill_and_broker_restart() -> anyhow::Result<()> {
    crash_restart(
        "file_store_qos1_after_sigkill_and_broker_restart",
        Store::File,
        QoS::AtLeastOnce,
        true,
    )
}

#[test]
fn file_store_qos2_after_sigkill_and_broker_restart() -> anyhow::Result<()> {
    crash_restart(
        "file_store_qos2_after_sigkill_and_broker_restart",
        Store::File,
        QoS::ExactlyOnce,
        true,
    )
}

#[test]
fn user_store_qos1_after_sigkill_and_broker_restart() -> anyhow::Result<()> {
    crash_restart(
        "user_store_qos1_after_sigkill_and_broker_restart",
        Store::User,
        QoS::AtLeastOnce,
        true,
    )
}

#[test]
fn user_store_qos2_after_sigkill_and_broker_restart() -> anyhow::Result<()> {
    crash_restart(
        "user_store_qos2_after_sigkill_and_broker_restart",
        Store::User,
        QoS::ExactlyOnce,
        true,
    )
}
