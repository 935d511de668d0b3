//! Test harness shared by the integration tests (`mod common;` in each test
//! file): a private Mosquitto per test ([`Broker`]), a loopback TCP proxy that
//! can cut or stall connections ([`Proxy`]), a scriptable fake MQTT server for
//! hostile-input tests ([`fake_broker`]), temporary directories, unique
//! client ids, bounded polling and a hang watchdog.
//!
//! Everything here uses std only. Every wait is bounded.
//!
//! With a system library (no `bundled` feature), setting
//! `PAHO_MQTT_SYNC_TEST_ANCHOR=1` makes every test use the crate's opt-in
//! anchor client ([`paho_mqtt_sync::enable_anchor_client`]); without it the
//! tests run against the crate's default workarounds (scripts/system-lib-test.sh
//! runs the lifecycle tests both ways).
#![allow(dead_code)]

mod broker;
mod examples;
pub mod fake_broker;
mod proxy;
mod stub;

#[allow(unused_imports)]
pub use broker::{kill_all_brokers, Broker, BrokerBuilder, MOSQUITTO};
#[allow(unused_imports)]
pub use examples::build_examples;
#[allow(unused_imports)]
pub use proxy::Proxy;
#[allow(unused_imports)]
pub use stub::{stub_mqtt_server, SilentServer};

/// Applies the test-only anchor switch (see the module docs) once, before
/// the first client of the process is created.
pub fn library_setup() {
    static SETUP: std::sync::Once = std::sync::Once::new();
    SETUP.call_once(|| {
        if std::env::var_os("PAHO_MQTT_SYNC_TEST_ANCHOR").is_some_and(|v| v == "1") {
            paho_mqtt_sync::enable_anchor_client();
        }
    });
}

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use paho_mqtt_sync::{Client, ConnectOptions, Message, Persistence, QoS, Receiver};

/// How long tests wait for something that should happen at once (a message
/// on loopback, an acknowledgement). Generous: only reached when a test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A process-wide counter for unique names.
fn next_serial() -> u64 {
    static SERIAL: AtomicU64 = AtomicU64::new(0);
    SERIAL.fetch_add(1, SeqCst)
}

/// A random number from std's hasher seeding (no `rand` crate needed).
pub(crate) fn random_u64() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(next_serial());
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// A client id unique in this machine's test runs: `<tag>-<pid>-<serial>`,
/// at most 23 characters when `tag` is at most 8 (MQTT 3.1 brokers limit ids
/// to 23 characters).
pub fn client_id(tag: &str) -> String {
    let tag: String = tag.chars().take(8).collect();
    format!("{tag}-{}-{}", std::process::id(), next_serial())
}

/// A topic prefix unique to one test, so tests sharing a broker never see
/// each other's messages.
pub fn topic(tag: &str) -> String {
    format!("t/{tag}/{}-{}", std::process::id(), next_serial())
}

/// A directory under the system temp dir, removed (with its contents) on drop.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<tmp>/paho-sync-<tag>-<pid>-<serial>-<random>`.
    pub fn new(tag: &str) -> anyhow::Result<TempDir> {
        for _ in 0..100 {
            let path = std::env::temp_dir().join(format!(
                "paho-sync-{tag}-{}-{}-{:x}",
                std::process::id(),
                next_serial(),
                random_u64() & 0xffff_ffff
            ));
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e).with_context(|| format!("creating {}", path.display())),
            }
        }
        bail!("could not create a unique temp dir")
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Polls `cond` every 5 ms until it is true (returns true) or `timeout`
/// passes (returns false; `cond` is checked one last time).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return cond();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Aborts the whole test process (after killing every broker it started) if
/// it is not dropped within `limit`: a deadlocked test then fails loudly
/// instead of hanging the run. Keep it alive for the whole test:
/// `let _w = watchdog("name", Duration::from_secs(60));`
#[must_use = "the watchdog is disarmed when dropped"]
pub struct Watchdog {
    done: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts a [`Watchdog`].
pub fn watchdog(name: &str, limit: Duration) -> Watchdog {
    let done = Arc::new((Mutex::new(false), Condvar::new()));
    let d = done.clone();
    let name = name.to_owned();
    let thread = std::thread::Builder::new()
        .name(format!("watchdog-{name}"))
        .spawn(move || {
            let deadline = Instant::now() + limit;
            let mut g = d.0.lock().unwrap_or_else(|e| e.into_inner());
            while !*g {
                let now = Instant::now();
                if now >= deadline {
                    eprintln!("WATCHDOG: test {name} still running after {limit:?}: probable deadlock, aborting the test process");
                    broker::kill_all_brokers();
                    std::process::abort();
                }
                g = d.1.wait_timeout(g, deadline - now).unwrap_or_else(|e| e.into_inner()).0;
            }
        })
        .expect("spawn watchdog thread");
    Watchdog {
        done,
        thread: Some(thread),
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        *self.done.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.done.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connect options for tests: keepalive 10 s, connect timeout 5 s, clean session.
pub fn options() -> ConnectOptions {
    ConnectOptions::new()
        .keep_alive_interval(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
}

/// Creates a client with a fresh id (`tag`-based) and no persistence.
pub fn create(uri: &str, tag: &str) -> anyhow::Result<Client> {
    library_setup();
    let id = client_id(tag);
    Client::create(uri, &id, Persistence::None).with_context(|| format!("create {id} for {uri}"))
}

/// Creates and connects a client with [`options`].
pub fn connect(uri: &str, tag: &str) -> anyhow::Result<Client> {
    connect_with(uri, tag, &options())
}

/// Creates and connects a client with the given options.
pub fn connect_with(uri: &str, tag: &str, opts: &ConnectOptions) -> anyhow::Result<Client> {
    let c = create(uri, tag)?;
    c.connect(opts)
        .with_context(|| format!("connect {} to {uri}", c.client_id()))?;
    Ok(c)
}

/// The next message from `client.receive`, or an error after `timeout`.
pub fn recv(client: &Client, timeout: Duration) -> anyhow::Result<(String, Message)> {
    match client.receive(timeout)? {
        Some(m) => Ok(m),
        None => bail!("no message for {} within {timeout:?}", client.client_id()),
    }
}

/// `n` messages from `client.receive`, each within `timeout` of the previous.
pub fn recv_n(
    client: &Client,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<(String, Message)>> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match client.receive(timeout)? {
            Some(m) => out.push(m),
            None => bail!(
                "got {} of {n} messages, then nothing for {timeout:?}",
                out.len()
            ),
        }
    }
    Ok(out)
}

/// `n` messages from a [`Receiver`], each within `timeout` of the previous.
pub fn recv_n_from(
    rx: &Receiver,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<(String, Message)>> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        match rx.recv_timeout(timeout) {
            Ok(m) => out.push(m),
            Err(e) => bail!(
                "got {} of {n} messages, then {e:?} after {timeout:?}",
                out.len()
            ),
        }
    }
    Ok(out)
}

/// A barrier for "nothing else arrives" checks: subscribes `client` to a
/// fresh marker topic, publishes a marker there (QoS 1) from `publisher`, and
/// returns every message `client` received before the marker. The broker
/// handles one connection's packets in order and queues a subscriber's
/// messages in order, so anything that was going to be delivered before the
/// marker has been by then.
pub fn until_marker(client: &Client, publisher: &Client) -> anyhow::Result<Vec<(String, Message)>> {
    let marker = format!("{}/marker", topic("m"));
    client.subscribe(&marker, QoS::AtLeastOnce)?;
    let tok = publisher.publish(&marker, b"marker", QoS::AtLeastOnce, false)?;
    publisher.wait_for_completion(tok, WAIT)?;
    let mut before = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.receive(left)? {
            Some((t, _)) if t == marker => break,
            Some(m) => before.push(m),
            None => bail!("marker {marker} never arrived"),
        }
    }
    client.unsubscribe(&marker)?;
    Ok(before)
}

/// Set in the environment of a child started by [`in_child`].
const CHILD: &str = "PAHO_SYNC_TEST_CHILD";

/// Runs `body` in a child process: in the parent, re-runs test `name` of the
/// current test binary (libtest arguments, so `cargo test` and nextest both
/// work) with an environment variable set, and fails unless it exits
/// successfully within `limit` (a crash or a hang becomes a test failure with
/// the child's output); in the child, runs `body`. For tests whose failure
/// mode would take down or freeze the whole test process.
pub fn in_child(
    name: &str,
    limit: Duration,
    body: fn() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if std::env::var_os(CHILD).is_some() {
        return body();
    }
    use std::io::Read;
    let mut child = target_command(std::env::current_exe()?)
        .args([
            name,
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("RUST_BACKTRACE", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // Drain both pipes while the child runs, so it never blocks on them.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => anyhow::bail!("child process failed: {s}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"),
        None => anyhow::bail!("child process still running after {limit:?} (hang), killed\n--- stdout\n{stdout}\n--- stderr\n{stderr}"),
    }
}

/// The current process's effective uid, from /proc (no libc needed).
pub(crate) fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// A `Command` for a program built for the target under test (this test
/// binary re-run as a child, or an example): through
/// `CARGO_TARGET_<TRIPLE>_RUNNER` when that is set, as Cargo runs the tests
/// (qemu-user when cross-testing on a PC, see scripts/cross-test.sh), else
/// the program itself.
pub fn target_command(program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
    let triple = env!("PAHO_MQTT_SYNC_TARGET");
    let var = format!(
        "CARGO_TARGET_{}_RUNNER",
        triple.to_uppercase().replace(['-', '.'], "_")
    );
    let runner = std::env::var(var).unwrap_or_default();
    let mut words = runner.split_whitespace();
    match words.next() {
        Some(first) => {
            let mut cmd = std::process::Command::new(first);
            cmd.args(words).arg(program);
            cmd
        }
        None => std::process::Command::new(program),
    }
}
