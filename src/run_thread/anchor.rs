//! The keeper and the anchor (see the parent module): a client of the crate's
//! own, created before the first user client and never destroyed, so that
//! `MQTTClient_terminate` never runs. As the *anchor* (opt-in) it is also
//! connected for the life of the process to a stub on the loopback interface,
//! so the library's background thread never stops.
//!
//! The stub accepts one TCP connection on `127.0.0.1` (an ephemeral port),
//! checks that the CONNECT comes from the anchor, answers with a CONNACK and
//! keeps its end of the connection open, silent, for good; the listener is
//! closed at once. The anchor connects with keepalive 0, so it never sends
//! anything after its CONNECT. If any step fails (no loopback networking,
//! say), it stays a keeper, and the crate keeps serializing connects and
//! disconnects.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::raw::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::ffi;

/// The anchor's client id, checked in its CONNECT.
const ANCHOR_ID: &str = "paho-mqtt-sync-anchor";
/// How long setting up the anchor may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(5);

struct Anchor {
    /// The anchor has its message-arrived callback ([`anchor_message`]).
    proofs: bool,
    /// The stub's end of the connection, kept open for the life of the process.
    stub: Option<TcpStream>,
}

static ANCHOR: OnceLock<Anchor> = OnceLock::new();

/// A client with callbacks connected, so the library's background thread
/// runs, and with the anchor connected it never stops.
static RUN_THREAD_UP: AtomicBool = AtomicBool::new(false);

/// Records a successful connect of a client with callbacks (every client of
/// this crate): the library's background thread is running.
pub(crate) fn run_thread_started() {
    RUN_THREAD_UP.store(true, SeqCst);
}

/// Creates the keeper once, and connects it as the anchor when `connect`.
pub(crate) fn ensure(connect: bool) {
    ANCHOR.get_or_init(|| create(connect));
}

/// Whether the anchor is connected (false before [`ensure`]).
pub(crate) fn is_connected() -> bool {
    ANCHOR_UP.load(SeqCst)
}

/// The anchor's connection is up: set once it connected, cleared by its
/// connection-lost callback (a daemon closing every file descriptor, say), so
/// the crate falls back to its lifecycle lock.
static ANCHOR_UP: AtomicBool = AtomicBool::new(false);

fn create(connect: bool) -> Anchor {
    let keeper = Anchor {
        proofs: false,
        stub: None,
    };
    // A SocketAddr, not ("127.0.0.1", 0): no address parser, no resolver.
    let any_port = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    let listener = if connect {
        TcpListener::bind(any_port).and_then(|l| {
            let port = l.local_addr()?.port();
            Ok((l, port))
        })
    } else {
        Err(io::ErrorKind::Unsupported.into())
    };
    // Without a listener the URI's port does not matter: the keeper is only
    // created, which keeps MQTTClient_terminate away.
    let port = listener.as_ref().map_or(1, |(_, p)| *p);
    let uri = format!("tcp://127.0.0.1:{port}\0");
    let mut handle: ffi::MQTTClient = std::ptr::null_mut();
    // SAFETY: NUL-terminated strings valid for the call; the handle is never
    // destroyed (it lives as long as the process) and gets a callback only
    // once connected, below.
    let rc = unsafe {
        ffi::MQTTClient_create(
            &mut handle,
            uri.as_ptr().cast::<c_char>(),
            c"paho-mqtt-sync-anchor".as_ptr(),
            ffi::MQTTCLIENT_PERSISTENCE_NONE,
            std::ptr::null_mut(),
        )
    };
    if rc != ffi::MQTTCLIENT_SUCCESS {
        log::warn!("paho-mqtt-sync: cannot create the keeper client ({rc})");
        return keeper;
    }
    if !connect {
        return keeper;
    }
    let Ok((listener, _)) = listener else {
        log::debug!("paho-mqtt-sync: no loopback listener for the anchor");
        return keeper;
    };
    let stub = std::thread::Builder::new()
        .name("paho-anchor-stub".into())
        .spawn(move || serve(&listener));
    let mut opts = ffi::MQTTClient_connectOptions {
        keepAliveInterval: 0,
        cleansession: 1,
        MQTTVersion: ffi::MQTTVERSION_3_1_1,
        // One second more than meant: the library's waits drop sub-second parts.
        connectTimeout: SETUP_TIMEOUT.as_secs() as i32 + 1,
        ..ffi::MQTTClient_connectOptions::default()
    };
    let rc = match &stub {
        // SAFETY: valid handle and options for the call.
        Ok(_) => unsafe { ffi::MQTTClient_connect(handle, &mut opts) },
        Err(_) => ffi::MQTTCLIENT_FAILURE,
    };
    let stub = stub.ok().and_then(|t| t.join().ok()).flatten();
    let connected = rc == ffi::MQTTCLIENT_SUCCESS && stub.is_some();
    if !connected {
        log::debug!("paho-mqtt-sync: the anchor client did not connect ({rc})");
    }
    // Callbacks after the connect, so that the connect did not start the
    // library's background thread (the first client connect does).
    // SAFETY: valid handle; the callbacks are static functions using no context.
    let proofs = connected
        && unsafe {
            ffi::MQTTClient_setCallbacks(
                handle,
                std::ptr::null_mut(),
                Some(anchor_lost),
                Some(anchor_message),
                None,
            )
        } == ffi::MQTTCLIENT_SUCCESS;
    // SAFETY: valid handle.
    ANCHOR_UP.store(
        connected && unsafe { ffi::MQTTClient_isConnected(handle) } != 0,
        SeqCst,
    );
    Anchor { proofs, stub }
}

/// Runs `connect` (a `MQTTClient_connect` call) while keeping the anchor's
/// connection readable for the library's background thread.
///
/// That thread polls its sockets with a 100 ms timeout and only looks at a
/// socket added meanwhile (the new connection) when a poll returns. When the
/// TCP connect is still in progress the library interrupts the poll; but a
/// poll that returns with no socket ready makes `MQTTClient_cycle` sleep
/// 100 ms (its guard against a busy loop), and a connect then waited ~100 ms
/// for its CONNACK. A PINGRESP written to the anchor's stub connection makes
/// the anchor's socket ready: the library reads it (it only clears the
/// anchor's unused ping flag; keepalive is 0) instead of sleeping, and polls
/// again, now with the new socket. A burst goes out just before the connect,
/// and more while it runs: every 50 µs for 3 ms, then at growing intervals.
///
/// Before the background thread first started (the first connect of the
/// process), nothing would read them: the connect goes as it is.
pub(crate) fn with_wakeups<R>(connect: impl FnOnce() -> R) -> R {
    let stub = ANCHOR.get().and_then(|a| a.stub.as_ref());
    let Some(stub) = stub.filter(|_| RUN_THREAD_UP.load(SeqCst)) else {
        return connect();
    };
    let Ok(mut stub) = stub.try_clone() else {
        return connect();
    };
    const PINGRESP: [u8; 2] = [0xd0, 0x00];
    // A burst first: the library reads one packet per turn of its loop, so
    // the anchor's socket stays readable while the connect sets up the new
    // socket and interrupts the poll.
    let _ = stub.write_all(&PINGRESP.repeat(16));
    let done = Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    let waker = std::thread::Builder::new()
        .name("paho-anchor-wake".into())
        .spawn(move || {
            // Densely while the library sets the connection up (its
            // interrupt comes within a few hundred microseconds), then
            // sparsely. A failed write only loses the speed-up.
            let start = Instant::now();
            let mut pause = Duration::from_micros(50);
            while !done2.load(SeqCst) && stub.write_all(&PINGRESP).is_ok() {
                std::thread::park_timeout(pause);
                let elapsed = start.elapsed();
                if elapsed > Duration::from_millis(150) {
                    return;
                }
                if elapsed > Duration::from_millis(3) {
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
            }
        });
    let r = connect();
    done.store(true, SeqCst);
    if let Ok(t) = waker {
        t.thread().unpark();
        let _ = t.join();
    }
    r
}

/// Asks the library's background thread for a sign of progress: a QoS 0
/// PUBLISH sent to the anchor, which that thread hands to
/// [`anchor_message`], which bumps [`EPOCH`]. Returns false when no sign can
/// come (no anchor, or the thread never started, in which case no callback
/// can be running either).
pub(crate) fn request_progress() -> bool {
    let Some(anchor) = ANCHOR.get().filter(|a| a.proofs) else {
        return false;
    };
    let Some(mut stub) = anchor.stub.as_ref() else {
        return false;
    };
    // PUBLISH, QoS 0, topic "p", no payload.
    RUN_THREAD_UP.load(SeqCst) && stub.write_all(&[0x30, 0x03, 0x00, 0x01, b'p']).is_ok()
}

/// The anchor's connection-lost callback.
unsafe extern "C" fn anchor_lost(_context: *mut c_void, _cause: *mut c_char) {
    ANCHOR_UP.store(false, SeqCst);
    log::warn!("paho-mqtt-sync: the anchor client lost its connection; connects and disconnects are serialized from now on");
}

/// The anchor's message-arrived callback (see [`request_progress`]).
unsafe extern "C" fn anchor_message(
    _context: *mut c_void,
    topic: *mut c_char,
    _topic_len: c_int,
    mut message: *mut ffi::MQTTClient_message,
) -> c_int {
    super::progress();
    // SAFETY: the library hands over the message and topic it allocated; we
    // return 1, so they are ours to free.
    unsafe {
        ffi::MQTTClient_freeMessage(&mut message);
        ffi::MQTTClient_free(topic.cast());
    }
    1
}

/// Accepts the anchor's connection, checks its CONNECT, answers CONNACK.
/// (`None` on any failure: the anchor then stays unconnected; errors are not
/// formatted, to keep this set-up code small in every binary.)
fn serve(listener: &TcpListener) -> Option<TcpStream> {
    listener.set_nonblocking(true).ok()?;
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let mut stream = loop {
        match listener.accept() {
            Ok((s, peer)) if peer.ip().is_loopback() => break s,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(_) => return None,
        }
    };
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(SETUP_TIMEOUT)).ok()?;
    let body = read_connect(&mut stream)?;
    if client_id_of(&body) != Some(ANCHOR_ID.as_bytes()) {
        return None;
    }
    // CONNACK: no session present, return code 0.
    stream.write_all(&[0x20, 0x02, 0x00, 0x00]).ok()?;
    stream.set_read_timeout(None).ok()?;
    Some(stream)
}

/// Reads a CONNECT packet and returns its variable header and payload.
fn read_connect(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).ok()?;
    if byte[0] != 0x10 {
        return None;
    }
    let mut len = 0usize;
    for shift in (0..4).map(|i| 7 * i) {
        stream.read_exact(&mut byte).ok()?;
        len |= usize::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            if len > 1024 {
                return None;
            }
            let mut body = vec![0u8; len];
            stream.read_exact(&mut body).ok()?;
            return Some(body);
        }
    }
    None
}

/// The client id of a CONNECT body (MQTT 3.1.1: protocol name, level, flags,
/// keepalive, then the client id).
fn client_id_of(body: &[u8]) -> Option<&[u8]> {
    let str_at = |at: usize| -> Option<(&[u8], usize)> {
        let len = usize::from(u16::from_be_bytes([*body.get(at)?, *body.get(at + 1)?]));
        Some((body.get(at + 2..at + 2 + len)?, at + 2 + len))
    };
    let (name, next) = str_at(0)?;
    if name != b"MQTT" {
        return None;
    }
    // level (1), flags (1), keepalive (2)
    Some(str_at(next + 4)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_connect_body() {
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 0];
        body.extend_from_slice(&(ANCHOR_ID.len() as u16).to_be_bytes());
        body.extend_from_slice(ANCHOR_ID.as_bytes());
        assert_eq!(client_id_of(&body), Some(ANCHOR_ID.as_bytes()));
        assert_eq!(client_id_of(&body[..12]), None);
        body[2] = b'X';
        assert_eq!(client_id_of(&body), None);
    }
}
