//! MQTT 5 request/response, the server side: answers requests on
//! `rpc/square` with the square of the number in the payload, sent to the
//! request's Response Topic with its Correlation Data. Run it next to
//! `mqtt5_rpc_client`:
//!
//! ```text
//! cargo run --example mqtt5_rpc_server -- tcp://127.0.0.1:1883
//! cargo run --example mqtt5_rpc_client -- tcp://127.0.0.1:1883 7
//! ```
//!
//! `--count N` stops after N requests. Prints `ready` once subscribed.

use std::time::Duration;

use paho_mqtt_sync::{
    Client, ConnectOptions, CreateOptions, Message, MqttVersion, Persistence, Properties,
    PropertyCode, QoS, SubscribeOptions,
};

const REQUESTS: &str = "rpc/square";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut uri = "tcp://127.0.0.1:1883".to_owned();
    let mut count: Option<u64> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--count" => count = Some(args.next().ok_or("--count N")?.parse()?),
            other => uri = other.to_owned(),
        }
    }
    let client = Client::create_with_options(
        &uri,
        &format!("rpc-server-{}", std::process::id()),
        Persistence::None,
        &CreateOptions::new().mqtt_version(MqttVersion::V5),
    )?;
    let none = Properties::new();
    client.connect5(
        &ConnectOptions::new().keep_alive_interval(Duration::from_secs(20)),
        &none,
        &none,
    )?;
    // Requests arrive on this thread, where client methods may be called.
    let requests = client.start_consuming();
    client.subscribe5(REQUESTS, QoS::AtLeastOnce, &SubscribeOptions::new(), &none)?;
    println!("ready");
    let mut served = 0;
    for (_topic, request) in requests.iter() {
        let props = request.properties();
        let Some(reply_to) = props.get_str(PropertyCode::ResponseTopic) else {
            eprintln!("request without a response topic, ignored");
            continue;
        };
        let mut reply = Properties::new();
        if let Some(id) = props.get_binary(PropertyCode::CorrelationData) {
            reply.push_binary(PropertyCode::CorrelationData, id)?;
        }
        let answer = match request.payload_str().map(|s| s.trim().parse::<i64>()) {
            Ok(Ok(n)) => n.checked_mul(n).map(|sq| sq.to_string()),
            _ => None,
        };
        let body = match answer {
            Some(text) => text,
            None => {
                reply.push_user_property("error", "not a number, or too large")?;
                String::new()
            }
        };
        let msg = Message::new(body, QoS::AtLeastOnce, false).with_properties(reply);
        client.publish_message5(reply_to, &msg)?;
        served += 1;
        if count.is_some_and(|c| served >= c) {
            break;
        }
    }
    client.disconnect(Duration::from_secs(2))?;
    Ok(())
}
