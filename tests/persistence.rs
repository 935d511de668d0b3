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

// ---------------------------------------------------------------------------
// User-defined persistence (`Persistence::User`) and damaged stores.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use paho_mqtt_sync::{ClientPersistence, DirStore, Error, PersistenceResult};

/// What a [`MemStore`] holds and did, shared with the test.
#[derive(Default)]
struct MemState {
    entries: BTreeMap<String, Vec<u8>>,
    /// Every call, in order: `open id uri`, `put s-1`, `close`, `drop`, ...
    calls: Vec<String>,
    fail: Vec<&'static str>,
    panic: Vec<&'static str>,
}

/// An in-memory store that records its calls and fails or panics on demand.
struct MemStore(Arc<Mutex<MemState>>);

impl MemStore {
    fn new() -> (MemStore, Arc<Mutex<MemState>>) {
        let s = Arc::new(Mutex::new(MemState::default()));
        (MemStore(s.clone()), s)
    }

    fn enter(&self, call: String, op: &'static str) -> PersistenceResult<()> {
        let mut s = self.0.lock().unwrap();
        s.calls.push(call);
        if s.panic.contains(&op) {
            drop(s);
            panic!("MemStore: {op} panics on purpose");
        }
        if s.fail.contains(&op) {
            return Err(format!("{op} fails on purpose").into());
        }
        Ok(())
    }
}

impl ClientPersistence for MemStore {
    fn open(&mut self, client_id: &str, server_uri: &str) -> PersistenceResult<()> {
        self.enter(format!("open {client_id} {server_uri}"), "open")
    }
    fn close(&mut self) -> PersistenceResult<()> {
        self.enter("close".into(), "close")
    }
    fn put(&mut self, key: &str, buffers: &[&[u8]]) -> PersistenceResult<()> {
        self.enter(format!("put {key}"), "put")?;
        self.0
            .lock()
            .unwrap()
            .entries
            .insert(key.into(), buffers.concat());
        Ok(())
    }
    fn get(&mut self, key: &str) -> PersistenceResult<Vec<u8>> {
        self.enter(format!("get {key}"), "get")?;
        let s = self.0.lock().unwrap();
        Ok(s.entries.get(key).cloned().ok_or("no such key")?)
    }
    fn remove(&mut self, key: &str) -> PersistenceResult<()> {
        self.enter(format!("remove {key}"), "remove")?;
        self.0.lock().unwrap().entries.remove(key);
        Ok(())
    }
    fn keys(&mut self) -> PersistenceResult<Vec<String>> {
        self.enter("keys".into(), "keys")?;
        Ok(self.0.lock().unwrap().entries.keys().cloned().collect())
    }
    fn clear(&mut self) -> PersistenceResult<()> {
        self.enter("clear".into(), "clear")?;
        self.0.lock().unwrap().entries.clear();
        Ok(())
    }
    fn contains_key(&mut self, key: &str) -> PersistenceResult<bool> {
        self.enter(format!("contains_key {key}"), "contains_key")?;
        Ok(self.0.lock().unwrap().entries.contains_key(key))
    }
}

impl Drop for MemStore {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .calls
            .push("drop".into());
    }
}

fn calls(s: &Arc<Mutex<MemState>>) -> Vec<String> {
    s.lock().unwrap().calls.clone()
}

/// A stored QoS 1 PUBLISH, as the library writes it (MQTT 3.1.1 packet).
fn stored_publish(topic: &str, msgid: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&msgid.to_be_bytes());
    body.extend_from_slice(payload);
    assert!(body.len() < 128);
    let mut p = vec![0x32, body.len() as u8];
    p.extend(body);
    p
}

#[test]
fn user_store_sees_each_message_and_is_dropped_once_after_close() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let (store, state) = MemStore::new();
    let id = common::client_id("ustore");
    let topic = common::topic("ustore");
    let c = Client::create(&broker.uri(), &id, Persistence::User(Box::new(store)))?;
    assert_eq!(
        calls(&state),
        [
            format!("open {id} 127.0.0.1:{}", broker.port()),
            "keys".into(), // sent and received messages
            "keys".into(), // the received-message queue
        ]
    );
    c.connect(&common::options().clean_session(false))?;
    c.subscribe(&topic, QoS::ExactlyOnce)?;
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let tok = c.publish(&topic, b"x", qos, false)?;
        c.wait_for_completion(tok, WAIT)?;
        common::recv(&c, WAIT)?;
    }
    assert!(common::wait_until(WAIT, || state
        .lock()
        .unwrap()
        .entries
        .is_empty()));
    let seen = calls(&state);
    for needle in [
        "put s-",
        "remove s-",
        "put sc-",
        "remove sc-",
        "put r-",
        "remove r-",
        "put q-",
        "remove q-",
    ] {
        assert!(
            seen.iter().any(|c| c.starts_with(needle)),
            "no {needle}: {seen:?}"
        );
    }
    c.disconnect(Duration::from_secs(1))?;
    drop(c);
    let seen = calls(&state);
    assert_eq!(&seen[seen.len() - 2..], ["close", "drop"], "{seen:?}");
    assert_eq!(seen.iter().filter(|c| *c == "drop").count(), 1);
    assert_eq!(Arc::strong_count(&state), 1, "the store is gone");
    Ok(())
}

#[test]
fn user_store_open_error_is_a_clear_err_and_the_store_is_dropped_once() -> anyhow::Result<()> {
    let (store, state) = MemStore::new();
    state.lock().unwrap().fail.push("open");
    let r = Client::create(
        "tcp://127.0.0.1:1",
        "uopen",
        Persistence::User(Box::new(store)),
    );
    match r {
        Err(Error::Persistence(msg)) => assert!(
            msg.contains("open() failed: open fails on purpose"),
            "{msg}"
        ),
        other => panic!("expected Error::Persistence, got {other:?}"),
    }
    // Not opened, so not closed; dropped once.
    assert_eq!(calls(&state), ["open uopen 127.0.0.1:1", "drop"]);
    assert_eq!(Arc::strong_count(&state), 1);
    Ok(())
}

#[test]
fn user_store_panics_never_reach_c() -> anyhow::Result<()> {
    // A panic while the client is created: a clear Err, store closed and dropped.
    let (store, state) = MemStore::new();
    state.lock().unwrap().panic.push("keys");
    match Client::create(
        "tcp://127.0.0.1:1",
        "upanic",
        Persistence::User(Box::new(store)),
    ) {
        Err(Error::Persistence(msg)) => {
            assert!(
                msg.contains("keys() panicked: MemStore: keys panics on purpose"),
                "{msg}"
            )
        }
        other => panic!("expected Error::Persistence, got {other:?}"),
    }
    assert_eq!(
        calls(&state),
        ["open upanic 127.0.0.1:1", "keys", "close", "drop"]
    );

    // A panic in put (and remove) while publishing: the message is still
    // sent and acknowledged; only the log shows it was not stored.
    let broker = Broker::new()?;
    let (store, state) = MemStore::new();
    state.lock().unwrap().panic.extend(["put", "remove"]);
    let topic = common::topic("upanic");
    let c = Client::create(
        &broker.uri(),
        &common::client_id("upanic"),
        Persistence::User(Box::new(store)),
    )?;
    c.connect(&common::options().clean_session(false))?;
    c.subscribe(&topic, QoS::AtLeastOnce)?;
    let tok = c.publish(&topic, b"sent anyway", QoS::AtLeastOnce, false)?;
    c.wait_for_completion(tok, WAIT)?;
    assert_eq!(common::recv(&c, WAIT)?.1.payload(), b"sent anyway");
    assert!(calls(&state).iter().any(|c| c.starts_with("put s-")));
    assert!(state.lock().unwrap().entries.is_empty());
    Ok(())
}

#[test]
fn user_store_whose_put_fails_still_sends() -> anyhow::Result<()> {
    // A full disk: every put fails. Publishing goes on (the library ignores
    // the result of its put); the messages are not kept for a restart.
    let broker = Broker::new()?;
    let (store, state) = MemStore::new();
    state.lock().unwrap().fail.push("put");
    let topic = common::topic("ufull");
    let c = Client::create(
        &broker.uri(),
        &common::client_id("ufull"),
        Persistence::User(Box::new(store)),
    )?;
    c.connect(&common::options().clean_session(false))?;
    c.subscribe(&topic, QoS::ExactlyOnce)?;
    for qos in [QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let tok = c.publish(&topic, b"no room", qos, false)?;
        c.wait_for_completion(tok, WAIT)?;
        assert_eq!(common::recv(&c, WAIT)?.1.payload(), b"no room");
    }
    assert!(
        calls(&state)
            .iter()
            .filter(|c| c.starts_with("put "))
            .count()
            >= 2
    );
    assert!(state.lock().unwrap().entries.is_empty());
    Ok(())
}

/// Good and damaged entries side by side in a user store: the damaged ones
/// are logged and dropped (removed from the store), the good one is restored
/// and delivered.
#[test]
fn user_store_damaged_entries_are_dropped_and_good_ones_delivered() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    let id = common::client_id("udamage");
    let topic = common::topic("udamage");
    let sub = common::connect(&broker.uri(), "udsub")?;
    sub.subscribe(&topic, QoS::AtLeastOnce)?;
    let base = TempDir::new("udamage")?;
    let store = DirStore::new(base.path());
    let dir = store.client_dir(&id, &proxy.uri());
    std::fs::create_dir(&dir)?;
    let good = stored_publish(&topic, 3, b"good");
    std::fs::write(dir.join("s-3"), &good)?;
    std::fs::write(dir.join("s-4"), &good[..good.len() - 3])?; // truncated
    std::fs::write(dir.join("s-5"), [0xffu8; 64])?; // garbage
    std::fs::write(dir.join("s-6"), b"")?; // empty (a power cut with C's file store)
    std::fs::write(dir.join("sc-7"), [0x62u8, 2, 0])?; // a PUBREL cut short
    std::fs::write(dir.join(".tmp-s-8"), &good[..4])?; // a put cut short

    // A received message not yet handed over, cut short (the library reads
    // these without bounds checks): payload length 1000, then nothing.
    std::fs::write(dir.join("q-5"), 1000i32.to_ne_bytes())?;

    let c = Client::create(&proxy.uri(), &id, Persistence::User(Box::new(store)))?;
    let restored = c.pending_delivery_tokens()?;
    assert_eq!(restored, vec![paho_mqtt_sync::DeliveryToken::from_id(3)]);
    let mut left: Vec<String> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    left.sort();
    assert_eq!(left, ["s-3"], "damaged entries and leftovers are removed");
    c.connect(&common::options().clean_session(false))?;
    c.wait_for_completion(restored[0], WAIT)?;
    let (t, m) = common::recv(&sub, WAIT)?;
    assert_eq!((t.as_str(), m.payload()), (topic.as_str(), &b"good"[..]));
    assert!(common::until_marker(&sub, &sub)?.is_empty());
    assert!(
        std::fs::read_dir(&dir)?.next().is_none(),
        "acknowledged, so removed"
    );
    Ok(())
}

#[test]
fn dir_store_unusable_directory_is_a_clear_err() -> anyhow::Result<()> {
    let base = TempDir::new("unusable")?;
    let missing = base.path().join("missing");
    match Client::create(
        "tcp://127.0.0.1:1",
        "unusable",
        Persistence::User(Box::new(DirStore::new(&missing))),
    ) {
        Err(Error::Persistence(msg)) => {
            assert!(msg.contains("is not an existing directory"), "{msg}")
        }
        other => panic!("expected Error::Persistence, got {other:?}"),
    }
    // The client's directory is a file.
    let store = DirStore::new(base.path());
    std::fs::write(store.client_dir("unusable", "tcp://127.0.0.1:1"), b"")?;
    match Client::create(
        "tcp://127.0.0.1:1",
        "unusable",
        Persistence::User(Box::new(store)),
    ) {
        Err(Error::Persistence(msg)) => assert!(msg.starts_with("open() failed"), "{msg}"),
        other => panic!("expected Error::Persistence, got {other:?}"),
    }
    // A directory the process may not read (only meaningful when not root).
    if common::euid() != Some(0) {
        use std::os::unix::fs::PermissionsExt;
        let store = DirStore::new(base.path());
        let dir = store.client_dir("locked", "tcp://127.0.0.1:1");
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000))?;
        let r = Client::create(
            "tcp://127.0.0.1:1",
            "locked",
            Persistence::User(Box::new(store)),
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        assert!(matches!(r, Err(Error::Persistence(_))), "{r:?}");
    }
    Ok(())
}

/// The library's own file store with damaged files next to a good one: the
/// library drops them (removes the files) and restores the good one.
#[test]
fn file_store_damaged_entries_are_dropped_and_good_ones_delivered() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let proxy = Proxy::new(broker.port())?;
    let dir = TempDir::new("fdamage")?;
    let id = common::client_id("fdamage");
    let topic = common::topic("fdamage");
    let sub = common::connect(&broker.uri(), "fdsub")?;
    sub.subscribe(&topic, QoS::AtLeastOnce)?;
    let opts = leave_a_message_on_disk(&proxy, &dir, &id, &topic)?;
    let files = files_below(dir.path());
    let good = files
        .iter()
        .find(|f| f.ends_with(".msg"))
        .expect("a .msg file")
        .clone();
    let client_dir = dir.path().join(&good).parent().unwrap().to_path_buf();
    let bytes = std::fs::read(dir.path().join(&good))?;
    std::fs::write(client_dir.join("s-40.msg"), &bytes[..bytes.len() - 3])?;
    std::fs::write(client_dir.join("s-41.msg"), [0x32u8, 0x7f])?;
    std::fs::write(client_dir.join("s-42.msg"), b"")?;
    std::fs::write(client_dir.join("s-43.msg"), [0xffu8; 8])?; // fix 031

    let c = Client::create(
        &proxy.uri(),
        &id,
        Persistence::File(dir.path().to_path_buf()),
    )?;
    assert_eq!(c.pending_delivery_tokens()?.len(), 1);
    assert_eq!(files_below(dir.path()), vec![good], "damaged files removed");
    c.connect(&opts)?;
    let (_, m) = common::recv(&sub, WAIT)?;
    assert_eq!(m.payload(), b"survivor");
    assert!(common::until_marker(&sub, &sub)?.is_empty());
    Ok(())
}

#[test]
fn file_store_unusable_directory_is_a_clear_err() -> anyhow::Result<()> {
    let dir = TempDir::new("funusable")?;
    // The client's directory (client id + host + port) is a file.
    std::fs::write(dir.path().join("funusable-127.0.0.1-1"), b"")?;
    let r = Client::create(
        "tcp://127.0.0.1:1",
        "funusable",
        Persistence::File(dir.path().to_path_buf()),
    );
    assert!(matches!(r, Err(Error::Persistence(_))), "{r:?}");
    Ok(())
}

/// A message restored from a user store, then a connect with a clean
/// session: the library drops it (and clears the store), and its token says
/// so instead of waiting.
#[test]
fn restored_message_dropped_by_a_clean_session() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let id = common::client_id("uclean");
    let topic = common::topic("uclean");
    let base = TempDir::new("uclean")?;
    let store = DirStore::new(base.path());
    let dir = store.client_dir(&id, &broker.uri());
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("s-9"), stored_publish(&topic, 9, b"stale"))?;
    let c = Client::create(&broker.uri(), &id, Persistence::User(Box::new(store)))?;
    let restored = c.pending_delivery_tokens()?;
    assert_eq!(restored, vec![paho_mqtt_sync::DeliveryToken::from_id(9)]);
    c.connect(&common::options())?; // clean session
    assert_eq!(c.pending_delivery_tokens()?, vec![]);
    assert_eq!(
        c.wait_for_completion(restored[0], WAIT),
        Err(Error::Unacknowledged {
            tokens: restored.clone(),
            will_resend: false
        })
    );
    assert!(std::fs::read_dir(&dir)?.next().is_none(), "store cleared");
    Ok(())
}

#[test]
fn user_store_get_error_is_a_clear_err() -> anyhow::Result<()> {
    let (store, state) = MemStore::new();
    {
        let mut s = state.lock().unwrap();
        s.entries.insert("s-1".into(), stored_publish("t", 1, b"x"));
        s.fail.push("get");
    }
    match Client::create(
        "tcp://127.0.0.1:1",
        "uget",
        Persistence::User(Box::new(store)),
    ) {
        Err(Error::Persistence(msg)) => {
            assert!(
                msg.contains("get(\"s-1\") failed: get fails on purpose"),
                "{msg}"
            )
        }
        other => panic!("expected Error::Persistence, got {other:?}"),
    }
    let seen = calls(&state);
    assert_eq!(&seen[seen.len() - 2..], ["close", "drop"], "{seen:?}");
    Ok(())
}

/// Damaged queue entries (`q-`: received messages not yet handed to the
/// application) in the library's file store: the library parses them
/// without bounds checks (fix 032 in the bundled build). Run in a child
/// process, so a crash fails this test instead of the whole binary.
#[test]
#[cfg_attr(
    not(feature = "bundled"),
    ignore = "BUG (fixed in the bundled build, fix 032): an empty or short q- file in the library's file store crashes MQTTClient_create (SIGSEGV in MQTTPersistence_restoreQueueEntry)"
)]
fn file_store_damaged_queue_entries_do_not_crash() -> anyhow::Result<()> {
    common::in_child(
        "file_store_damaged_queue_entries_do_not_crash",
        Duration::from_secs(60),
        || {
            let dir = TempDir::new("fqueue")?;
            let client_dir = dir.path().join("fqueue-127.0.0.1-1");
            std::fs::create_dir(&client_dir)?;
            std::fs::write(client_dir.join("q-1.msg"), b"")?;
            std::fs::write(client_dir.join("q-2.msg"), 100_000_000i32.to_ne_bytes())?;
            let mut long = 64i32.to_ne_bytes().to_vec();
            long.extend([b'x'; 10]);
            std::fs::write(client_dir.join("q-3.msg"), &long)?;
            let c = Client::create(
                "tcp://127.0.0.1:1",
                "fqueue",
                Persistence::File(dir.path().to_path_buf()),
            );
            assert!(c.is_ok(), "{:?}", c.err());
            let left: Vec<_> = std::fs::read_dir(&client_dir)?.collect();
            assert!(left.is_empty(), "damaged entries removed: {left:?}");
            drop(c);
            Ok(())
        },
    )
}
