//! Minimal publisher with `rumqttc`, for the binary size and memory
//! comparison: connect, publish one QoS 1 message, wait for it, disconnect.
//! Usage: min_rumqttc HOST PORT

use rumqttc::{Client, Event, MqttOptions, Outgoing, Packet, QoS};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let host = args.next().unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = args.next().map_or(Ok(1883), |p| p.parse())?;
    let (client, mut connection) = Client::new(MqttOptions::new("min-rumqttc", host, port), 10);
    client.publish("bench/min", QoS::AtLeastOnce, false, "hello")?;
    for event in connection.iter() {
        match event? {
            Event::Incoming(Packet::PubAck(_)) => client.disconnect()?,
            Event::Outgoing(Outgoing::Disconnect) => break,
            _ => {}
        }
    }
    Ok(())
}
