//! MQTT 5 request/response, the client side: sends a number to
//! `rpc/square` with a Response Topic of its own and a Correlation Data,
//! and prints the answer that carries the same Correlation Data (see
//! `mqtt5_rpc_server`):
//!
//! ```text
//! cargo run --example mqtt5_rpc_client -- tcp://127.0.0.1:1883 7
//! 7 squared is 49
//! ```
//!
//! Exits with 1 when no answer came within 5 s.

use std::time::{Duration, Instant};

use paho_mqtt_sync::{
    Client, ConnectOptions, CreateOptions, MqttVersion, Persistence, Properties, PropertyCode, QoS,
    SubscribeOptions,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (uri, number) = match args.as_slice() {
        [n] => ("tcp://127.0.0.1:1883", n.as_str()),
        [u, n] => (u.as_str(), n.as_str()),
        _ => return Err("usage: mqtt5_rpc_client [URI] NUMBER".into()),
    };
    let id = format!("rpc-client-{}", std::process::id());
    let client = Client::create_with_options(
        uri,
        &id,
        Persistence::None,
        &CreateOptions::new().mqtt_version(MqttVersion::V5),
    )?;
    let none = Properties::new();
    client.connect5(
        &ConnectOptions::new().keep_alive_interval(Duration::from_secs(20)),
        &none,
        &none,
    )?;
    // Subscribe to the reply topic before asking.
    let reply_topic = format!("rpc/reply/{id}");
    client.subscribe5(
        &reply_topic,
        QoS::AtLeastOnce,
        &SubscribeOptions::new(),
        &none,
    )?;
    let correlation = format!("{id}-1");
    let mut request = Properties::new();
    request
        .push_str(PropertyCode::ResponseTopic, &reply_topic)?
        .push_binary(PropertyCode::CorrelationData, correlation.as_bytes())?;
    let token = client.publish5(
        "rpc/square",
        number.as_bytes(),
        QoS::AtLeastOnce,
        false,
        &request,
    )?;
    client.wait_for_completion(token, Duration::from_secs(5))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some((_, reply)) = client.receive(left)? else {
            eprintln!("no answer within 5 s (is mqtt5_rpc_server running?)");
            std::process::exit(1);
        };
        let props = reply.properties();
        if props.get_binary(PropertyCode::CorrelationData) != Some(correlation.as_bytes()) {
            continue; // an answer to someone else's request
        }
        match props.user_property("error") {
            Some(e) => println!("{number}: error: {e}"),
            None => println!("{number} squared is {}", reply.payload_str()?),
        }
        break;
    }
    client.disconnect(Duration::from_secs(2))?;
    Ok(())
}
