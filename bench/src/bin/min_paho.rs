//! Minimal publisher with `paho-mqtt` 0.14, for the binary size and memory
//! comparison: connect, publish one QoS 1 message, wait for it, disconnect.
//! Usage: min_paho HOST PORT

use paho_mqtt as mqtt;

fn main() -> mqtt::Result<()> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".into());
    let port = args.next().unwrap_or_else(|| "1883".into());
    let opts = mqtt::CreateOptionsBuilder::new()
        .server_uri(format!("tcp://{host}:{port}"))
        .client_id("min-paho")
        .persistence(None)
        .finalize();
    let client = mqtt::Client::new(opts)?;
    client.connect(None)?;
    client.publish(mqtt::Message::new("bench/min", "hello", 1))?;
    client.disconnect(None)
}
