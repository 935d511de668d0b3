//! `mqtt_client`: the board demo of the Paho C MQTT tutorial (`mqttClient.c`),
//! ported to this crate's safe API.
//!
//! It publishes the SoC temperature (retained, QoS 0) to `<prefix>/temperature`
//! every interval, drives an LED from `<prefix>/led` (`0` off, `1` on,
//! `2` heartbeat), and announces itself on `<prefix>/will`: `Online` after
//! every connect, `Offline` on SIGINT/SIGTERM, and the broker publishes the
//! will `Unexpected disconnection` if the process dies. Run with `--help` for
//! the options, the topics and the exit codes.
//!
//! Fixed from the C demo: the client is created (`MQTTClient_create` was
//! missing), the LED payload is compared as bytes with its length (the C code
//! `strcmp`s a payload that has no NUL), the LED files are written directly
//! (no `system("echo ...")`), the clean-up runs (on SIGINT/SIGTERM; the C
//! loop never left), lost connections are re-established, and the client is
//! destroyed by `Drop`.
//!
//! Threads: the main thread makes the first connection (with backoff), runs
//! the temperature timer and shutdown, and sleeps reading a socket pair
//! ([`wake`]) that the signal handlers and the client's callbacks write to.
//! After the first connection, the crate's automatic reconnect brings lost
//! connections back (its backoff grows with failed attempts only); its
//! `on_connected` callback tells the main thread, which then announces
//! `Online` and subscribes again if the session is gone. LED commands are
//! handled in the message callback on the library's thread: they only write
//! two small files.
//!
//! With `--mqtt5` it speaks MQTT 5 (`connect5`, `publish_message5`,
//! `subscribe5`, `unsubscribe5`), asks for a session expiry interval and
//! gives the will a delay interval: a connection that drops for a few
//! seconds and is back within the delay leaves no `Unexpected disconnection`
//! on the status topic.
//!
//! Linux only (sysfs).

mod args;
mod board;
mod logger;
mod wake;

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use paho_mqtt_sync::{
    Callbacks, Client, ConnectOptions, ConnectResponse, ConnectReturnCode, CreateOptions, Error,
    Message, MqttVersion, Persistence, Properties, PropertyCode, QoS, ReasonCode, SubscribeOptions,
    WillOptions,
};

use args::Config;
use board::{Led, LedCommand};
use wake::{Event, Wakeup};

/// Exit codes (also in `--help`).
const EXIT_OK: u8 = 0;
const EXIT_FAILURE: u8 = 1;
const EXIT_REFUSED: u8 = 2;
const EXIT_USAGE: u8 = 64;

const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// With `--mqtt5`: how long the broker keeps the session after a loss.
const SESSION_EXPIRY_SECS: u32 = 120;

fn main() -> ExitCode {
    let cfg = match args::parse(std::env::args_os().skip(1), |name| std::env::var(name).ok()) {
        Ok(cfg) => cfg,
        Err(args::Stop::Help) => {
            // Ignore a closed stdout (`mqtt_client --help | head`).
            let _ = std::io::stdout().write_all(args::usage().as_bytes());
            return ExitCode::SUCCESS;
        }
        Err(args::Stop::Usage(msg)) => {
            eprintln!("mqtt_client: {msg}\nTry `mqtt_client --help`.");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    logger::init(cfg.verbose);
    // A panic is a bug. Abort, whatever the build profile: the broker then
    // publishes the will. Unwinding would drop the client, whose DISCONNECT
    // makes the broker discard the will and keep `Online` for a dead process.
    // Only an unwinding build needs the hook: with `panic = "abort"` (the
    // shipping profiles) std aborts after its default hook anyway, and the
    // tiny build's immediate-abort panics never run a hook, so leaving it out
    // there keeps std's backtrace printer out of the binary.
    #[cfg(panic = "unwind")]
    {
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default_hook(info);
            std::process::abort();
        }));
    }
    ExitCode::from(run(&cfg))
}

/// The three topics under the prefix.
struct Topics {
    will: String,
    led: String,
    temperature: String,
}

fn run(cfg: &Config) -> u8 {
    let topics = Topics {
        will: format!("{}/will", cfg.prefix),
        led: format!("{}/led", cfg.prefix),
        temperature: format!("{}/temperature", cfg.prefix),
    };
    info!(
        "mqtt_client {} (Paho C {}): broker {}, client id {:?}, topics {}/{{will,led,temperature}}, interval {} s",
        env!("CARGO_PKG_VERSION"),
        paho_mqtt_sync::library_version(),
        cfg.broker,
        cfg.client_id,
        cfg.prefix,
        cfg.interval.as_secs()
    );
    let wakeup = match wake::install() {
        Ok(w) => w,
        Err(e) => {
            error!("cannot install the signal handlers: {e}");
            return EXIT_FAILURE;
        }
    };
    // The demo's own messages are QoS 0 and need no store; with
    // --persistence-dir, QoS 1/2 messages in flight (yours, if you add any)
    // survive a crash and a power cut (DirStore: temp file + fsync + rename).
    let persistence = match &cfg.persistence_dir {
        None => Persistence::None,
        Some(dir) => Persistence::User(Box::new(paho_mqtt_sync::DirStore::new(dir))),
    };
    let version = if cfg.mqtt5 {
        MqttVersion::V5
    } else {
        MqttVersion::Default
    };
    let client = match Client::create_with_options(
        &cfg.broker,
        &cfg.client_id,
        persistence,
        &CreateOptions::new().mqtt_version(version),
    ) {
        Ok(c) => c,
        Err(e) => {
            error!(
                "cannot create a client for broker {:?} with client id {:?}: {e}",
                cfg.broker, cfg.client_id
            );
            return EXIT_USAGE;
        }
    };
    // Subscribe and unsubscribe wait this long for the broker's answer, even
    // when the connection drops meanwhile: keep it at the library's minimum.
    if let Err(e) = client.set_command_timeout(COMMAND_TIMEOUT) {
        warn!("cannot set the command timeout: {e}");
    }
    let led = Led::new(cfg.led_dir.clone());
    let led_topic = topics.led.clone();
    let events = Arc::new(Mutex::new(Events::default()));
    let (on_connected, on_stopped) = (events.clone(), events.clone());
    let callbacks = Callbacks::new()
        .on_connection_lost(|cause| {
            debug!(
                "connection-lost callback (cause: {})",
                cause.unwrap_or("not given")
            );
            wake::notify();
        })
        // MQTT 5 only: the broker ended the connection with a DISCONNECT.
        // Automatic reconnect follows, except after 0x8E (another client
        // with this client id took the session over).
        .on_disconnected(|reason, props| {
            let why = props
                .get_str(PropertyCode::ReasonString)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            if reason == ReasonCode::SESSION_TAKEN_OVER {
                error!("the broker gave this client id's session to another client ({reason}{why}); not reconnecting");
            } else {
                warn!("the broker ended the connection ({reason}{why})");
            }
            wake::notify();
        })
        .on_connected(move |response| {
            lock(&on_connected).connected = Some(response.clone());
            wake::notify();
        })
        .on_reconnect_stopped(move |e| {
            lock(&on_stopped).stopped = Some(e.clone());
            wake::notify();
        })
        .on_message_arrived(move |topic, msg| {
            if topic == led_topic {
                handle_led(&led, msg.payload());
            } else {
                debug!("ignored a message on {topic}");
            }
            true
        });
    if let Err(e) = client.set_callbacks(callbacks) {
        error!("cannot set the callbacks: {e}");
        return EXIT_FAILURE;
    }
    let mut options = ConnectOptions::new()
        .automatic_reconnect(FIRST_BACKOFF, MAX_BACKOFF)
        .clean_session(false)
        .keep_alive_interval(cfg.keepalive)
        .connect_timeout(CONNECT_TIMEOUT)
        .will(
            WillOptions::new(&topics.will, "Unexpected disconnection")
                .qos(QoS::AtMostOnce)
                .retained(true),
        );
    if let Some(user) = &cfg.username {
        options = options.username(user);
    }
    if let Some(password) = &cfg.password {
        options = options.password(password);
    }
    let v5 = match mqtt5_properties(cfg) {
        Ok(p) => p,
        Err(e) => {
            error!("cannot build the MQTT 5 properties: {e}");
            return EXIT_USAGE;
        }
    };
    let mut demo = Demo {
        cfg,
        client: &client,
        options,
        v5,
        wakeup,
        topics,
        events,
        backoff: FIRST_BACKOFF,
        temp_error: None,
    };
    demo.main_loop()
    // `client` is dropped here: MQTTClient_destroy, the C demo's `destroy_exit`.
}

/// With `--mqtt5`: the CONNECT properties (session expiry interval) and the
/// will's (will delay interval).
fn mqtt5_properties(cfg: &Config) -> Result<Option<(Properties, Properties)>, Error> {
    if !cfg.mqtt5 {
        return Ok(None);
    }
    let mut connect = Properties::new();
    connect.push_int(PropertyCode::SessionExpiryInterval, SESSION_EXPIRY_SECS)?;
    let mut will = Properties::new();
    let delay = u32::try_from(cfg.will_delay.as_secs()).unwrap_or(u32::MAX);
    will.push_int(PropertyCode::WillDelayInterval, delay)?;
    Ok(Some((connect, will)))
}

/// What the client's callbacks tell the main loop.
#[derive(Default)]
struct Events {
    /// A connect succeeded (the first, or an automatic reconnect).
    connected: Option<ConnectResponse>,
    /// Automatic reconnect gave up (the broker refused the connection).
    stopped: Option<Error>,
}

fn lock(events: &Mutex<Events>) -> std::sync::MutexGuard<'_, Events> {
    events
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The main loop's state.
struct Demo<'a> {
    cfg: &'a Config,
    client: &'a Client,
    options: ConnectOptions,
    /// `--mqtt5`: the connect and will properties.
    v5: Option<(Properties, Properties)>,
    wakeup: Wakeup,
    topics: Topics,
    events: Arc<Mutex<Events>>,
    /// The wait before the next attempt of the first connection.
    backoff: Duration,
    /// The last temperature read error, to log each change only once.
    temp_error: Option<String>,
}

/// How the first connection phase ended.
enum Connect {
    Connected,
    Shutdown,
    Exit(u8),
}

impl Demo<'_> {
    fn main_loop(&mut self) -> u8 {
        match self.connect() {
            Connect::Connected => {}
            Connect::Shutdown => {
                info!("{}: not connected, exiting", signal_name());
                return EXIT_OK;
            }
            Connect::Exit(code) => return code,
        }
        // The broker keeps the subscription in the persistent session. Start
        // with subscribing anyway (the last run unsubscribed on its way out),
        // then again whenever the session is gone, or an attempt failed.
        let mut need_subscribe = true;
        let mut was_connected = true;
        let mut next_reading = Instant::now();
        loop {
            let (connected, stopped) = {
                let mut e = lock(&self.events);
                (e.connected.take(), e.stopped.take())
            };
            if let Some(e) = stopped {
                error!(
                    "the broker {} refused the reconnection: {e}",
                    self.cfg.broker
                );
                return EXIT_REFUSED;
            }
            if let Some(response) = connected {
                info!(
                    "connected to {} (session present: {})",
                    response.server_uri(),
                    response.session_present()
                );
                need_subscribe |= !response.session_present();
                was_connected = true;
                self.publish(&self.topics.will, "Online");
            }
            let is_connected = self.client.is_connected();
            if was_connected && !is_connected {
                warn!("connection to the broker lost; reconnecting automatically");
            }
            was_connected = is_connected;
            if is_connected && need_subscribe {
                need_subscribe = !self.subscribe();
            }
            let now = Instant::now();
            if now >= next_reading {
                if is_connected {
                    self.publish_temperature();
                }
                next_reading += self.cfg.interval;
                if next_reading <= now {
                    next_reading = now + self.cfg.interval;
                }
            }
            if self.wakeup.wait_until(next_reading) == Event::Shutdown {
                return self.shutdown();
            }
        }
    }

    fn next_backoff(&mut self) -> Duration {
        let d = self.backoff;
        self.backoff = (d * 2).min(MAX_BACKOFF);
        d
    }

    /// Makes the first connection, retrying with backoff until it works,
    /// the broker refuses for good, or a signal asks to stop. (Later losses
    /// are the crate's automatic reconnect's business.)
    fn connect(&mut self) -> Connect {
        let mut wait = None;
        let mut attempt = 0u32;
        loop {
            if let Some(d) = wait.take() {
                if self.wakeup.sleep_until(Instant::now() + d) {
                    return Connect::Shutdown;
                }
            }
            if wake::shutdown_signal().is_some() {
                return Connect::Shutdown;
            }
            attempt += 1;
            info!(
                "connecting to {} as {:?} (attempt {attempt})",
                self.cfg.broker, self.cfg.client_id
            );
            let result = match &self.v5 {
                Some((props, will)) => self.client.connect5(&self.options, props, will).map(|_| ()),
                None => self.client.connect(&self.options).map(|_| ()),
            };
            let err = match result {
                // on_connected has recorded the response for the main loop.
                Ok(()) => return Connect::Connected,
                Err(e) => e,
            };
            match err {
                // "Server unavailable" may pass; the other refusals (bad
                // credentials, rejected id, protocol) will not.
                Error::ConnectionRefused(rc) if rc != ConnectReturnCode::ServerUnavailable => {
                    error!(
                        "the broker {} refused the connection: {rc}",
                        self.cfg.broker
                    );
                    return Connect::Exit(EXIT_REFUSED);
                }
                Error::ConnectionRefusedV5 { reason, .. }
                    if reason != ReasonCode::SERVER_UNAVAILABLE
                        && reason != ReasonCode::SERVER_BUSY =>
                {
                    error!(
                        "the broker {} refused the connection: {err}",
                        self.cfg.broker
                    );
                    return Connect::Exit(EXIT_REFUSED);
                }
                Error::ConnectionRefused(_)
                | Error::ConnectionRefusedV5 { .. }
                | Error::Connect(_)
                | Error::Library(_)
                | Error::Disconnected
                | Error::Timeout => {
                    let d = self.next_backoff();
                    warn!(
                        "cannot connect to {}: {err}; retrying in {} s",
                        self.cfg.broker,
                        d.as_secs()
                    );
                    wait = Some(d);
                }
                other => {
                    error!("cannot connect to {}: {other}", self.cfg.broker);
                    return Connect::Exit(EXIT_FAILURE);
                }
            }
        }
    }

    /// Subscribes to the LED topic; false if it should be tried again.
    fn subscribe(&self) -> bool {
        if self.v5.is_some() {
            return self.subscribe5();
        }
        match self.client.subscribe(&self.topics.led, QoS::AtMostOnce) {
            Ok(_) => {
                info!("subscribed to {}", self.topics.led);
                true
            }
            Err(e @ Error::SubscriptionRefused(_)) => {
                error!("{e}: LED commands will not arrive");
                true
            }
            Err(e) => {
                warn!(
                    "cannot subscribe to {}: {e}; trying again later",
                    self.topics.led
                );
                false
            }
        }
    }

    /// [`subscribe`](Self::subscribe) with MQTT 5: the refusal is a reason code.
    fn subscribe5(&self) -> bool {
        let none = Properties::new();
        let led = &self.topics.led;
        match self
            .client
            .subscribe5(led, QoS::AtMostOnce, &SubscribeOptions::new(), &none)
        {
            Ok(r) if r.reason_codes().iter().any(|c| c.is_error()) => {
                error!(
                    "the broker refused the subscription to {led} ({}): LED commands will not arrive",
                    r.reason_codes()[0]
                );
                true
            }
            Ok(_) => {
                info!("subscribed to {led}");
                true
            }
            Err(e) => {
                warn!("cannot subscribe to {led}: {e}; trying again later");
                false
            }
        }
    }

    /// Publishes a retained QoS 0 message, logging a failure.
    fn publish(&self, topic: &str, payload: &str) -> bool {
        let msg = Message::new(payload, QoS::AtMostOnce, true);
        let result = if self.v5.is_some() {
            self.client.publish_message5(topic, &msg)
        } else {
            self.client.publish_message(topic, &msg)
        };
        match result {
            Ok(_) => {
                debug!("published {payload:?} to {topic}");
                true
            }
            Err(e) => {
                warn!("cannot publish {payload:?} to {topic}: {e}");
                false
            }
        }
    }

    fn publish_temperature(&mut self) {
        match board::read_temperature(&self.cfg.temp_path) {
            Ok(value) => {
                if self.temp_error.take().is_some() {
                    info!("the temperature file is readable again");
                }
                let topic = &self.topics.temperature;
                self.publish(topic, &value);
            }
            Err(e) => {
                if self.temp_error.as_ref() != Some(&e) {
                    warn!("{e}; trying again every {} s", self.cfg.interval.as_secs());
                    self.temp_error = Some(e);
                }
            }
        }
    }

    /// The C demo's clean-up, reached at last: `Offline`, unsubscribe, disconnect.
    fn shutdown(&self) -> u8 {
        info!("{}: shutting down", signal_name());
        if self.client.is_connected() {
            self.publish(&self.topics.will, "Offline");
            let unsubscribed = if self.v5.is_some() {
                self.client
                    .unsubscribe5(&self.topics.led, &Properties::new())
                    .map(|_| ())
            } else {
                self.client.unsubscribe(&self.topics.led)
            };
            if let Err(e) = unsubscribed {
                warn!("cannot unsubscribe from {}: {e}", self.topics.led);
            }
            match self.client.disconnect(DISCONNECT_TIMEOUT) {
                Ok(()) => info!("disconnected"),
                Err(e) => warn!("disconnect: {e}"),
            }
        } else {
            info!("not connected: nothing to tell the broker");
        }
        EXIT_OK
    }
}

fn signal_name() -> &'static str {
    match wake::shutdown_signal() {
        Some(signal_hook::consts::SIGINT) => "SIGINT",
        Some(signal_hook::consts::SIGTERM) => "SIGTERM",
        _ => "signal",
    }
}

/// Runs on the library's callback thread: only writes two small files.
fn handle_led(led: &Led, payload: &[u8]) {
    match LedCommand::parse(payload) {
        Some(cmd) => match led.apply(cmd) {
            Ok(()) => info!("LED: {cmd:?}"),
            Err(e) => error!("LED {cmd:?}: {e}"),
        },
        None => {
            let shown = &payload[..payload.len().min(32)];
            warn!(
                "ignored LED command \"{}\"{} (expected 0, 1 or 2)",
                shown.escape_ascii(),
                if payload.len() > shown.len() {
                    "..."
                } else {
                    ""
                }
            );
        }
    }
}
