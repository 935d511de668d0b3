//! Minimal publisher with this crate, for the binary size and memory
//! comparison: connect, publish one QoS 1 message, wait for it, disconnect.
//! Usage: min_sync HOST PORT. Like bench/c/min_pub.c, it prints nothing and
//! exits with the C return code of the call that failed.

use std::time::Duration;

use paho_mqtt_sync::{Client, ConnectOptions, Persistence, QoS};

fn main() {
    if let Err(e) = run() {
        std::process::exit(e.code());
    }
}

fn run() -> Result<(), paho_mqtt_sync::Error> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".into());
    let port = args.next().unwrap_or_else(|| "1883".into());
    let client = Client::create(
        &format!("tcp://{host}:{port}"),
        "min-sync",
        Persistence::None,
    )?;
    client.connect(&ConnectOptions::new())?;
    let token = client.publish("bench/min", b"hello", QoS::AtLeastOnce, false)?;
    client.wait_for_completion(token, Duration::from_secs(10))?;
    client.disconnect(Duration::from_secs(1))
}
