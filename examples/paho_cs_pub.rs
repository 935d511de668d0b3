//! `paho_cs_pub`: the command-line publisher of the Paho C samples
//! (`paho_cs_pub.c`, on the synchronous client), with the same options, on the
//! safe API. `--help` lists them.
//!
//! ```sh
//! cargo run --example paho_cs_pub -- greetings -h 127.0.0.1 -p 1883 -q 1 -m hello
//! printf 'one\ntwo\n' | cargo run --example paho_cs_pub -- -t lines -h 127.0.0.1
//! ```
//!
//! Without `-m`, `-f` or `-n` it publishes standard input, one message per
//! delimiter-terminated piece (the delimiter stays in the payload, as in C),
//! or per `--maxdatalen` bytes, until the end of input or SIGINT/SIGTERM.
//!
//! Differences from C, on purpose: at the end of input the last piece is
//! published even without a delimiter, and the tool waits for the last
//! message's acknowledgement (C drops the piece and skips its wait there);
//! a delimiter right after the previous one is a message of its own (C glues
//! it to the next line); exit status 1 when the connection or a publish
//! fails (C says 0); MQTT 5 (`-V 5`) and HTTP proxies are refused with a
//! message, since the crate does not wrap them yet.

#[path = "common/pubsub_opts.rs"]
mod pubsub_opts;

use std::io::Read;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use paho_mqtt_sync::{Callbacks, Client, DeliveryToken, Persistence};
use pubsub_opts::Opts;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match pubsub_opts::parse(true, &args) {
        Ok(o) => o,
        Err(stop) => return ExitCode::from(pubsub_opts::report_stop(true, &stop)),
    };
    ExitCode::from(run(&opts))
}

fn run(o: &Opts) -> u8 {
    if let Some(msg) = pubsub_opts::unsupported(o) {
        eprintln!("paho_cs_pub: {msg}");
        return 1;
    }
    for flag in &o.ignored {
        if !o.quiet {
            eprintln!("paho_cs_pub: {flag} is ignored (as by the C tool without MQTT 5)");
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
    // The C tool reconnects inside its connection-lost callback; here the
    // callback only notes the loss and the next publish reconnects first.
    let lost = Arc::new(AtomicBool::new(false));
    let lost_in_callback = lost.clone();
    let verbose = o.verbose;
    let callbacks = Callbacks::new().on_connection_lost(move |_cause| {
        if verbose {
            println!("ConnectionLost, reconnecting");
        }
        lost_in_callback.store(true, SeqCst);
    });
    if let Err(e) = client.set_callbacks(callbacks) {
        if !o.quiet {
            eprintln!("Failed to set callbacks, return code: {e}");
        }
        return 1;
    }

    if !pubsub_opts::connect(&client, o, false) {
        return 1;
    }

    let mut status = 0;
    let mut last_token = None;
    let mut publish = |data: &[u8]| {
        if o.verbose {
            eprintln!("Publishing data of length {}", data.len());
        }
        if lost.swap(false, SeqCst) && !client.is_connected() {
            pubsub_opts::connect(&client, o, false);
        }
        let mut result = client.publish(&o.topic, data, o.qos, o.retained);
        if result.is_err() {
            // As in C: reconnect and try once more.
            pubsub_opts::connect(&client, o, false);
            result = client.publish(&o.topic, data, o.qos, o.retained);
        }
        match result {
            Ok(token) => last_token = Some(token),
            Err(e) => {
                if !o.quiet {
                    eprintln!("Publish failed: {e}");
                }
                status = 1;
            }
        }
    };

    if let Some(m) = &o.message {
        publish(m.as_bytes());
    } else if let Some(f) = &o.filename {
        match std::fs::read(f) {
            Ok(data) => publish(&data),
            Err(e) => {
                eprintln!("Can't open file {}: {e}", f.display());
                status = 1;
            }
        }
    } else if o.null_message {
        publish(b"");
    } else {
        let delimiter = o.delimiter.as_deref().unwrap_or("\n").as_bytes();
        for piece in stdin_pieces(delimiter.to_vec(), o.maxdatalen).iter() {
            if stop.load(SeqCst) {
                break;
            }
            match piece {
                Piece::Data(data) => publish(&data),
                Piece::End => break,
                Piece::Wait => {}
            }
        }
    }

    finish(&client, last_token, status)
}

/// Waits for the last message (5 s, as the C tool), then disconnects.
fn finish(client: &Client, last_token: Option<DeliveryToken>, mut status: u8) -> u8 {
    if let Some(token) = last_token {
        if let Err(e) = client.wait_for_completion(token, Duration::from_secs(5)) {
            eprintln!("The last message was not acknowledged: {e}");
            status = 1;
        }
    }
    let _ = client.disconnect(Duration::ZERO);
    status
}

/// What the stdin reader hands over.
enum Piece {
    /// One message: up to and including the delimiter, or `maxdatalen` bytes,
    /// or what was left at the end of input.
    Data(Vec<u8>),
    /// End of input (or a read error).
    End,
    /// Nothing yet: a chance to look at the stop flag.
    Wait,
}

/// Standard input cut into messages by a thread of its own, so that the main
/// thread can notice SIGINT/SIGTERM while a read blocks.
struct Pieces(mpsc::Receiver<Piece>);

impl Pieces {
    fn iter(&self) -> impl Iterator<Item = Piece> + '_ {
        std::iter::from_fn(move || {
            Some(match self.0.recv_timeout(Duration::from_millis(100)) {
                Ok(p) => p,
                Err(mpsc::RecvTimeoutError::Timeout) => Piece::Wait,
                Err(mpsc::RecvTimeoutError::Disconnected) => Piece::End,
            })
        })
    }
}

fn stdin_pieces(delimiter: Vec<u8>, maxdatalen: usize) -> Pieces {
    let (tx, rx) = mpsc::sync_channel(16);
    std::thread::spawn(move || {
        let mut piece = Vec::with_capacity(maxdatalen);
        let mut stdin = std::io::stdin().lock();
        let mut byte = [0u8; 1];
        loop {
            match stdin.read(&mut byte) {
                Ok(1) => {
                    piece.push(byte[0]);
                    let complete = piece.ends_with(&delimiter) || piece.len() >= maxdatalen;
                    if complete && tx.send(Piece::Data(std::mem::take(&mut piece))).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                _ => break,
            }
        }
        if !piece.is_empty() {
            let _ = tx.send(Piece::Data(piece));
        }
        let _ = tx.send(Piece::End);
    });
    Pieces(rx)
}
