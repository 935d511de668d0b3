//! `MQTTClient_publish_async`: the Paho C sample of the same name, on the safe
//! API. Publishes `Hello World!` to `MQTT Examples` at QoS 1 and learns of
//! the delivery from the delivery-complete callback (`MQTTClient_setCallbacks`)
//! instead of `MQTTClient_waitForCompletion`. Same output as the C program; the
//! server URI is the first argument:
//!
//! ```sh
//! cargo run --example MQTTClient_publish_async -- tcp://127.0.0.1:1883
//! ```
//!
//! The C sample polls a global variable every 10 ms, for ever; here the
//! callback hands the token to the main thread through a channel, and the
//! main thread gives up after 10 s. The "Waiting" lines come before the
//! publish, so the callback's line can never come before them.
#![allow(non_snake_case)] // the C sample's name

use std::process::ExitCode;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use paho_mqtt_sync::{Callbacks, Client, ConnectOptions, Message, Persistence, QoS};

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

    // The callbacks run on the library's thread. `delivered` tells the main
    // thread through a channel (the C sample's `deliveredtoken` global).
    let (delivered_tx, delivered_rx) = mpsc::channel();
    let callbacks = Callbacks::new()
        .on_connection_lost(|cause| {
            println!("\nConnection lost");
            if let Some(cause) = cause {
                println!("     cause: {cause}");
            }
        })
        .on_message_arrived(|topic, message| {
            println!("Message arrived");
            println!("     topic: {topic}");
            println!("   message: {}", String::from_utf8_lossy(message.payload()));
            true // handled: the library may free it
        })
        .on_delivery_complete(move |token| {
            println!("Message with token value {} delivery confirmed", token.id());
            let _ = delivered_tx.send(token);
        });
    if let Err(e) = client.set_callbacks(callbacks) {
        println!("Failed to set callbacks, return code {}", e.code());
        return ExitCode::FAILURE;
    }

    let conn_opts = ConnectOptions::new()
        .keep_alive_interval(Duration::from_secs(20))
        .clean_session(true);
    if let Err(e) = client.connect(&conn_opts) {
        println!("Failed to connect, return code {}", e.code());
        return ExitCode::FAILURE;
    }

    let mut status = ExitCode::SUCCESS;
    let pubmsg = Message::new(PAYLOAD, QOS, false);
    // Printed before publishing: on loopback the acknowledgement can come
    // before `publish_message` returns, and the callback would print first
    // (the C sample has that race).
    println!(
        "Waiting for publication of {PAYLOAD}\n\
         on topic {TOPIC} for client with ClientID: {CLIENTID}"
    );
    match client.publish_message(TOPIC, &pubmsg) {
        Err(e) => {
            println!("Failed to publish message, return code {}", e.code());
            status = ExitCode::FAILURE;
        }
        Ok(token) => {
            let deadline = Instant::now() + TIMEOUT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match delivered_rx.recv_timeout(left) {
                    Ok(t) if t == token => break,
                    Ok(_) => {} // an older message's token
                    Err(_) => {
                        println!(
                            "No delivery confirmation within {} seconds",
                            TIMEOUT.as_secs()
                        );
                        status = ExitCode::FAILURE;
                        break;
                    }
                }
            }
        }
    }

    if let Err(e) = client.disconnect(TIMEOUT) {
        println!("Failed to disconnect, return code {}", e.code());
        status = ExitCode::FAILURE;
    }
    status
}
