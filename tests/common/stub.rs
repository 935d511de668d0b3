//! Servers written here for replies a real Mosquitto never sends: a minimal
//! scripted MQTT 3.1.1 server, and a TCP server that never answers.

use std::time::Duration;

/// A minimal scripted MQTT 3.1.1 server on 127.0.0.1, for the few replies a
/// real Mosquitto never sends: CONNECT gets CONNACK 0, PINGREQ gets PINGRESP,
/// SUBSCRIBE gets a SUBACK granting the requested QoS, except `0x80` (refused)
/// for filters starting with `refuse`, and for a first filter starting with
/// `nonutf8` two messages follow (topic `nonutf8/\xff`, not UTF-8, then
/// `nonutf8/ok`); UNSUBSCRIBE gets UNSUBACK; everything
/// else is ignored (no message routing). Its threads live as long as the
/// process. Returns the port.
pub fn stub_mqtt_server() -> anyhow::Result<u16> {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    std::thread::Builder::new()
        .name("mqtt-stub".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                std::thread::spawn(move || {
                    let mut byte = [0u8; 1];
                    loop {
                        // Fixed header: type byte, then the remaining length
                        // (variable-length integer), then that many bytes.
                        if s.read_exact(&mut byte).is_err() {
                            return;
                        }
                        let kind = byte[0] >> 4;
                        let (mut len, mut shift) = (0usize, 0);
                        loop {
                            if s.read_exact(&mut byte).is_err() || shift > 21 {
                                return;
                            }
                            len |= usize::from(byte[0] & 0x7f) << shift;
                            shift += 7;
                            if byte[0] & 0x80 == 0 {
                                break;
                            }
                        }
                        let mut body = vec![0u8; len];
                        if s.read_exact(&mut body).is_err() {
                            return;
                        }
                        let reply: Vec<u8> = match kind {
                            1 => vec![0x20, 0x02, 0x00, 0x00],
                            8 if body.len() >= 2 => {
                                // Packet id, then (length, filter, QoS) triples.
                                let mut codes = Vec::new();
                                let mut i = 2;
                                while i + 2 <= body.len() {
                                    let n = usize::from(body[i]) << 8 | usize::from(body[i + 1]);
                                    let Some(filter) = body.get(i + 2..i + 2 + n) else {
                                        return;
                                    };
                                    let Some(&qos) = body.get(i + 2 + n) else {
                                        return;
                                    };
                                    codes.push(if filter.starts_with(b"refuse") {
                                        0x80
                                    } else {
                                        qos
                                    });
                                    i += 3 + n;
                                }
                                let mut r = vec![0x90, (2 + codes.len()) as u8, body[0], body[1]];
                                r.extend(codes);
                                if body[4..].starts_with(b"nonutf8") {
                                    // Two QoS 0 PUBLISHes: topic "nonutf8/\xff"
                                    // (not UTF-8), then "nonutf8/ok".
                                    r.extend([0x30, 14, 0, 9]);
                                    r.extend(b"nonutf8/\xffbad");
                                    r.extend([0x30, 16, 0, 10]);
                                    r.extend(b"nonutf8/okgood");
                                }
                                r
                            }
                            10 if body.len() >= 2 => vec![0xb0, 0x02, body[0], body[1]],
                            12 => vec![0xd0, 0x00],
                            14 => return,
                            _ => Vec::new(),
                        };
                        if !reply.is_empty() && s.write_all(&reply).is_err() {
                            return;
                        }
                    }
                });
            }
        })?;
    Ok(port)
}

/// A TCP server that accepts connections and reads whatever comes, but never
/// answers: an MQTT broker that never sends CONNACK. Stops when dropped.
pub struct SilentServer {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl SilentServer {
    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn start() -> anyhow::Result<SilentServer> {
        use std::io::Read;
        use std::sync::atomic::Ordering::SeqCst;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            let mut received = 0;
            let mut buf = [0u8; 1024];
            while !s.load(SeqCst) {
                if let Ok((c, _)) = listener.accept() {
                    c.set_nonblocking(true).expect("nonblocking");
                    held.push(c);
                }
                for c in &mut held {
                    if let Ok(n) = c.read(&mut buf) {
                        received += n;
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            received
        });
        Ok(SilentServer {
            port,
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the server; returns how many bytes it received.
    pub fn finish(mut self) -> usize {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread
            .take()
            .map_or(0, |t| t.join().expect("silent server"))
    }
}

impl Drop for SilentServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
