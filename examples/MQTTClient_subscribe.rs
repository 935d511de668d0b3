//! `MQTTClient_subscribe`: the Paho C sample of the same name, on the safe API.
//!
//! Subscribes to `MQTT Examples` at QoS 1 and prints every message from the
//! message-arrived callback until `Q` or `q` is typed, then unsubscribes and
//! disconnects. Same output as the C program; the server URI is the first
//! argument:
//!
//! ```sh
//! cargo run --example MQTTClient_subscribe -- tcp://127.0.0.1:1883
//! mosquitto_pub -h 127.0.0.1 -t 'MQTT Examples' -m hi     # in another terminal
//! ```
//!
//! One difference on purpose: the end of standard input also quits (the C
//! program spins for ever on `EOF`), so `... < /dev/null` cannot hang.
#![allow(non_snake_case)] // the C sample's name

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use paho_mqtt_sync::{Callbacks, Client, ConnectOptions, Persistence, QoS};

const ADDRESS: &str = "tcp://test.mosquitto.org:1883";
const CLIENTID: &str = "ExampleClientSub";
const TOPIC: &str = "MQTT Examples";
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
            true
        })
        .on_delivery_complete(|token| {
            println!("Message with token value {} delivery confirmed", token.id());
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

    println!(
        "Subscribing to topic {TOPIC}\nfor client {CLIENTID} using QoS{}\n\n\
         Press Q<Enter> to quit\n",
        QOS as i32
    );
    let mut status = ExitCode::SUCCESS;
    match client.subscribe(TOPIC, QOS) {
        Err(e) => {
            println!("Failed to subscribe, return code {}", e.code());
            status = ExitCode::FAILURE;
        }
        Ok(_granted) => {
            // Messages are printed by the callback meanwhile.
            for byte in std::io::stdin().lock().bytes() {
                match byte {
                    Ok(b'Q' | b'q') | Err(_) => break,
                    Ok(_) => {}
                }
            }
            if let Err(e) = client.unsubscribe(TOPIC) {
                println!("Failed to unsubscribe, return code {}", e.code());
                status = ExitCode::FAILURE;
            }
        }
    }

    if let Err(e) = client.disconnect(TIMEOUT) {
        println!("Failed to disconnect, return code {}", e.code());
        status = ExitCode::FAILURE;
    }
    status
}
