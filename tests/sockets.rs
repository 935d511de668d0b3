//! Sockets a client holds. The process's open sockets (`/proc/self/fd`
//! entries that link to `socket:[…]`) are counted before any client exists,
//! after a client is created, while it is connected to a private Mosquitto,
//! across reconnects, and after it is disconnected and dropped; each socket is
//! also classified as TCP or Unix through `/proc/self/net`.
//!
//! What is asserted:
//! * A connected client holds exactly one socket more than it did before the
//!   connect, and exactly one TCP connection more than the process held before
//!   the client existed: no hidden helper connection (the bundled build has
//!   none; with a system library the crate's default keeper client never
//!   connects).
//! * Creating the first client opens no TCP socket. Paho C (1.3.1x) opens one
//!   Unix socket pair when the library initializes, at the first
//!   `MQTTClient_create` (`Socket_outInitialize`), to interrupt its `poll`; that
//!   pair is all a created client adds.
//! * After disconnect and drop the count is back where it started: in the
//!   bundled build the last client's destroy terminates the library, which
//!   must close that pair again; with a system library the keeper keeps the
//!   library (and its pair) for the life of the process, so the count returns
//!   to what it was once the library was initialized.
//! * More create/connect/disconnect/drop cycles end at that same count (no
//!   socket leaked per cycle; Paho C 1.3.16 leaks the pair on every library
//!   re-initialization, eclipse-paho/paho.mqtt.c#1676).
//!
//! Socket counts are process-wide, so every count is taken in the one test
//! function of this file: under `cargo test` no other test of this binary
//! runs next to it and opens sockets of its own.
//!
//! With a system library and `PAHO_MQTT_SYNC_TEST_ANCHOR=1` (see
//! tests/common/mod.rs) the opt-in anchor client connects at the first
//! `Client::create` and keeps its loopback connection for the life of the
//! process; the test then creates one client first, so that connection is
//! part of the starting count, and checks the same differences.

mod common;

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use anyhow::Context as _;
use common::Broker;

/// Open sockets of this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sockets {
    /// Every `/proc/self/fd` entry that is a socket.
    all: usize,
    /// Of those, TCP (IPv4 or IPv6) sockets.
    tcp: usize,
    /// Of those, Unix-domain sockets.
    unix: usize,
}

impl fmt::Display for Sockets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} sockets ({} TCP, {} Unix)",
            self.all, self.tcp, self.unix
        )
    }
}

/// The inodes in column `column` (0-based) of a `/proc/self/net` table
/// (first line: headers). A missing table (no IPv6, say) has none.
fn table_inodes(name: &str, column: usize) -> HashSet<u64> {
    let text = std::fs::read_to_string(format!("/proc/self/net/{name}")).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(column)?.parse().ok())
        .collect()
}

/// Counts this process's open sockets. An fd that is closed between listing
/// the directory and reading its link is skipped.
fn open_sockets() -> anyhow::Result<Sockets> {
    let mut inodes = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").context("reading /proc/self/fd")? {
        let Ok(entry) = entry else { continue };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        if let Some(rest) = target.strip_prefix("socket:") {
            let inode = rest.trim_matches(['[', ']']).parse::<u64>();
            inodes.push(inode.with_context(|| format!("fd link {target:?}"))?);
        }
    }
    let mut tcp = table_inodes("tcp", 9);
    tcp.extend(table_inodes("tcp6", 9));
    let unix = table_inodes("unix", 6);
    Ok(Sockets {
        all: inodes.len(),
        tcp: inodes.iter().filter(|i| tcp.contains(i)).count(),
        unix: inodes.iter().filter(|i| unix.contains(i)).count(),
    })
}

/// Whether this run uses the opt-in anchor client (system library only).
fn anchor_requested() -> bool {
    !cfg!(feature = "bundled")
        && std::env::var_os("PAHO_MQTT_SYNC_TEST_ANCHOR").is_some_and(|v| v == "1")
}

const ROUNDS: usize = 5;
const CYCLES: usize = 3;
const DISCONNECT: Duration = Duration::from_secs(1);

#[test]
fn a_connected_client_holds_exactly_one_socket() -> anyhow::Result<()> {
    let _w = common::watchdog("sockets", Duration::from_secs(60));
    let broker = Broker::new()?;
    let uri = broker.uri();
    if anchor_requested() {
        drop(common::create(&uri, "warmup")?);
    }

    let start = open_sockets()?;
    let client = common::create(&uri, "sock")?;
    let idle = open_sockets()?;
    eprintln!("sockets: {start} before any client, {idle} once one is created");
    assert_eq!(
        idle.tcp, start.tcp,
        "creating a client opened a TCP socket: {start} before, {idle} after"
    );
    let library = idle.all - start.all;
    assert!(
        library <= 2 && idle.unix - start.unix == library,
        "creating a client may add at most the library's Unix socket pair: {start} before, {idle} after"
    );

    let connected = |when: &str| -> anyhow::Result<()> {
        let now = open_sockets()?;
        assert_eq!(
            (now.all, now.tcp),
            (idle.all + 1, start.tcp + 1),
            "{when}: a connected client must hold exactly one socket, its TCP connection \
             ({start} before the client, {idle} once created, {now} connected)"
        );
        Ok(())
    };
    let disconnected = |when: &str, expected: Sockets| -> anyhow::Result<()> {
        let now = open_sockets()?;
        assert_eq!(
            now, expected,
            "{when}: sockets left open ({start} before the client, {idle} once created)"
        );
        Ok(())
    };

    client.connect(&common::options())?;
    connected("first connect")?;
    for round in 1..=ROUNDS {
        client.disconnect(DISCONNECT)?;
        disconnected(&format!("round {round}, disconnected"), idle)?;
        client.connect(&common::options())?;
        assert!(client.is_connected(), "round {round}: not connected");
        connected(&format!("round {round}, reconnected"))?;
    }

    // A second client adds its own connection and nothing else.
    let other = common::connect(&uri, "sock2")?;
    let both = open_sockets()?;
    assert_eq!(
        (both.all, both.tcp),
        (idle.all + 2, start.tcp + 2),
        "two connected clients: {both} ({idle} with one created client)"
    );
    other.disconnect(DISCONNECT)?;
    drop(other);
    connected("second client gone")?;

    client.disconnect(DISCONNECT)?;
    disconnected("disconnected", idle)?;
    drop(client);
    // Bundled: the last destroy terminates the library, which closes its
    // pair. System library: the keeper keeps the library initialized.
    let end = if cfg!(feature = "bundled") {
        start
    } else {
        idle
    };
    disconnected("disconnected and dropped", end)?;

    for cycle in 1..=CYCLES {
        let c = common::connect(&uri, "cycle")?;
        let now = open_sockets()?;
        assert_eq!(
            now.tcp,
            start.tcp + 1,
            "cycle {cycle}: one TCP connection per connected client ({now})"
        );
        c.disconnect(DISCONNECT)?;
        drop(c);
        disconnected(&format!("cycle {cycle}, disconnected and dropped"), end)?;
    }
    Ok(())
}
