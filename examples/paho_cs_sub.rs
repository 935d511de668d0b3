//! `paho_cs_sub`: the command-line subscriber of the Paho C samples
//! (`paho_cs_sub.c`, on the synchronous client), with the same options and
//! output, on the safe API. `--help` lists the options.
//!
//! ```sh
//! cargo run --example paho_cs_sub -- greetings -h 127.0.0.1 -p 1883 -q 1
//! ```
//!
//! Prints each message's payload followed by the delimiter (a newline by
//! default) unless the payload already ends with it; with a wildcard in the
//! topic it turns `--verbose` on and prints `topic<TAB>` first, as in C.
//! Receives with `Client::receive` (`MQTTClient_receive`), one second at a
//! time, until SIGINT/SIGTERM, then disconnects (exit 0).
//!
//! Differences from C, on purpose: after a lost connection it subscribes
//! again (C reconnects with a clean session and so receives nothing more),
//! and waits a second between failed reconnects (C retries at once, in a
//! loop); `-R` does skip retained messages (C parses it and ignores it);
//! exit status 1 when the connection or the subscription fails (C says 0);
//! MQTT 5 (`-V 5`) and HTTP proxies are refused with a message.

#[path = "common/pubsub_opts.rs"]
mod pubsub_opts;

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::time::{Duration, Instant};

use paho_mqtt_sync::{Client, Error, Message, Persistence};
use pubsub_opts::Opts;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = match pubsub_opts::parse(false, &args) {
        Ok(o) => o,
        Err(stop) => return ExitCode::from(pubsub_opts::report_stop(false, &stop)),
    };
    if opts.topic.contains(['#', '+']) {
        opts.verbose = true;
    }
    ExitCode::from(run(&opts))
}

fn run(o: &Opts) -> u8 {
    if let Some(msg) = pubsub_opts::unsupported(o) {
        eprintln!("paho_cs_sub: {msg}");
        return 1;
    }
    for flag in &o.ignored {
        if !o.quiet {
            eprintln!("paho_cs_sub: {flag} is ignored (as by the C tool)");
        }
    }
    let url = o.url();
    if o.verbose {
        println!("URL is {url}");
    }
    pubsub_opts::start_trace(o.trace);

    let client = match Client::create(&url, &o.clientid, Persistence::None) {
        Ok(c) => c,
        Err(e) => {
            if !o.quiet {
                eprintln!("Failed to create client, return code: {e}");
            }
            return 1;
        }
    };
    let stop = match pubsub_opts::stop_flag() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot install the signal handlers: {e}");
            return 1;
        }
    };

    if !pubsub_opts::connect(&client, o, true) || !subscribe(&client, o) {
        let _ = client.disconnect(Duration::ZERO);
        return 1;
    }

    let mut out = std::io::stdout().lock();
    while !stop.load(SeqCst) {
        match client.receive(Duration::from_secs(1)) {
            Ok(Some((topic, message))) => {
                if o.retained && message.retained() {
                    continue;
                }
                // A closed stdout (`paho_cs_sub ... | head -1`) ends the tool.
                if print(&mut out, o, &topic, &message).is_err() {
                    break;
                }
            }
            Ok(None) => {}
            Err(Error::Disconnected) => reconnect(&client, o, &stop),
            Err(e) => {
                if !o.quiet {
                    eprintln!("receive failed: {e}");
                }
                break;
            }
        }
    }

    let _ = client.disconnect(Duration::ZERO);
    0
}

/// `MQTTClient_subscribe` with the C tool's error message.
fn subscribe(client: &Client, o: &Opts) -> bool {
    match client.subscribe(&o.topic, o.qos) {
        Ok(_granted) => true,
        Err(e) => {
            if !o.quiet {
                eprintln!("Error {} subscribing to topic {}", e.code(), o.topic);
            }
            false
        }
    }
}

/// Connects and subscribes again; after a failure, waits a second (or until
/// a signal) before the receive loop tries again.
fn reconnect(client: &Client, o: &Opts, stop: &AtomicBool) {
    if pubsub_opts::connect(client, o, true) && subscribe(client, o) {
        return;
    }
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until && !stop.load(SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One message as the C tool prints it.
fn print(out: &mut impl Write, o: &Opts, topic: &str, message: &Message) -> std::io::Result<()> {
    if o.verbose {
        write!(out, "{topic}\t")?;
    }
    let payload = message.payload();
    out.write_all(payload)?;
    if let Some(d) = &o.delimiter {
        // No second delimiter after a payload that ends with one.
        if !(payload.len() > d.len() && payload.ends_with(d.as_bytes())) {
            out.write_all(d.as_bytes())?;
        }
    }
    out.flush()
}
