//! `threaded_publish`: several threads publishing through one `Client`
//! shared in an `Arc`. Every `Client` method takes `&self` and the client is
//! `Send + Sync`: no mutex of your own is needed (in C, the same
//! `MQTTClient` handle may be used from several threads too; the library
//! serializes the calls).
//!
//! ```sh
//! cargo run --example threaded_publish -- tcp://127.0.0.1:1883 4 100
//! #                                       URI                 threads messages-per-thread
//! ```
//!
//! Each thread publishes its messages at QoS 1 to `MQTT Examples/thread-<n>`
//! (payload `<n>:<i>`) and waits for each acknowledgement before the next
//! (`wait_for_completion`), so the threads' messages interleave on the one
//! connection. It prints one line per thread and exits 0 once all are
//! acknowledged.

use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use paho_mqtt_sync::{Client, ConnectOptions, Persistence, QoS};

const ADDRESS: &str = "tcp://test.mosquitto.org:1883";
const CLIENTID: &str = "ExampleClientThreads";
const TOPIC: &str = "MQTT Examples";
const TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let uri = args.next().unwrap_or_else(|| ADDRESS.to_owned());
    let number = |text: Option<String>, default: usize| match text {
        None => Some(default),
        Some(t) => t.parse().ok().filter(|n| *n > 0),
    };
    let (Some(threads), Some(per_thread)) = (number(args.next(), 4), number(args.next(), 10))
    else {
        eprintln!("usage: threaded_publish [URI] [THREADS] [MESSAGES_PER_THREAD]");
        return ExitCode::from(64);
    };
    println!("Using server at {uri}");

    let client = match Client::create(&uri, CLIENTID, Persistence::None) {
        Ok(c) => c,
        Err(e) => {
            println!("Failed to create client: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Up to 10 QoS 1/2 messages in flight, so the threads do not wait for
    // each other's acknowledgements (the default is one at a time).
    let opts = ConnectOptions::new()
        .keep_alive_interval(Duration::from_secs(20))
        .max_inflight_messages(10);
    if let Err(e) = client.connect(&opts) {
        println!("Failed to connect: {e}");
        return ExitCode::FAILURE;
    }
    let client = Arc::new(client);

    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|n| {
            let client = Arc::clone(&client);
            thread::spawn(move || -> Result<usize, paho_mqtt_sync::Error> {
                let topic = format!("{TOPIC}/thread-{n}");
                for i in 0..per_thread {
                    let payload = format!("{n}:{i}");
                    let token =
                        client.publish(&topic, payload.as_bytes(), QoS::AtLeastOnce, false)?;
                    client.wait_for_completion(token, TIMEOUT)?;
                }
                Ok(per_thread)
            })
        })
        .collect();

    let mut status = ExitCode::SUCCESS;
    let mut total = 0;
    for (n, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(Ok(count)) => {
                println!("thread {n}: {count} messages delivered");
                total += count;
            }
            Ok(Err(e)) => {
                println!("thread {n}: failed: {e}");
                status = ExitCode::FAILURE;
            }
            Err(_) => {
                println!("thread {n}: panicked");
                status = ExitCode::FAILURE;
            }
        }
    }
    println!(
        "{total} messages from {threads} threads in {} ms",
        started.elapsed().as_millis()
    );
    if let Err(e) = client.disconnect(TIMEOUT) {
        println!("Failed to disconnect: {e}");
        status = ExitCode::FAILURE;
    }
    status
}
