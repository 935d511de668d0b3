//! A scriptable fake MQTT server for hostile-input tests: a listener on
//! `127.0.0.1:0` and one thread that runs the test's script, which accepts
//! the client's connections, reads its packets with a small MQTT packet
//! reader of our own ([`Conn::read_packet`]) and writes whatever bytes the
//! test wants, well-formed or not ([`pkt`] builds the usual ones).
//!
//! Every wait is bounded: accepts and reads take a timeout, and the script
//! also stops at its next wait once the [`FakeBroker`] is dropped.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

/// MQTT control packet types (the high nibble of the first byte).
pub const CONNECT: u8 = 1;
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const PUBACK: u8 = 4;
pub const PUBREC: u8 = 5;
pub const PUBREL: u8 = 6;
pub const PUBCOMP: u8 = 7;
pub const SUBSCRIBE: u8 = 8;
pub const SUBACK: u8 = 9;
pub const UNSUBSCRIBE: u8 = 10;
pub const UNSUBACK: u8 = 11;
pub const PINGREQ: u8 = 12;
pub const PINGRESP: u8 = 13;
pub const DISCONNECT: u8 = 14;

/// How long a script waits for the client by default.
pub const SCRIPT_WAIT: Duration = Duration::from_secs(15);

/// The fake server: its thread runs the script given to [`FakeBroker::start`].
pub struct FakeBroker {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl FakeBroker {
    /// Listens on 127.0.0.1 (an ephemeral port) and runs `script` on a thread
    /// of its own.
    pub fn start<F>(script: F) -> anyhow::Result<FakeBroker>
    where
        F: FnOnce(&Listener) -> anyhow::Result<()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let l = Listener {
            inner: listener,
            stop: stop.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("fake-broker".into())
            .spawn(move || script(&l))?;
        Ok(FakeBroker {
            port,
            stop,
            thread: Some(thread),
        })
    }

    /// `tcp://127.0.0.1:<port>`.
    pub fn uri(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// Waits up to `timeout` for the script to end and returns its result.
    pub fn finish(mut self, timeout: Duration) -> anyhow::Result<()> {
        let t = self.thread.take().expect("finish called once");
        let deadline = Instant::now() + timeout;
        while !t.is_finished() {
            if Instant::now() >= deadline {
                self.stop.store(true, SeqCst);
                bail!("the fake broker's script was still running after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        t.join()
            .map_err(|_| anyhow!("the fake broker's script panicked"))?
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        if let Some(t) = self.thread.take() {
            // The script sees `stop` at its next wait (reads poll every 20 ms).
            let deadline = Instant::now() + Duration::from_secs(5);
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// The listening socket, as the script sees it.
pub struct Listener {
    inner: TcpListener,
    stop: Arc<AtomicBool>,
}

impl Listener {
    /// The next connection, within `timeout`.
    pub fn accept(&self, timeout: Duration) -> anyhow::Result<Conn> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.inner.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false)?;
                    s.set_nodelay(true)?;
                    s.set_read_timeout(Some(Duration::from_millis(20)))?;
                    s.set_write_timeout(Some(Duration::from_secs(10)))?;
                    return Ok(Conn {
                        stream: s,
                        stop: self.stop.clone(),
                        answer_pings: true,
                        pending: Vec::new(),
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e).context("accept"),
            }
            if self.stop.load(SeqCst) {
                bail!("fake broker stopped");
            }
            if Instant::now() >= deadline {
                bail!("no connection within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Whether a connection arrives within `timeout` (`None` if not).
    pub fn try_accept(&self, timeout: Duration) -> Option<Conn> {
        self.accept(timeout).ok()
    }

    /// Accepts a connection and completes the MQTT handshake: reads CONNECT,
    /// answers CONNACK 0 (no session present), then waits 300 ms, so that the
    /// client's connect has returned before the script sends anything else
    /// (a bad packet right behind the CONNACK fails the connect instead).
    /// Returns the connection and the CONNECT packet.
    pub fn accept_client(&self) -> anyhow::Result<(Conn, Packet)> {
        let mut c = self.accept(SCRIPT_WAIT)?;
        let connect = c.expect(CONNECT, SCRIPT_WAIT)?;
        c.write(&pkt::connack(0, 0))?;
        std::thread::sleep(Duration::from_millis(300));
        Ok((c, connect))
    }
}

/// One MQTT packet read from the client.
#[derive(Debug, Clone)]
pub struct Packet {
    /// Packet type (high nibble of the first byte).
    pub kind: u8,
    /// Flags (low nibble of the first byte).
    pub flags: u8,
    /// Everything after the remaining length.
    pub body: Vec<u8>,
}

impl Packet {
    /// The packet identifier of a PUBLISH (QoS 1/2), an ack, SUBSCRIBE or UNSUBSCRIBE.
    pub fn packet_id(&self) -> anyhow::Result<u16> {
        let at = match self.kind {
            PUBLISH => {
                if (self.flags >> 1) & 3 == 0 {
                    bail!("a QoS 0 PUBLISH has no packet id");
                }
                let n = usize::from(u16::from_be_bytes(self.two(0)?));
                2 + n
            }
            PUBACK | PUBREC | PUBREL | PUBCOMP | SUBSCRIBE | UNSUBSCRIBE => 0,
            k => bail!("packet type {k} has no packet id"),
        };
        Ok(u16::from_be_bytes(self.two(at)?))
    }

    /// The protocol level of a CONNECT (4 for MQTT 3.1.1, 3 for 3.1, 5 for 5).
    pub fn protocol_level(&self) -> anyhow::Result<u8> {
        anyhow::ensure!(self.kind == CONNECT, "not a CONNECT: {}", self.kind);
        let n = usize::from(u16::from_be_bytes(self.two(0)?));
        self.body
            .get(2 + n)
            .copied()
            .ok_or_else(|| anyhow!("CONNECT too short"))
    }

    fn two(&self, at: usize) -> anyhow::Result<[u8; 2]> {
        match self.body.get(at..at + 2) {
            Some(b) => Ok([b[0], b[1]]),
            None => bail!("packet type {} too short", self.kind),
        }
    }
}

/// One client connection.
pub struct Conn {
    stream: TcpStream,
    stop: Arc<AtomicBool>,
    /// Whether [`expect`](Conn::expect) answers the PINGREQs it skips.
    pub answer_pings: bool,
    /// Bytes read but not yet consumed.
    pending: Vec<u8>,
}

impl Conn {
    /// Writes raw bytes.
    pub fn write(&mut self, bytes: &[u8]) -> anyhow::Result<()> {
        self.stream
            .write_all(bytes)
            .context("write to the client")?;
        self.stream.flush()?;
        Ok(())
    }

    /// Writes `bytes` in pieces of `chunk` bytes, `pause` apart, until done or
    /// until a write fails (the client closed the connection): returns how
    /// many bytes went out and whether all did.
    pub fn trickle(&mut self, bytes: &[u8], chunk: usize, pause: Duration) -> (usize, bool) {
        let mut sent = 0;
        for piece in bytes.chunks(chunk.max(1)) {
            if self.stop.load(SeqCst) || self.write(piece).is_err() {
                return (sent, false);
            }
            sent += piece.len();
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
        (sent, true)
    }

    /// Fills `buf` from the pending bytes and the socket before `deadline`.
    fn read_full(&mut self, buf: &mut [u8], deadline: Instant) -> anyhow::Result<()> {
        let mut got = 0;
        let take = buf.len().min(self.pending.len());
        buf[..take].copy_from_slice(&self.pending[..take]);
        self.pending.drain(..take);
        got += take;
        while got < buf.len() {
            if self.stop.load(SeqCst) {
                bail!("fake broker stopped");
            }
            if Instant::now() >= deadline {
                bail!("timed out reading from the client");
            }
            match self.stream.read(&mut buf[got..]) {
                Ok(0) => bail!("the client closed the connection"),
                Ok(n) => got += n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("read from the client"),
            }
        }
        Ok(())
    }

    /// Reads the next whole packet within `timeout`.
    pub fn read_packet(&mut self, timeout: Duration) -> anyhow::Result<Packet> {
        let deadline = Instant::now() + timeout;
        let mut first = [0u8; 1];
        self.read_full(&mut first, deadline)?;
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let mut b = [0u8; 1];
            self.read_full(&mut b, deadline)?;
            len |= usize::from(b[0] & 0x7f) << shift;
            shift += 7;
            if b[0] & 0x80 == 0 {
                break;
            }
            if shift >= 28 {
                bail!("malformed remaining length from the client");
            }
        }
        let mut body = vec![0u8; len];
        self.read_full(&mut body, deadline)?;
        Ok(Packet {
            kind: first[0] >> 4,
            flags: first[0] & 0x0f,
            body,
        })
    }

    /// Reads packets until one of type `kind` comes, within `timeout`;
    /// PINGREQs on the way are answered (if [`answer_pings`](Self::answer_pings))
    /// and skipped, anything else is an error.
    pub fn expect(&mut self, kind: u8, timeout: Duration) -> anyhow::Result<Packet> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let p = self
                .read_packet(left)
                .with_context(|| format!("waiting for packet type {kind}"))?;
            if p.kind == kind {
                return Ok(p);
            }
            if p.kind == PINGREQ {
                if self.answer_pings {
                    self.write(&pkt::pingresp())?;
                }
                continue;
            }
            bail!("expected packet type {kind}, got {} ({:?})", p.kind, p.body);
        }
    }

    /// Waits up to `timeout` for the client to close the connection, reading
    /// (and dropping) whatever it sends meanwhile. True if it closed.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.pending.clear();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline && !self.stop.load(SeqCst) {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// Packet builders (MQTT 3.1.1 encodings).
pub mod pkt {
    use super::*;

    /// The remaining-length encoding of `len`.
    pub fn remaining_length(mut len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut b = (len % 128) as u8;
            len /= 128;
            if len > 0 {
                b |= 0x80;
            }
            out.push(b);
            if len == 0 {
                return out;
            }
        }
    }

    /// A packet: first byte, remaining length, body.
    pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        out.extend(remaining_length(body.len()));
        out.extend_from_slice(body);
        out
    }

    /// CONNACK with acknowledge flags and return code.
    pub fn connack(flags: u8, code: u8) -> Vec<u8> {
        packet(CONNACK << 4, &[flags, code])
    }

    /// SUBACK for packet `id` with these return codes.
    pub fn suback(id: u16, codes: &[u8]) -> Vec<u8> {
        let mut body = id.to_be_bytes().to_vec();
        body.extend_from_slice(codes);
        packet(SUBACK << 4, &body)
    }

    /// UNSUBACK for packet `id`.
    pub fn unsuback(id: u16) -> Vec<u8> {
        packet(UNSUBACK << 4, &id.to_be_bytes())
    }

    /// PUBACK, PUBREC, PUBREL (with its required flags) or PUBCOMP for `id`.
    pub fn ack(kind: u8, id: u16) -> Vec<u8> {
        let flags = if kind == PUBREL { 2 } else { 0 };
        packet(kind << 4 | flags, &id.to_be_bytes())
    }

    /// PINGRESP.
    pub fn pingresp() -> Vec<u8> {
        packet(PINGRESP << 4, &[])
    }

    /// PUBLISH; `qos` goes into the header bits as given (even 3), with a
    /// packet id when it is not 0.
    pub fn publish(topic: &str, payload: &[u8], qos: u8, id: u16) -> Vec<u8> {
        let mut body = (topic.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(topic.as_bytes());
        if qos != 0 {
            body.extend_from_slice(&id.to_be_bytes());
        }
        body.extend_from_slice(payload);
        packet(PUBLISH << 4 | (qos & 3) << 1, &body)
    }
}
