//! Benchmark client: `rumqttc`'s synchronous `Client` + `Connection`
//! (pure Rust; the event loop runs on a current-thread tokio runtime inside
//! `Connection`). See `bench::Args` for the command line.
//!
//! At QoS 1/2 the program publishes and then drives the connection on the
//! same thread until the acknowledgement (PUBACK / PUBCOMP) comes back: one
//! message in flight, like every other client. At QoS 0 a second thread
//! publishes while the main thread drives the connection (the usual shape of
//! a `rumqttc` program); the run ends when the event loop has written the last
//! message to the socket.
//!
//! Mode `pubw` (QoS 1/2) sets the event loop's window (`set_inflight`) to
//! `BENCH_WINDOW` and keeps at most that many messages unacknowledged itself,
//! driving the connection on the same thread until the last acknowledgement.

use std::time::{Duration, Instant};

use bench::{
    die, latency_report, ms, receive_report, throughput, window, Args, Payload, Report, Seen,
};
use rumqttc::{Client, Connection, Event, MqttOptions, Outgoing, Packet, QoS};

const NAME: &str = "rumqttc_rs";
const IDLE: Duration = Duration::from_secs(10);

fn ok<T, E: std::fmt::Debug>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| die(&format!("{what}: {e:?}")))
}

fn qos(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => QoS::ExactlyOnce,
    }
}

/// The next event, or exit on error / silence.
fn next(conn: &mut Connection) -> Event {
    match conn.recv_timeout(IDLE) {
        Ok(Ok(ev)) => ev,
        Ok(Err(e)) => die(&format!("connection: {e:?}")),
        Err(e) => die(&format!("connection: {e:?}")),
    }
}

/// Creates the client and drives the connection until CONNACK.
fn connect(a: &Args, clean: bool) -> (Client, Connection, f64) {
    connect_with(a, clean, None)
}

/// [`connect`], with the event loop's in-flight window set when `inflight`.
fn connect_with(a: &Args, clean: bool, inflight: Option<u16>) -> (Client, Connection, f64) {
    let t0 = Instant::now();
    let mut opts = MqttOptions::new(a.client_id.clone(), a.host.clone(), a.port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_session(clean);
    if let Some(n) = inflight {
        opts.set_inflight(n);
    }
    // The default limit (10 KiB) is below the 16 KiB payload case.
    opts.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut conn) = Client::new(opts, 100);
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = next(&mut conn) {
            break;
        }
    }
    (client, conn, ms(t0, Instant::now()))
}

/// Sends DISCONNECT, drives the connection until it is written, drops both
/// halves; returns the time it took.
fn close(client: Client, mut conn: Connection) -> f64 {
    let t0 = Instant::now();
    ok(client.disconnect(), "disconnect");
    loop {
        match conn.recv_timeout(IDLE) {
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => break,
            Ok(Ok(_)) => {}
            other => die(&format!("disconnect: {other:?}")),
        }
    }
    drop(client);
    drop(conn);
    ms(t0, Instant::now())
}

fn publish(a: &Args) {
    let (client, mut conn, connect_ms) = connect(a, true);
    let q = qos(a.qos);
    let t0 = Instant::now();
    if q == QoS::AtMostOnce {
        let publisher = {
            let (client, a) = (client.clone(), a.clone());
            std::thread::spawn(move || {
                let mut payload = Payload::new(&a.run, a.size);
                for seq in 0..a.count {
                    ok(
                        client.publish(a.topic.as_str(), QoS::AtMostOnce, false, payload.fill(seq)),
                        "publish",
                    );
                }
            })
        };
        let mut written = 0;
        while written < a.count {
            if let Event::Outgoing(Outgoing::Publish(_)) = next(&mut conn) {
                written += 1;
            }
        }
        ok(publisher.join(), "publisher thread");
    } else {
        let mut payload = Payload::new(&a.run, a.size);
        for seq in 0..a.count {
            ok(
                client.publish(a.topic.as_str(), q, false, payload.fill(seq)),
                "publish",
            );
            loop {
                match next(&mut conn) {
                    Event::Incoming(Packet::PubAck(_)) if q == QoS::AtLeastOnce => break,
                    Event::Incoming(Packet::PubComp(_)) if q == QoS::ExactlyOnce => break,
                    _ => {}
                }
            }
        }
    }
    let elapsed = t0.elapsed();
    let disconnect_ms = close(client, conn);
    let mut r = Report::new(NAME, a);
    throughput(&mut r, a.count, elapsed);
    r.num("connect_ms", connect_ms)
        .num("disconnect_ms", disconnect_ms)
        .print();
}

/// QoS 1/2 with up to `BENCH_WINDOW` messages unacknowledged: publishes while
/// the window has room, otherwise drives the connection, counting PUBACKs
/// (QoS 1) or PUBCOMPs (QoS 2), until all are in.
fn publish_window(a: &Args) {
    let n = window();
    let q = qos(a.qos);
    if q == QoS::AtMostOnce {
        die("pubw is for QoS 1 and 2");
    }
    // The request channel (capacity 100 in `connect_with`) never holds more
    // than the window, so `publish` does not block.
    let w = u16::try_from(n)
        .ok()
        .filter(|&w| w <= 100)
        .unwrap_or_else(|| die("pubw: window above 100"));
    let (client, mut conn, connect_ms) = connect_with(a, true, Some(w));
    let mut payload = Payload::new(&a.run, a.size);
    let (mut published, mut acked) = (0, 0);
    let t0 = Instant::now();
    while acked < a.count {
        while published < a.count && published - acked < n {
            ok(
                client.publish(a.topic.as_str(), q, false, payload.fill(published)),
                "publish",
            );
            published += 1;
        }
        match next(&mut conn) {
            Event::Incoming(Packet::PubAck(_)) if q == QoS::AtLeastOnce => acked += 1,
            Event::Incoming(Packet::PubComp(_)) if q == QoS::ExactlyOnce => acked += 1,
            _ => {}
        }
    }
    let elapsed = t0.elapsed();
    let disconnect_ms = close(client, conn);
    let mut r = Report::new(NAME, a);
    throughput(&mut r, a.count, elapsed);
    r.num("connect_ms", connect_ms)
        .num("disconnect_ms", disconnect_ms)
        .print();
}

/// Counts the queued messages of a persistent session.
fn receive(a: &Args) {
    let mut seen = Seen::new(&a.run, a.count);
    let (mut first, mut last) = (None, None);
    let (client, mut conn, connect_ms) = connect(a, false);
    while !seen.complete() {
        match conn.recv_timeout(IDLE) {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                let now = Instant::now();
                first.get_or_insert(now);
                if seen.record(&p.payload) {
                    last = Some(now);
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => die(&format!("connection: {e:?}")),
            Err(_) => break,
        }
    }
    let disconnect_ms = close(client, conn);
    let mut r = Report::new(NAME, a);
    receive_report(&mut r, &seen, first, last);
    r.num("connect_ms", connect_ms)
        .num("disconnect_ms", disconnect_ms)
        .print();
}

/// Publish-to-receive latency at QoS 1 through the broker.
fn latency(a: &Args) {
    let (client, mut conn, connect_ms) = connect(a, true);
    ok(
        client.subscribe(a.topic.as_str(), QoS::AtLeastOnce),
        "subscribe",
    );
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = next(&mut conn) {
            break;
        }
    }
    let mut payload = Payload::new(&a.run, a.size);
    let mut seen = Seen::new(&a.run, a.count);
    let mut samples = Vec::with_capacity(a.count);
    for seq in 0..a.count {
        let t0 = Instant::now();
        ok(
            client.publish(a.topic.as_str(), QoS::AtLeastOnce, false, payload.fill(seq)),
            "publish",
        );
        let (mut acked, mut back) = (false, false);
        while !(acked && back) {
            match next(&mut conn) {
                Event::Incoming(Packet::PubAck(_)) => acked = true,
                Event::Incoming(Packet::Publish(p)) if seen.record(&p.payload) => {
                    samples.push(t0.elapsed().as_nanos() as u64);
                    back = true;
                }
                _ => {}
            }
        }
    }
    let disconnect_ms = close(client, conn);
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
