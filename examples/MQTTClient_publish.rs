//! `MQTTClient_publish`: the Paho C sample of the same name, on the safe API.
//!
//! Connects (keepalive 20 s, clean session), publishes `Hello World!` to the
//! topic `MQTT Examples` at QoS 1, waits up to 10 s for the broker's PUBACK
//! (`MQTTClient_waitForCompletion`), disconnects. Same output as the C program;
//! the server URI is the first argument, as there:
//!
//! ```sh
//! cargo run --example MQTTClient_publish -- tcp://127.0.0.1:1883
//! ```
//!
//! One difference on purpose: the C sample prints "delivered" whatever
//! `MQTTClient_waitForCompletion` returned; this one says when it failed.
#![allow(non_snake_case)] // the C sample's name

use std::process::ExitCode;
use std::time::Duration;

use paho_mqtt_sync::{Client, ConnectOptions, Message, Persistence, QoS};

const ADDRESS: &str = "tcp://test.mosquitto.org:1883";
const CLIENTID: &str = "ExampleClientPub";
const TOPIC: &str = "MQTT Examples";
const PAYLOAD: &str = "Hello World!";
const QOS: QoS = QoS::AtLeastOnce;
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let uri = std::env::args()
        .nth(1)
        .unwrap_or_else(|| ADDRESS.to_owned());
    println!("Using server at {uri}");

    let client = match Client::create(&uri, CLIENTID, Persistence::None) {
        Ok(c) => c,
        Err(e) => {
            println!("Failed to create client, return code {}", e.code());
            return ExitCode::FAILURE;
        }
    };

    let conn_opts = ConnectOptions::new()
        .keep_alive_interval(Duration::from_secs(20))
        .clean_session(true);
    if let Err(e) = client.connect(&conn_opts) {
        println!("Failed to connect, return code {}", e.code());
        return ExitCode::FAILURE;
    }

    let pubmsg = Message::new(PAYLOAD, QOS, false);
    let token = match client.publish_message(TOPIC, &pubmsg) {
        Ok(t) => t,
        Err(e) => {
            println!("Failed to publish message, return code {}", e.code());
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
                "Message with delivery token {} not delivered: {e} (return code {})",
                token.id(),
                e.code()
            );
            status = ExitCode::FAILURE;
        }
    }

    if let Err(e) = client.disconnect(TIMEOUT) {
        println!("Failed to disconnect, return code {}", e.code());
        status = ExitCode::FAILURE;
    }
    // Dropping the client is MQTTClient_destroy.
    status
}
