//! `tls_publish`: `MQTTClient_publish` over TLS, with the options of the C
//! tools' `--cafile`, `--cert` and `--key` (`MQTTClient_SSLOptions`). Needs
//! the `ssl` feature.
//!
//! ```sh
//! cargo run --features ssl --example tls_publish -- ssl://broker.example:8883 ca.crt
//! cargo run --features ssl --example tls_publish -- ssl://broker.example:8883 ca.crt client.crt client.key
//! ```
//!
//! The server is verified the way `SslOptions::new()` does by default: its
//! certificate chain against the CA file, *and* its host name against the
//! URI's (the C initializer checks only the chain). The client certificate
//! and key are sent when the broker asks for one (`require_certificate` in
//! Mosquitto).

use std::process::ExitCode;
use std::time::Duration;

use paho_mqtt_sync::{Client, ConnectOptions, Message, Persistence, QoS, SslOptions};

const CLIENTID: &str = "ExampleClientPubTLS";
const TOPIC: &str = "MQTT Examples";
const PAYLOAD: &str = "Hello World!";
const QOS: QoS = QoS::AtLeastOnce;
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (uri, ca, client_cert) = match args.as_slice() {
        [uri, ca] => (uri, ca, None),
        [uri, ca, cert, key] => (uri, ca, Some((cert, key))),
        _ => {
            eprintln!("usage: tls_publish ssl://HOST:PORT CA_FILE [CLIENT_CERT CLIENT_KEY]");
            return ExitCode::from(64);
        }
    };
    println!("Using server at {uri}");

    let mut ssl = SslOptions::new().trust_store(ca);
    if let Some((cert, key)) = client_cert {
        ssl = ssl.key_store(cert).private_key(key);
    }
    let conn_opts = ConnectOptions::new()
        .keep_alive_interval(Duration::from_secs(20))
        .clean_session(true)
        .connect_timeout(TIMEOUT)
        .ssl(ssl);

    let client = match Client::create(uri, CLIENTID, Persistence::None) {
        Ok(c) => c,
        Err(e) => {
            println!("Failed to create client: {e} (return code {})", e.code());
            return ExitCode::FAILURE;
        }
    };
    // A failed TLS handshake (unknown CA, wrong host name, refused client
    // certificate) is return code -1, as in C; `set_trace_level` shows why.
    if let Err(e) = client.connect(&conn_opts) {
        println!("Failed to connect: {e} (return code {})", e.code());
        return ExitCode::FAILURE;
    }
    println!("Connected over TLS");

    let token = match client.publish_message(TOPIC, &Message::new(PAYLOAD, QOS, false)) {
        Ok(t) => t,
        Err(e) => {
            println!("Failed to publish message: {e} (return code {})", e.code());
            return ExitCode::FAILURE;
        }
    };
    println!(
        "Waiting for up to {} seconds for publication of {PAYLOAD}\n\
         on topic {TOPIC} for client with ClientID: {CLIENTID}",
        TIMEOUT.as_secs()
    );
    let mut status = ExitCode::SUCCESS;
    match client.wait_for_completion(token, TIMEOUT) {
        Ok(()) => println!("Message with delivery token {} delivered", token.id()),
        Err(e) => {
            println!(
                "Message with delivery token {} not delivered: {e}",
                token.id()
            );
            status = ExitCode::FAILURE;
        }
    }
    if let Err(e) = client.disconnect(TIMEOUT) {
        println!("Failed to disconnect: {e} (return code {})", e.code());
        status = ExitCode::FAILURE;
    }
    status
}
