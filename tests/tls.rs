//! TLS (feature `ssl`): a private Mosquitto with a TLS listener and
//! certificates made here with the `openssl` command, checked with the safe
//! defaults of `SslOptions` (server chain *and* host name verified).
#![cfg(feature = "ssl")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context as _};
use common::{Broker, TempDir, WAIT};
use paho_mqtt_sync::{
    Client, ConnectErrorKind, ConnectOptions, Error, Persistence, QoS, SslOptions,
};

/// A CA and a server certificate signed by it for the given subjectAltName.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new(server_san: &str) -> anyhow::Result<Pki> {
        let dir = TempDir::new("pki")?;
        let p = dir.path();
        let openssl = |args: &[&str]| -> anyhow::Result<()> {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(p)
                .output()
                .context("running openssl (apt-get install openssl)")?;
            ensure!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(())
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=paho-mqtt-sync test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ])?;
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=test broker",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ])?;
        std::fs::write(p.join("ext.cnf"), format!("subjectAltName={server_san}\n"))?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.crt",
        ])?;
        Ok(Pki { dir })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A broker whose only listener speaks TLS with this server certificate.
    fn broker(&self) -> anyhow::Result<Broker> {
        let f = |n: &str| self.file(n).display().to_string();
        Broker::builder()
            .config_line(&format!("cafile {}", f("ca.crt")))
            .config_line(&format!("certfile {}", f("server.crt")))
            .config_line(&format!("keyfile {}", f("server.key")))
            .start()
    }
}

fn ssl_uri(broker: &Broker) -> String {
    format!("ssl://127.0.0.1:{}", broker.port())
}

fn connect(uri: &str, ssl: SslOptions) -> paho_mqtt_sync::Result<Client> {
    let c = Client::create(uri, &common::client_id("tls"), Persistence::None)?;
    c.connect(
        &ConnectOptions::new()
            .connect_timeout(Duration::from_secs(5))
            .ssl(ssl),
    )?;
    Ok(c)
}

#[test]
fn verified_round_trip_at_every_qos() -> anyhow::Result<()> {
    let pki = Pki::new("IP:127.0.0.1,DNS:localhost")?;
    let broker = pki.broker()?;
    let c = connect(
        &ssl_uri(&broker),
        SslOptions::new().trust_store(pki.file("ca.crt")),
    )?;
    let topic = common::topic("tls");
    c.subscribe(&topic, QoS::ExactlyOnce)?;
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
        let payload = format!("over tls at {qos:?}");
        let t = c.publish(&topic, payload.as_bytes(), qos, false)?;
        c.wait_for_completion(t, WAIT)?;
        let (got_topic, msg) = common::recv(&c, WAIT)?;
        assert_eq!(got_topic, topic);
        assert_eq!(msg.payload(), payload.as_bytes());
        assert_eq!(msg.qos(), qos);
    }
    c.disconnect(Duration::from_secs(1))?;
    Ok(())
}

#[test]
fn untrusted_server_is_refused_by_default() -> anyhow::Result<()> {
    let pki = Pki::new("IP:127.0.0.1")?;
    let broker = pki.broker()?;
    // No trust store: the test CA is not among the system's CAs.
    let r = connect(&ssl_uri(&broker), SslOptions::new());
    let Err(Error::Connect(e)) = &r else {
        panic!("an unknown CA must be refused, got {r:?}");
    };
    assert_eq!(e.kind(), ConnectErrorKind::TlsCertificate, "{e}");
    let text = e.to_string();
    assert!(text.contains("certificate verify failed"), "{text}");
    // Reported once: no MQTT 3.1 fallback repeats the handshake.
    assert_eq!(
        text.matches("certificate verify failed").count(),
        1,
        "{text}"
    );
    assert_eq!(r.as_ref().map(|_| ()).unwrap_err().code(), -1);
    // Turning verification off (tests only) connects.
    connect(
        &ssl_uri(&broker),
        SslOptions::new()
            .enable_server_cert_auth(false)
            .verify(false),
    )?;
    Ok(())
}

#[test]
fn host_name_is_checked_by_default() -> anyhow::Result<()> {
    // Trusted chain, but the certificate is for another host.
    let pki = Pki::new("DNS:not-this-host.example")?;
    let broker = pki.broker()?;
    let trusted = || SslOptions::new().trust_store(pki.file("ca.crt"));
    let r = connect(&ssl_uri(&broker), trusted());
    let Err(Error::Connect(e)) = &r else {
        panic!("a certificate for another host must be refused, got {r:?}");
    };
    if cfg!(feature = "bundled") {
        // Fix 030 makes the library say so.
        assert_eq!(e.kind(), ConnectErrorKind::TlsHostName, "{e}");
        assert!(e.to_string().contains("127.0.0.1"), "{e}");
    } else {
        assert_eq!(e.kind(), ConnectErrorKind::TlsHandshake, "{e}");
    }
    // The C initializer's behaviour (chain only) has to be asked for.
    connect(&ssl_uri(&broker), trusted().verify(false))?;
    Ok(())
}

#[test]
fn missing_tls_files_are_errors_before_connecting() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = Client::create(
        &ssl_uri(&broker),
        &common::client_id("tls"),
        Persistence::None,
    )?;
    let missing = Path::new("/nonexistent/paho-mqtt-sync/ca.pem");
    let r = c.connect(&ConnectOptions::new().ssl(SslOptions::new().trust_store(missing)));
    match r {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("ca.pem"), "{msg}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    let r = c.connect(&ConnectOptions::new().ssl(SslOptions::new().key_store(missing)));
    assert!(matches!(r, Err(Error::InvalidArgument(_))), "{r:?}");
    // An ssl:// URI without TLS options is an error that says so, before
    // anything is sent (C gives a NULL-parameter error, -6).
    match c.connect(&ConnectOptions::new()) {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("TLS"), "{msg}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    Ok(())
}

#[test]
fn plain_tcp_to_a_tls_port_is_a_protocol_error() -> anyhow::Result<()> {
    let pki = Pki::new("IP:127.0.0.1")?;
    let broker = pki.broker()?;
    let c = common::create(&format!("tcp://127.0.0.1:{}", broker.port()), "plain")?;
    let r = c.connect(&ConnectOptions::new().connect_timeout(Duration::from_secs(5)));
    let Err(Error::Connect(e)) = &r else {
        panic!("expected a connect error, got {r:?}");
    };
    assert_eq!(e.kind(), ConnectErrorKind::ProtocolRejected, "{e}");
    assert!(e.to_string().contains("ssl://"), "{e}");
    Ok(())
}
