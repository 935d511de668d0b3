//! File persistence (`Persistence::File`): the library keeps QoS 1/2
//! messages in flight in files under the given directory (and nowhere
//! else), and a new client with the same id and directory sends them after a
//! restart of the client.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Broker, Proxy, TempDir, WAIT};
use paho_mqtt_sync::{Client, Persistence, QoS};

/// Every file below `dir`, as paths relative to it.
fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(rel) = p.strip_prefix(dir) {
                out.push(rel.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Names in the current directory that contain `needle`.
fn cwd_entries_with(needle: &str) -> Vec<String> {
    std::fs::read_dir(".")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(needle))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn file_persistence_stays_inside_its_directory() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    let dir = TempDir::new("pers")?;
    let id = common::client_id("pers");
    let c = Client::create(
        &proxy.uri(),
        &id,
        Persistence::File(dir.path().to_path_buf()),
    )?;
    c.connect(&common::options())?;
    let topic = common::topic("pers");
    c.subscribe(&topic, QoS::ExactlyOnce)?;

    // While a QoS 2 message waits for its acknowledgement, it is on disk.
    proxy.stall();
    let tok = c.publish(&topic, b"on disk", QoS::ExactlyOnce, false)?;
    let stored = files_below(dir.path());
    assert!(
        stored.iter().any(|f| f.contains(&id)),
        "no persistence file for {id} in {}: {stored:?}",
        dir.path().display()
    );
    proxy.resume();
    c.wait_for_completion(tok, WAIT)?;
    assert_eq!(common::recv(&c, WAIT)?.1.payload(), b"on disk");
    c.disconnect(Duration::from_secs(1))?;
    drop(c);

    // Nothing landed in the current directory (the C library's default
    // location when no directory is given).
    assert!(
        cwd_entries_with(&id).is_empty(),
        "{:?}",
        cwd_entries_with(&id)
    );
    Ok(())
}

/// Publishes one QoS 1 message with file persistence through a stalled
/// proxy and drops the client with the message unacknowledged (as if the
/// process died). Returns the options to reconnect with.
fn leave_a_message_on_disk(
    proxy: &Proxy,
    dir: &TempDir,
    id: &str,
    topic: &str,
) -> anyhow::Result<paho_mqtt_sync::ConnectOptions> {
    let opts = common::options().clean_session(false);
    let c = Client::create(
        &proxy.uri(),
        id,
        Persistence::File(dir.path().to_path_buf()),
    )?;
    c.connect(&opts)?;
    proxy.stall();
    let tok = c.publish(topic, b"survivor", QoS::AtLeastOnce, false)?;
    assert_eq!(c.pending_delivery_tokens()?, vec![tok]);
    proxy.cut();
    assert!(common::wait_until(WAIT, || !c.is_connected()));
    drop(c);
    proxy.resume();
    assert!(
        !files_below(dir.path()).is_empty(),
        "the unacknowledged message was not kept on disk"
    );
    Ok(opts)
}

/// A message restored from file persistence is in flight like any other:
/// `wait_for_completion` says Disconnected while the client is not
/// connected (as C's MQTTClient_waitForCompletion does) and returns once the
/// library has re-sent it after the connect and the broker acknowledged it.
#[test]
fn wait_for_completion_of_a_restored_message() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    let dir = TempDir::new("restw")?;
    let id = common::client_id("restw");
    let topic = common::topic("restw");
    leave_a_message_on_disk(&proxy, &dir, &id, &topic)?;
    let c = Client::create(
        &proxy.uri(),
        &id,
        Persistence::File(dir.path().to_path_buf()),
    )?;
    let restored = c.pending_delivery_tokens()?;
    assert_eq!(restored.len(), 1);
    assert_eq!(
        c.wait_for_completion(restored[0], Duration::from_millis(100)),
        Err(paho_mqtt_sync::Error::Unacknowledged {
            tokens: vec![restored[0]],
            will_resend: true
        }),
        "a restored, unacknowledged message reported complete while disconnected"
    );
    Ok(())
}

#[test]
fn message_in_flight_survives_a_client_restart() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    let dir = TempDir::new("restart")?;
    let id = common::client_id("prest");
    let topic = common::topic("prest");
    let sub = common::connect(&broker.uri(), "prsub")?;
    sub.subscribe(&topic, QoS::AtLeastOnce)?;
    let opts = leave_a_message_on_disk(&proxy, &dir, &id, &topic)?;
    let got = common::until_marker(&sub, &sub)?;
    assert!(got.is_empty(), "sent before the restart: {got:?}");

    // A new client with the same id, server URI and directory (the library
    // keeps one sub-directory per client id and server) finds it and sends it.
    let c = Client::create(
        &proxy.uri(),
        &id,
        Persistence::File(dir.path().to_path_buf()),
    )?;
    let restored = c.pending_delivery_tokens()?;
    assert_eq!(restored.len(), 1, "restored tokens: {restored:?}");
    c.connect(&opts)?;
    let (t, m) = common::recv(&sub, WAIT)?;
    assert_eq!(
        (t.as_str(), m.payload()),
        (topic.as_str(), &b"survivor"[..])
    );
    assert!(common::wait_until(WAIT, || c
        .pending_delivery_tokens()
        .is_ok_and(|p| p.is_empty())));
    c.disconnect(Duration::from_secs(1))?;
    Ok(())
}
