//! Benchmark client: the official `paho-mqtt` 0.14 crate's synchronous
//! `Client` (Rust over the async Paho C library, `libpaho-mqtt3a`).
//! See `bench::Args` for the command line.
//!
//! Mode `pubw` uses the `AsyncClient` that the synchronous `Client` wraps:
//! `Client::publish` waits for each acknowledgement, so the synchronous API
//! has no way to keep more than one message in flight.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bench::{
    die, latency_report, ms, receive_report, throughput, window, Args, Payload, Report, Seen,
};
use paho_mqtt as mqtt;

const NAME: &str = "paho_rs";
const IDLE: Duration = Duration::from_secs(10);

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| die(&format!("{what}: {e}")))
}

fn create_options(a: &Args) -> mqtt::CreateOptions {
    mqtt::CreateOptionsBuilder::new()
        .server_uri(a.uri())
        .client_id(&a.client_id)
        .persistence(None)
        .finalize()
}

fn create(a: &Args) -> mqtt::Client {
    ok(mqtt::Client::new(create_options(a)), "create")
}

fn connect_opts(clean: bool) -> mqtt::ConnectOptions {
    mqtt::ConnectOptionsBuilder::new()
        .keep_alive_interval(Duration::from_secs(30))
        .clean_session(clean)
        .finalize()
}

/// Disconnects and drops the client; returns the time it took.
fn close(client: mqtt::Client) -> f64 {
    let t0 = Instant::now();
    ok(client.disconnect(None), "disconnect");
    drop(client);
    ms(t0, Instant::now())
}

fn publish(a: &Args) {
    let t0 = Instant::now();
    let client = create(a);
    ok(client.connect(connect_opts(true)), "connect");
    let connect_ms = ms(t0, Instant::now());
    let mut payload = Payload::new(&a.run, a.size);
    let t0 = Instant::now();
    for seq in 0..a.count {
        // `Client::publish` waits for the token: the acknowledgement at QoS
        // 1/2, the write at QoS 0.
        let msg = mqtt::Message::new(a.topic.as_str(), payload.fill(seq), i32::from(a.qos));
        ok(client.publish(msg), "publish");
    }
    let elapsed = t0.elapsed();
    let disconnect_ms = close(client);
    let mut r = Report::new(NAME, a);
    throughput(&mut r, a.count, elapsed);
    r.num("connect_ms", connect_ms)
        .num("disconnect_ms", disconnect_ms)
        .print();
}

/// QoS 1/2 with up to `BENCH_WINDOW` messages unacknowledged: the library's
/// window (`max_inflight`) and as many delivery tokens kept; before a publish
/// with the window full, waits for the oldest token. The time runs until every
/// token is complete (the PUBACK / PUBCOMP is in).
fn publish_window(a: &Args) {
    let n = window();
    if a.qos == 0 {
        die("pubw is for QoS 1 and 2");
    }
    let t0 = Instant::now();
    let client = ok(mqtt::AsyncClient::new(create_options(a)), "create");
    let opts = mqtt::ConnectOptionsBuilder::new()
        .keep_alive_interval(Duration::from_secs(30))
        .clean_session(true)
        .max_inflight(i32::try_from(n).unwrap_or_else(|_| die("bad window")))
        .finalize();
    ok(client.connect(opts).wait(), "connect");
    let connect_ms = ms(t0, Instant::now());
    let mut payload = Payload::new(&a.run, a.size);
    let mut inflight: VecDeque<mqtt::DeliveryToken> = VecDeque::with_capacity(n);
    let t0 = Instant::now();
    for seq in 0..a.count {
        if inflight.len() == n {
            if let Some(token) = inflight.pop_front() {
                ok(token.wait(), "publish");
            }
        }
        let msg = mqtt::Message::new(a.topic.as_str(), payload.fill(seq), i32::from(a.qos));
        inflight.push_back(client.publish(msg));
    }
    for token in inflight {
        ok(token.wait(), "publish");
    }
    let elapsed = t0.elapsed();
    let t1 = Instant::now();
    ok(client.disconnect(None).wait(), "disconnect");
    drop(client);
    let disconnect_ms = ms(t1, Instant::now());
    let mut r = Report::new(NAME, a);
    throughput(&mut r, a.count, elapsed);
    r.num("connect_ms", connect_ms)
        .num("disconnect_ms", disconnect_ms)
        .print();
}

/// Counts the queued messages of a persistent session via `start_consuming`.
fn receive(a: &Args) {
    let mut seen = Seen::new(&a.run, a.count);
    let (mut first, mut last) = (None, None);
    let t0 = Instant::now();
    let client = create(a);
    let rx = client.start_consuming();
    ok(client.connect(connect_opts(false)), "connect");
    let connect_ms = ms(t0, Instant::now());
    while !seen.complete() {
        match rx.recv_timeout(IDLE) {
            Ok(Some(msg)) => {
                let now = Instant::now();
                first.get_or_insert(now);
                if seen.record(msg.payload()) {
                    last = Some(now);
                }
            }
            Ok(None) => die("connection lost"),
            Err(_) => break,
        }
    }
    let disconnect_ms = close(client);
    let mut r = Report::new(NAME, a);
    receive_report(&mut r, &seen, first, last);
    r.num("connect_ms", connect_ms)
        .num("disconnect_ms", disconnect_ms)
        .print();
}

/// Publish-to-receive latency at QoS 1 through the broker.
fn latency(a: &Args) {
    let t0 = Instant::now();
    let client = create(a);
    let rx = client.start_consuming();
    ok(client.connect(connect_opts(true)), "connect");
    let connect_ms = ms(t0, Instant::now());
    ok(client.subscribe(&a.topic, 1), "subscribe");
    let mut payload = Payload::new(&a.run, a.size);
    let mut seen = Seen::new(&a.run, a.count);
    let mut samples = Vec::with_capacity(a.count);
    for seq in 0..a.count {
        let t0 = Instant::now();
        let msg = mqtt::Message::new(a.topic.as_str(), payload.fill(seq), 1);
        ok(client.publish(msg), "publish");
        loop {
            match rx.recv_timeout(IDLE) {
                Ok(Some(msg)) => {
                    if seen.record(msg.payload()) {
                        samples.push(t0.elapsed().as_nanos() as u64);
                        break;
                    }
                }
                _ => die("latency: message did not come back"),
            }
        }
    }
    let disconnect_ms = close(client);
    let mut r = Report::new(NAME, a);
    r.int("received", seen.distinct as u64);
    latency_report(&mut r, samples);
    r.num("connect_ms", connect_ms)
        .num("disconnect_ms", disconnect_ms)
        .print();
}

fn main() {
    let a = Args::parse(NAME);
    match a.mode.as_str() {
        "pub" => publish(&a),
        "pubw" => publish_window(&a),
        "recv" => receive(&a),
        "lat" => latency(&a),
        m => die(&format!("unknown mode {m}")),
    }
}
