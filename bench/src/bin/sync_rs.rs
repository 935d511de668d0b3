//! Benchmark client: this crate's safe API (`paho_mqtt_sync::Client`).
//! See `bench::Args` for the command line; besides the common modes,
//! `recvcb` and `latcb` receive through a message-arrived callback instead of
//! `Client::receive`, `reconnect` times disconnect-then-connect rounds of
//! one client, and `pub5` / `pub5u` publish with MQTT 5 (`publish5`; `pub5u`
//! with a user property on every message). `pubw` publishes with a window of
//! `BENCH_WINDOW` messages in flight.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bench::{
    die, latency_report, ms, receive_report, rounds_report, throughput, window, Args, Payload,
    Report, Seen,
};
use paho_mqtt_sync::{
    Callbacks, Client, ConnectOptions, CreateOptions, MqttVersion, Persistence, Properties, QoS,
};

const NAME: &str = "sync_rs";
/// A receiver gives up when no message came for this long.
const IDLE: Duration = Duration::from_secs(10);
const WAIT: Duration = Duration::from_secs(30);

fn qos(q: u8) -> QoS {
    QoS::try_from(i32::from(q)).unwrap_or_else(|e| die(&e.to_string()))
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    r.unwrap_or_else(|e| die(&format!("{what}: {e}")))
}

/// The connect options of every mode: keepalive 30 s.
fn options(clean: bool) -> ConnectOptions {
    ConnectOptions::new()
        .keep_alive_interval(Duration::from_secs(30))
        .clean_session(clean)
}

/// The store from `BENCH_PERSISTENCE` (set by bench.py for the persistence
/// case): `file:DIR` the C library's file store, `dir:DIR` this crate's
/// `DirStore`; unset, none.
fn persistence() -> Persistence {
    match std::env::var("BENCH_PERSISTENCE") {
        Err(_) => Persistence::None,
        Ok(v) => match v.split_once(':') {
            Some(("file", dir)) => Persistence::File(dir.into()),
            Some(("dir", dir)) => Persistence::User(Box::new(paho_mqtt_sync::DirStore::new(dir))),
            _ => die(&format!("bad BENCH_PERSISTENCE {v:?}")),
        },
    }
}

/// Creates and connects a client; returns it and the connect time.
fn connect(a: &Args, clean: bool) -> (Client, f64) {
    connect_with(a, &options(clean))
}

/// Creates a client and connects it with `opts`.
fn connect_with(a: &Args, opts: &ConnectOptions) -> (Client, f64) {
    let t0 = Instant::now();
    let client = ok(
        Client::create(&a.uri(), &a.client_id, persistence()),
        "create",
    );
    ok(client.connect(opts), "connect");
    (client, ms(t0, Instant::now()))
}

/// Disconnects and destroys the client; returns the time it took.
fn close(client: Client) -> f64 {
    let t0 = Instant::now();
    ok(client.disconnect(Duration::from_secs(10)), "disconnect");
    drop(client);
    ms(t0, Instant::now())
}

fn publish(a: &Args) {
    let (client, connect_ms) = connect(a, true);
    let q = qos(a.qos);
    let mut payload = Payload::new(&a.run, a.size);
    let t0 = Instant::now();
    for seq in 0..a.count {
        let token = ok(
            client.publish(&a.topic, payload.fill(seq), q, false),
            "publish",
        );
        if q != QoS::AtMostOnce {
            ok(
                client.wait_for_completion(token, WAIT),
                "wait_for_completion",
            );
        }
    }
    let elapsed = t0.elapsed();
    report_publish(a, client, elapsed, connect_ms);
}

/// QoS 1/2 with up to `BENCH_WINDOW` messages unacknowledged: the library's
/// window (`max_inflight_messages`, `reliable(false)`); `publish` waits for
/// room when it is full. The time runs until every message is acknowledged.
fn publish_window(a: &Args) {
    let n = window();
    let q = qos(a.qos);
    if q == QoS::AtMostOnce {
        die("pubw is for QoS 1 and 2");
    }
    // The tokens are packet identifiers (1-65535), handed out in turn: all
    // distinct below that many messages, so each names one message.
    if a.count >= 65535 {
        die("pubw: COUNT must be below 65535");
    }
    let opts = options(true)
        .reliable(false)
        .max_inflight_messages(u32::try_from(n).unwrap_or_else(|_| die("bad window")));
    let (client, connect_ms) = connect_with(a, &opts);
    let mut payload = Payload::new(&a.run, a.size);
    let mut tokens = Vec::with_capacity(a.count);
    let t0 = Instant::now();
    for seq in 0..a.count {
        tokens.push(ok(
            client.publish(&a.topic, payload.fill(seq), q, false),
            "publish",
        ));
    }
    // All but the last few are complete: those return at once.
    for token in tokens {
        ok(
            client.wait_for_completion(token, WAIT),
            "wait_for_completion",
        );
    }
    let elapsed = t0.elapsed();
    report_publish(a, client, elapsed, connect_ms);
}

/// MQTT 5: the publish loop of [`publish`] through `publish5`, with one user
/// property (`k` = `v`) on every message when `user_property`.
fn publish5(a: &Args, user_property: bool) {
    let t0 = Instant::now();
    let client = ok(
        Client::create_with_options(
            &a.uri(),
            &a.client_id,
            Persistence::None,
            &CreateOptions::new().mqtt_version(MqttVersion::V5),
        ),
        "create",
    );
    let none = Properties::new();
    ok(client.connect5(&options(true), &none, &none), "connect5");
    let connect_ms = ms(t0, Instant::now());
    let mut props = Properties::new();
    if user_property {
        ok(props.push_user_property("k", "v"), "user property");
    }
    let q = qos(a.qos);
    let mut payload = Payload::new(&a.run, a.size);
    let t0 = Instant::now();
    for seq in 0..a.count {
        let token = ok(
            client.publish5(&a.topic, payload.fill(seq), q, false, &props),
            "publish5",
        );
        if q != QoS::AtMostOnce {
            ok(
                client.wait_for_completion(token, WAIT),
                "wait_for_completion",
            );
        }
    }
    let elapsed = t0.elapsed();
    report_publish(a, client, elapsed, connect_ms);
}

/// Counts the queued messages of a persistent session with `receive`.
fn receive(a: &Args) {
    let mut seen = Seen::new(&a.run, a.count);
    let (mut first, mut last) = (None, None);
    let (client, connect_ms) = connect(a, false);
    while !seen.complete() {
        match ok(client.receive(IDLE), "receive") {
            Some((_topic, msg)) => {
                let now = Instant::now();
                first.get_or_insert(now);
                if seen.record(msg.payload()) {
                    last = Some(now);
                }
            }
            None => break,
        }
    }
    let disconnect_ms = close(client);
    let mut r = Report::new(NAME, a);
    receive_report(&mut r, &seen, first, last);
    r.num("connect_ms", connect_ms)
        .num("disconnect_ms", disconnect_ms)
        .print();
}

/// Counts the queued messages of a persistent session through a `Receiver`
/// (`start_consuming`) on another thread, as a consumer thread would.
fn receive_receiver(a: &Args) {
    let (client, connect_ms) = connect(a, false);
    let rx = client.start_consuming();
    let (run, count) = (a.run.clone(), a.count);
    let consumer = std::thread::spawn(move || {
        let mut seen = Seen::new(&run, count);
        let (mut first, mut last) = (None, None);
        while !seen.complete() {
            match rx.recv_timeout(IDLE) {
                Ok((_topic, msg)) => {
                    let now = Instant::now();
                    first.get_or_insert(now);
                    if seen.record(msg.payload()) {
                        last = Some(now);
                    }
                }
                Err(_) => break,
            }
        }
        (seen, first, last)
    });
    let (seen, first, last) = consumer.join().expect("consumer thread");
    let disconnect_ms = close(client);
    let mut r = Report::new(NAME, a);
    receive_report(&mut r, &seen, first, last);
    r.num("connect_ms", connect_ms)
        .num("disconnect_ms", disconnect_ms)
        .print();
}

struct Counted {
    seen: Seen,
    first: Option<Instant>,
    last: Option<Instant>,
}

/// Counts the queued messages of a persistent session in a message callback.
fn receive_callback(a: &Args) {
    let shared = Arc::new((
        Mutex::new(Counted {
            seen: Seen::new(&a.run, a.count),
            first: None,
            last: None,
        }),
        Condvar::new(),
    ));
    let t0 = Instant::now();
    let client = ok(
        Client::create(&a.uri(), &a.client_id, Persistence::None),
        "create",
    );
    let s = shared.clone();
    ok(
        client.set_callbacks(Callbacks::new().on_message_arrived(move |_topic, msg| {
            let now = Instant::now();
            let mut c = s.0.lock().unwrap();
            c.first.get_or_insert(now);
            if c.seen.record(msg.payload()) {
                c.last = Some(now);
                if c.seen.complete() {
                    s.1.notify_all();
                }
            }
            true
        })),
        "set_callbacks",
    );
    let opts = ConnectOptions::new()
        .keep_alive_interval(Duration::from_secs(30))
        .clean_session(false);
    ok(client.connect(&opts), "connect");
    let connect_ms = ms(t0, Instant::now());
    {
        let mut c = shared.0.lock().unwrap();
        while !c.seen.complete() {
            let before = c.seen.distinct;
            c = shared.1.wait_timeout(c, IDLE).unwrap().0;
            if c.seen.distinct == before && !c.seen.complete() {
                break;
            }
        }
    }
    let disconnect_ms = close(client);
    let c = shared.0.lock().unwrap();
    let mut r = Report::new(NAME, a);
    receive_report(&mut r, &c.seen, c.first, c.last);
    r.num("connect_ms", connect_ms)
        .num("disconnect_ms", disconnect_ms)
        .print();
}

/// Publish-to-receive latency at QoS 1 through the broker.
fn latency(a: &Args) {
    let (client, connect_ms) = connect(a, true);
    ok(client.subscribe(&a.topic, QoS::AtLeastOnce), "subscribe");
    let mut payload = Payload::new(&a.run, a.size);
    let mut seen = Seen::new(&a.run, a.count);
    let mut samples = Vec::with_capacity(a.count);
    for seq in 0..a.count {
        let t0 = Instant::now();
        let token = ok(
            client.publish(&a.topic, payload.fill(seq), QoS::AtLeastOnce, false),
            "publish",
        );
        loop {
            match ok(client.receive(IDLE), "receive") {
                Some((_t, msg)) => {
                    if seen.record(msg.payload()) {
                        samples.push(t0.elapsed().as_nanos() as u64);
                        break;
                    }
                }
                None => die("latency: message did not come back"),
            }
        }
        ok(
            client.wait_for_completion(token, WAIT),
            "wait_for_completion",
        );
    }
    let disconnect_ms = close(client);
    let mut r = Report::new(NAME, a);
    r.int("received", seen.distinct as u64);
    latency_report(&mut r, samples);
    r.num("connect_ms", connect_ms)
        .num("disconnect_ms", disconnect_ms)
        .print();
}

struct Arrivals {
    seen: Seen,
    /// When the callback saw the newest message of the run.
    last: Option<Instant>,
}

/// Latency with a message-arrived callback taking the arrival time (the
/// shape of the C callback-mode program).
fn latency_callback(a: &Args) {
    let shared = Arc::new((
        Mutex::new(Arrivals {
            seen: Seen::new(&a.run, a.count),
            last: None,
        }),
        Condvar::new(),
    ));
    let t0 = Instant::now();
    let client = ok(
        Client::create(&a.uri(), &a.client_id, Persistence::None),
        "create",
    );
    let s = shared.clone();
    ok(
        client.set_callbacks(Callbacks::new().on_message_arrived(move |_topic, msg| {
            let now = Instant::now();
            let mut c = s.0.lock().unwrap();
            if c.seen.record(msg.payload()) {
                c.last = Some(now);
                s.1.notify_one();
            }
            true
        })),
        "set_callbacks",
    );
    let opts = ConnectOptions::new().keep_alive_interval(Duration::from_secs(30));
    ok(client.connect(&opts), "connect");
    let connect_ms = ms(t0, Instant::now());
    ok(client.subscribe(&a.topic, QoS::AtLeastOnce), "subscribe");
    let mut payload = Payload::new(&a.run, a.size);
    let mut samples = Vec::with_capacity(a.count);
    for seq in 0..a.count {
        let t0 = Instant::now();
        let token = ok(
            client.publish(&a.topic, payload.fill(seq), QoS::AtLeastOnce, false),
            "publish",
        );
        let arrived = {
            let mut c = shared.0.lock().unwrap();
            while c.seen.distinct <= seq {
                let (g, timeout) = shared.1.wait_timeout(c, IDLE).unwrap();
                c = g;
                if timeout.timed_out() && c.seen.distinct <= seq {
                    die("latency: message did not come back");
                }
            }
            c.last.unwrap_or_else(Instant::now)
        };
        samples.push(arrived.duration_since(t0).as_nanos() as u64);
        ok(
            client.wait_for_completion(token, WAIT),
            "wait_for_completion",
        );
    }
    let disconnect_ms = close(client);
    let received = shared.0.lock().unwrap().seen.distinct;
    let mut r = Report::new(NAME, a);
    r.int("received", received as u64);
    latency_report(&mut r, samples);
    r.num("connect_ms", connect_ms)
        .num("disconnect_ms", disconnect_ms)
        .print();
}

/// COUNT rounds of disconnect, then connect again, on one client; each call
/// timed alone.
fn reconnect(a: &Args) {
    let (client, connect_ms) = connect(a, true);
    let opts = options(true);
    let mut connects = Vec::with_capacity(a.count);
    let mut disconnects = Vec::with_capacity(a.count);
    for _ in 0..a.count {
        let t0 = Instant::now();
        ok(client.disconnect(Duration::from_secs(10)), "disconnect");
        let t1 = Instant::now();
        ok(client.connect(&opts), "connect again");
        let t2 = Instant::now();
        if !client.is_connected() {
            die("reconnect: not connected after connect");
        }
        disconnects.push(ms(t0, t1));
        connects.push(ms(t1, t2));
    }
    let disconnect_ms = close(client);
    let mut r = Report::new(NAME, a);
    rounds_report(&mut r, &connects, &disconnects);
    r.num("connect_ms", connect_ms)
        .num("disconnect_ms", disconnect_ms)
        .print();
}

/// Disconnects and prints the result line of a publish run.
fn report_publish(a: &Args, client: Client, elapsed: Duration, connect_ms: f64) {
    let disconnect_ms = close(client);
    let mut r = Report::new(NAME, a);
    throughput(&mut r, a.count, elapsed);
    r.num("connect_ms", connect_ms)
        .num("disconnect_ms", disconnect_ms)
        .print();
}

fn main() {
    let a = Args::parse(NAME);
    match a.mode.as_str() {
        "pub" => publish(&a),
        "pubw" => publish_window(&a),
        "pub5" => publish5(&a, false),
        "pub5u" => publish5(&a, true),
        "recv" => receive(&a),
        "recvcb" => receive_callback(&a),
        "recvrx" => receive_receiver(&a),
        "lat" => latency(&a),
        "latcb" => latency_callback(&a),
        "reconnect" => reconnect(&a),
        m => die(&format!("unknown mode {m}")),
    }
}
