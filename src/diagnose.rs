//! Why a connect failed. `MQTTClient_connect` returns -1 for every network,
//! TLS and protocol failure; this module finds out which it was, for
//! [`ConnectError`]:
//!
//! * TLS: OpenSSL's error texts, which the library hands to the
//!   per-connection `ssl_error_cb` ([`TlsErrors`] collects them for each
//!   client; the bundled build also reports a certificate that does not match
//!   the host name there, fix 030).
//! * otherwise, after the failure: the host name is resolved and one plain
//!   TCP connection is opened to it and closed at once (nothing is sent),
//!   which tells an unknown host, a refused or unreachable port, and a server
//!   that accepted the connection but never sent a CONNACK (it timed out) or
//!   closed it without one (it does not speak this MQTT, or not over this
//!   transport).

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::context::lock;
use crate::error::{ConnectError, ConnectErrorKind};

/// OpenSSL error texts reported for one client since its last connect began.
#[derive(Default)]
pub(crate) struct TlsErrors(Mutex<Vec<String>>);

impl TlsErrors {
    /// Adds one text (repeats of the same text are kept once).
    #[cfg_attr(not(feature = "ssl"), allow(dead_code))]
    pub(crate) fn push(&self, text: &str) {
        let text = text.trim_end();
        let mut v = lock(&self.0);
        if !v.iter().any(|t| t == text) && v.len() < 16 {
            v.push(text.to_owned());
        }
    }

    /// Takes the texts gathered so far.
    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.0))
    }
}

/// How long the TCP probe may take per address.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The schemes the library connects with TLS.
pub(crate) fn is_tls_uri(uri: &str) -> bool {
    ["ssl://", "tls://", "mqtts://", "wss://"]
        .iter()
        .any(|s| uri.starts_with(s))
}

/// Host and port of a server URI (`tcp://host:port`, `host:port`,
/// `ws://host:port/path`, `[::1]:1883`), or the path of `unix://path`.
enum Target {
    Net(String, u16),
    Unix(String),
}

fn target(uri: &str) -> Option<Target> {
    let (scheme, rest) = uri.split_once("://").unwrap_or(("tcp", uri));
    if scheme == "unix" {
        return Some(Target::Unix(rest.to_owned()));
    }
    let default_port = match scheme {
        "ssl" | "tls" | "mqtts" => 8883,
        "ws" => 80,
        "wss" => 443,
        _ => 1883,
    };
    let authority = rest.split('/').next()?;
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    Some(Target::Net(host.to_owned(), port))
}

/// Explains a failed connect to `uris` (tried in order) that took `elapsed`
/// of its `timeout`, given the TLS errors reported meanwhile.
pub(crate) fn diagnose(
    uris: &[&str],
    tls_errors: &[String],
    elapsed: Duration,
    timeout: Duration,
) -> ConnectError {
    let last = uris.last().copied().unwrap_or_default();
    if !tls_errors.is_empty() {
        let text = tls_errors.join("; ");
        let kind = if text.contains("does not match host name") {
            ConnectErrorKind::TlsHostName
        } else if text.contains("certificate verify failed") {
            ConnectErrorKind::TlsCertificate
        } else {
            ConnectErrorKind::TlsHandshake
        };
        let what = match kind {
            ConnectErrorKind::TlsHostName => "TLS: the server's certificate is not for this host",
            ConnectErrorKind::TlsCertificate => "TLS: the server's certificate did not verify",
            _ => "TLS handshake failed",
        };
        return error(kind, last, format!("{what} ({text})"), None);
    }
    let timed_out = elapsed + Duration::from_millis(500) >= timeout;
    let mut found: Vec<ConnectError> = uris
        .iter()
        .map(|uri| probe(uri, timed_out, timeout))
        .collect();
    let mut e = found.pop().unwrap_or_else(|| {
        error(
            ConnectErrorKind::Network,
            last,
            "no server URI".into(),
            None,
        )
    });
    if !found.is_empty() {
        let earlier: Vec<String> = found.iter().map(|f| f.to_string()).collect();
        e.message = format!("{} (before that: {})", e.message, earlier.join("; "));
    }
    e
}

fn error(
    kind: ConnectErrorKind,
    uri: &str,
    message: String,
    io: Option<io::Error>,
) -> ConnectError {
    ConnectError {
        kind,
        uri: uri.to_owned(),
        message,
        io: io.map(Arc::new),
    }
}

/// Resolves and probes one URI (see the module docs).
fn probe(uri: &str, timed_out: bool, timeout: Duration) -> ConnectError {
    if uri.is_empty() {
        return error(
            ConnectErrorKind::Network,
            uri,
            "the connect failed (Paho C code -1); the server URI of a client adopted with \
             from_raw is unknown to the crate, which cannot say more"
                .into(),
            None,
        );
    }
    let reached = |how: String| {
        if timed_out {
            error(
                ConnectErrorKind::Timeout,
                uri,
                format!("{how}, but no CONNACK came within the connect timeout ({timeout:?})"),
                None,
            )
        } else if is_tls_uri(uri) {
            error(
                ConnectErrorKind::TlsHandshake,
                uri,
                format!(
                    "{how}, but the TLS connection failed without an OpenSSL error (with an \
                     unpatched Paho C this is how a certificate that is not for this host name \
                     shows)"
                ),
                None,
            )
        } else {
            error(
                ConnectErrorKind::ProtocolRejected,
                uri,
                format!(
                    "{how}, but the server closed the connection without a CONNACK (not this \
                     MQTT version, or not MQTT on this transport: a TLS port needs ssl://)"
                ),
                None,
            )
        }
    };
    match target(uri) {
        None => error(
            ConnectErrorKind::Network,
            uri,
            "the server URI has no host and port the crate can read".into(),
            None,
        ),
        Some(Target::Unix(path)) => match std::os::unix::net::UnixStream::connect(&path) {
            Ok(_) => reached(format!("the socket {path} accepted a connection")),
            Err(e) => {
                let kind = match e.kind() {
                    io::ErrorKind::ConnectionRefused => ConnectErrorKind::ConnectionRefused,
                    _ => ConnectErrorKind::Network,
                };
                error(kind, uri, format!("cannot connect to {path}: {e}"), Some(e))
            }
        },
        Some(Target::Net(host, port)) => {
            let addrs = match (host.as_str(), port).to_socket_addrs() {
                Ok(a) => a.collect::<Vec<_>>(),
                Err(e) => {
                    return error(
                        ConnectErrorKind::HostNotResolved,
                        uri,
                        format!("the host name {host:?} did not resolve: {e}"),
                        Some(e),
                    )
                }
            };
            let mut last_err = None;
            for addr in addrs.iter().take(4) {
                match TcpStream::connect_timeout(addr, PROBE_TIMEOUT) {
                    Ok(_) => return reached(format!("{addr} accepts TCP connections")),
                    Err(e) => last_err = Some((*addr, e)),
                }
            }
            match last_err {
                None => error(
                    ConnectErrorKind::HostNotResolved,
                    uri,
                    format!("the host name {host:?} resolved to no address"),
                    None,
                ),
                Some((addr, e)) => {
                    let (kind, what) = match e.kind() {
                        io::ErrorKind::ConnectionRefused => (
                            ConnectErrorKind::ConnectionRefused,
                            "connection refused (nothing listens on that port)",
                        ),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                            (ConnectErrorKind::Network, "no answer to the TCP connect")
                        }
                        _ => (ConnectErrorKind::Network, "the network failed"),
                    };
                    error(kind, uri, format!("{what}: {addr}: {e}"), Some(e))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(uri: &str) -> Option<(String, u16)> {
        match target(uri)? {
            Target::Net(h, p) => Some((h, p)),
            Target::Unix(_) => None,
        }
    }

    #[test]
    fn reads_server_uris() {
        assert_eq!(
            net("tcp://localhost:1884"),
            Some(("localhost".into(), 1884))
        );
        assert_eq!(net("mqtt://h"), Some(("h".into(), 1883)));
        assert_eq!(net("ssl://h"), Some(("h".into(), 8883)));
        assert_eq!(net("ws://h:9001/mqtt"), Some(("h".into(), 9001)));
        assert_eq!(net("tcp://[::1]:1"), Some(("::1".into(), 1)));
        assert_eq!(net("127.0.0.1:5"), Some(("127.0.0.1".into(), 5)));
        assert_eq!(net("tcp://h:notaport"), None);
        assert!(matches!(target("unix:///tmp/s"), Some(Target::Unix(p)) if p == "/tmp/s"));
        assert!(is_tls_uri("mqtts://h") && !is_tls_uri("tcp://h"));
    }

    #[test]
    fn tls_texts_pick_the_kind() {
        let t = Duration::from_secs(5);
        let d = |s: &str| diagnose(&["ssl://h:1"], &[s.to_owned()], Duration::ZERO, t).kind;
        assert_eq!(
            d("error:0A000086:SSL routines::certificate verify failed"),
            ConnectErrorKind::TlsCertificate
        );
        assert_eq!(
            d("certificate does not match host name h"),
            ConnectErrorKind::TlsHostName
        );
        assert_eq!(
            d("error:0A00010B:SSL routines::wrong version number"),
            ConnectErrorKind::TlsHandshake
        );
    }
}
