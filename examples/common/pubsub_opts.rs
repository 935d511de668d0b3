//! The command line of `paho_cs_pub` and `paho_cs_sub`, the same options as
//! the Paho C tools (their `pubsub_opts.c`), parsed by hand, plus what both
//! tools share: connecting with those options, the trace printer, the
//! SIGINT/SIGTERM flag.
//!
//! Options take their value as the next argument (`-t topic`, `--topic
//! topic`), as in C; a first argument that does not start with `-` is the
//! topic. Differences from C, on purpose: `--will-retain` is a flag (the C
//! parser also swallows the argument after it), `-V`/`--MQTTversion` are both
//! accepted (C's parser only knows `-V`), numbers are checked (C's `atoi` turns
//! `abc` into 0), and `--help` prints the usage and exits 0.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use paho_mqtt_sync::{Client, ConnectOptions, MqttVersion, QoS, TraceLevel, WillOptions};

/// What the command line asks for (C's `struct pubsub_opts`).
#[derive(Debug, Clone)]
pub struct Opts {
    pub quiet: bool,
    pub verbose: bool,
    pub trace: Option<TraceLevel>,
    /// `None` after `--no-delimiter` (subscriber).
    pub delimiter: Option<String>,
    pub maxdatalen: usize,
    // Message (publisher).
    pub message: Option<String>,
    pub filename: Option<PathBuf>,
    pub null_message: bool,
    // MQTT.
    /// `-V 5` is parsed (for a clear error later), not connected with.
    pub mqtt5: bool,
    pub mqtt_version: MqttVersion,
    pub topic: String,
    pub clientid: String,
    pub qos: QoS,
    /// `-r` for the publisher (publish retained), `-R` for the subscriber
    /// (do not print retained messages).
    pub retained: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: String,
    pub connection: Option<String>,
    pub keepalive: u64,
    // Will.
    pub will_topic: Option<String>,
    pub will_payload: Option<String>,
    pub will_qos: QoS,
    pub will_retain: bool,
    // TLS.
    pub insecure: bool,
    pub capath: Option<String>,
    pub cert: Option<String>,
    pub cafile: Option<String>,
    pub key: Option<String>,
    pub keypass: Option<String>,
    pub ciphers: Option<String>,
    /// Options the C tools accept and do nothing with (`--psk`,
    /// `--psk-identity`; `--message-expiry`, `--user-property` without MQTT 5).
    pub ignored: Vec<&'static str>,
    /// HTTP(S) proxy options: the crate has no proxy setting.
    pub proxy: Option<&'static str>,
}

/// Why there is nothing to run.
#[derive(Debug)]
pub enum Stop {
    /// `--help`: usage on stdout, exit 0.
    Help,
    /// A bad command line: the message (if any) on stderr, usage on stdout,
    /// exit 1, as the C tools do.
    Usage(Option<String>),
}

impl Opts {
    fn defaults(publisher: bool) -> Opts {
        Opts {
            quiet: false,
            verbose: false,
            trace: None,
            delimiter: Some("\n".to_owned()),
            maxdatalen: 100,
            message: None,
            filename: None,
            null_message: false,
            mqtt5: false,
            mqtt_version: MqttVersion::Default,
            topic: String::new(),
            clientid: if publisher {
                "paho-cs-pub"
            } else {
                "paho-cs-sub"
            }
            .to_owned(),
            qos: QoS::AtMostOnce,
            retained: false,
            username: None,
            password: None,
            host: "localhost".to_owned(),
            port: "1883".to_owned(),
            connection: None,
            keepalive: 10,
            will_topic: None,
            will_payload: None,
            will_qos: QoS::AtMostOnce,
            will_retain: false,
            insecure: false,
            capath: None,
            cert: None,
            cafile: None,
            key: None,
            keypass: None,
            ciphers: None,
            ignored: Vec::new(),
            proxy: None,
        }
    }

    /// The server URI: `--connection`, else `host:port` (no scheme: Paho C
    /// takes that as TCP), as the C tools build it.
    pub fn url(&self) -> String {
        match &self.connection {
            Some(c) => c.clone(),
            None => format!("{}:{}", self.host, self.port),
        }
    }

    /// Whether the URI asks for TLS (the C tools' test).
    pub fn is_tls(&self) -> bool {
        let url = self.url();
        ["ssl://", "tls://", "mqtts://", "wss://"]
            .iter()
            .any(|p| url.starts_with(p))
    }
}

fn qos(text: &str) -> Option<QoS> {
    match text {
        "0" => Some(QoS::AtMostOnce),
        "1" => Some(QoS::AtLeastOnce),
        "2" => Some(QoS::ExactlyOnce),
        _ => None,
    }
}

/// Parses the arguments after the program name.
pub fn parse(publisher: bool, args: &[String]) -> Result<Opts, Stop> {
    let mut o = Opts::defaults(publisher);
    let mut topic = None;
    let mut args = args.iter().map(String::as_str).peekable();
    if args.peek().is_none() {
        return Err(Stop::Usage(None));
    }
    if let Some(first) = args.next_if(|a| !a.starts_with('-')) {
        topic = Some(first.to_owned());
    }
    let usage = |msg: String| Stop::Usage(Some(msg));
    while let Some(arg) = args.next() {
        // The option's value: the next argument, whatever it looks like.
        let mut value = || {
            args.next()
                .map(str::to_owned)
                .ok_or_else(|| usage(format!("{arg} needs a value")))
        };
        match arg {
            "--help" => return Err(Stop::Help),
            "-v" | "--verbose" => o.verbose = true,
            "--quiet" => o.quiet = true,
            "-q" | "--qos" => {
                let v = value()?;
                o.qos = qos(&v).ok_or_else(|| usage(format!("{arg}: {v:?} is not 0, 1 or 2")))?;
            }
            "-c" | "--connection" => o.connection = Some(value()?),
            "-h" | "--host" => o.host = value()?,
            "-p" | "--port" => o.port = value()?,
            "--http-proxy" | "--https-proxy" => {
                value()?;
                o.proxy = Some(if arg == "--http-proxy" {
                    "--http-proxy"
                } else {
                    "--https-proxy"
                });
            }
            "-i" | "--clientid" => o.clientid = value()?,
            "-u" | "--username" => o.username = Some(value()?),
            "-P" | "--password" => o.password = Some(value()?),
            "--maxdatalen" => {
                let v = value()?;
                o.maxdatalen = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    usage(format!("--maxdatalen: {v:?} is not a positive number"))
                })?;
            }
            "--delimiter" => o.delimiter = Some(value()?),
            "--no-delimiter" => o.delimiter = None,
            "-k" | "--keepalive" => {
                let v = value()?;
                o.keepalive = v
                    .parse()
                    .ok()
                    .filter(|k| *k <= 65_535)
                    .ok_or_else(|| usage(format!("{arg}: {v:?} is not 0..65535 seconds")))?;
            }
            "-t" | "--topic" => topic = Some(value()?),
            "--will-topic" => o.will_topic = Some(value()?),
            "--will-payload" => o.will_payload = Some(value()?),
            "--will-qos" => {
                let v = value()?;
                o.will_qos =
                    qos(&v).ok_or_else(|| usage(format!("--will-qos: {v:?} is not 0, 1 or 2")))?;
            }
            "--will-retain" => o.will_retain = true,
            "--insecure" => o.insecure = true,
            "--capath" => o.capath = Some(value()?),
            "--cafile" => o.cafile = Some(value()?),
            "--cert" => o.cert = Some(value()?),
            "--key" => o.key = Some(value()?),
            "--keypass" => o.keypass = Some(value()?),
            "--ciphers" => o.ciphers = Some(value()?),
            "--psk" | "--psk-identity" => {
                value()?;
                o.ignored.push(if arg == "--psk" {
                    "--psk"
                } else {
                    "--psk-identity"
                });
            }
            "-V" | "--MQTTversion" => {
                let v = value()?;
                match v.as_str() {
                    "31" | "mqttv31" => o.mqtt_version = MqttVersion::V3_1,
                    "311" | "mqttv311" => o.mqtt_version = MqttVersion::V3_1_1,
                    "5" | "mqttv5" => o.mqtt5 = true,
                    _ => return Err(usage(format!("{arg}: {v:?} is not 31, 311 or 5"))),
                }
            }
            "--trace" => {
                let v = value()?;
                o.trace = Some(match v.as_str() {
                    "error" => TraceLevel::Error,
                    "protocol" => TraceLevel::Protocol,
                    "min" | "on" => TraceLevel::Minimum,
                    "max" => TraceLevel::Maximum,
                    _ => {
                        return Err(usage(format!(
                            "--trace: {v:?} is not error, protocol, min, on or max"
                        )))
                    }
                });
            }
            "-R" | "--no-retained" if !publisher => o.retained = true,
            "-r" | "--retained" if publisher => o.retained = true,
            "-m" | "--message" if publisher => o.message = Some(value()?),
            "-f" | "--filename" if publisher => o.filename = Some(PathBuf::from(value()?)),
            "-n" | "--null-message" if publisher => o.null_message = true,
            "--message-expiry" if publisher => {
                value()?;
                o.ignored.push("--message-expiry");
            }
            "--user-property" if publisher => {
                value()?;
                value()?;
                o.ignored.push("--user-property");
            }
            other => return Err(usage(format!("Unknown option {other}"))),
        }
    }
    o.topic = topic.ok_or_else(|| usage("no topic given (-t topic)".to_owned()))?;
    if o.password.is_some() && o.username.is_none() {
        return Err(usage("a password (-P) needs a user name (-u)".to_owned()));
    }
    Ok(o)
}

/// The usage text: the options of the C tools, in the same order.
pub fn usage(publisher: bool) -> String {
    let (name, verb) = if publisher {
        ("paho_cs_pub", "publish")
    } else {
        ("paho_cs_sub", "subscribe")
    };
    let mut u = String::new();
    let _ = writeln!(
        u,
        "{name}: the Paho C sample {}, on paho-mqtt-sync (Paho C {}).\n",
        if publisher { "publisher" } else { "subscriber" },
        paho_mqtt_sync::library_version()
    );
    let _ = writeln!(u, "Usage: {name} [topic] [options]\n");
    let _ = writeln!(u, "  -t, --topic TOPIC      topic to {verb} to");
    let _ = writeln!(
        u,
        "  -c, --connection URI   server URI, instead of host and port (tcp://, ssl://, ws://, ...)"
    );
    let _ = writeln!(
        u,
        "  -h, --host HOST        host to connect to (default localhost)"
    );
    let _ = writeln!(
        u,
        "  -p, --port PORT        port to connect to (default 1883)"
    );
    let _ = writeln!(u, "  -q, --qos 0|1|2        QoS to {verb} with (default 0)");
    let _ = writeln!(
        u,
        "  -V, --MQTTversion V    31 or 311 (default: 3.1.1, then 3.1); 5 is not supported yet"
    );
    let _ = writeln!(u, "  --quiet                print no error messages");
    let _ = writeln!(
        u,
        "  --trace LEVEL          print the library's trace: error, protocol, min (or on), max"
    );
    let _ = writeln!(u, "  -v, --verbose          say what happens");
    if publisher {
        let _ = writeln!(u, "  -r, --retained         publish retained messages");
        let _ = writeln!(u, "  -n, --null-message     publish one empty message");
        let _ = writeln!(u, "  -m, --message TEXT     publish TEXT once");
        let _ = writeln!(
            u,
            "  -f, --filename FILE    publish the file's content once"
        );
        let _ = writeln!(
            u,
            "                         (without -m, -f or -n: each line of stdin, delimiter included)"
        );
    }
    let _ = writeln!(
        u,
        "  -i, --clientid ID      client id (default {})",
        Opts::defaults(publisher).clientid
    );
    let _ = writeln!(u, "  -u, --username USER    user name");
    let _ = writeln!(u, "  -P, --password PASS    password");
    let _ = writeln!(
        u,
        "  -k, --keepalive SECS   keepalive interval (default 10)"
    );
    let _ = writeln!(
        u,
        "  --delimiter TEXT       message delimiter (default a newline)"
    );
    if publisher {
        let _ = writeln!(
            u,
            "  --maxdatalen N         longest message read from stdin, in bytes (default 100)"
        );
        let _ = writeln!(
            u,
            "  --message-expiry SECS  MQTT 5 only: accepted and ignored"
        );
        let _ = writeln!(
            u,
            "  --user-property N V    MQTT 5 only: accepted and ignored"
        );
    } else {
        let _ = writeln!(
            u,
            "  --no-delimiter         print no delimiter after messages"
        );
        let _ = writeln!(u, "  -R, --no-retained      do not print retained messages");
    }
    let _ = writeln!(u, "  --will-topic TOPIC     will topic");
    let _ = writeln!(u, "  --will-payload TEXT    will message (default empty)");
    let _ = writeln!(u, "  --will-qos 0|1|2       will QoS (default 0)");
    let _ = writeln!(u, "  --will-retain          retain the will");
    let _ = writeln!(
        u,
        "  --cafile FILE          TLS: trusted CA certificates (PEM)"
    );
    let _ = writeln!(
        u,
        "  --capath DIR           TLS: directory of trusted CA certificates"
    );
    let _ = writeln!(u, "  --cert FILE            TLS: client certificate (PEM)");
    let _ = writeln!(u, "  --key FILE             TLS: client private key (PEM)");
    let _ = writeln!(
        u,
        "  --keypass PASS         TLS: password of the private key"
    );
    let _ = writeln!(u, "  --ciphers LIST         TLS: OpenSSL cipher list");
    let _ = writeln!(
        u,
        "  --insecure             TLS: do not check that the certificate names the host"
    );
    let _ = writeln!(
        u,
        "  --psk, --psk-identity  accepted and ignored, as by the C tools"
    );
    let _ = writeln!(u, "  --http-proxy, --https-proxy  not supported (error)");
    let _ = writeln!(u, "  --help                 this text");
    u
}

/// Prints usage (and a message) for a [`Stop`] and returns the exit code.
pub fn report_stop(publisher: bool, stop: &Stop) -> u8 {
    match stop {
        Stop::Help => {
            print!("{}", usage(publisher));
            0
        }
        Stop::Usage(msg) => {
            if let Some(msg) = msg {
                eprintln!("{msg}");
            }
            print!("{}", usage(publisher));
            1
        }
    }
}

/// What the C tools cannot do here: MQTT 5 and proxies. `Some(message)` ends
/// the tool with exit code 1.
pub fn unsupported(o: &Opts) -> Option<String> {
    if o.mqtt5 {
        return Some(
            "MQTT 5 (-V 5) is not supported yet: paho-mqtt-sync wraps the MQTT 3.1/3.1.1 API \
             of Paho C; use -V 311 or -V 31"
                .to_owned(),
        );
    }
    if let Some(flag) = o.proxy {
        return Some(format!(
            "{flag} is not supported: paho-mqtt-sync has no proxy setting"
        ));
    }
    if o.is_tls() && !cfg!(feature = "ssl") {
        return Some(format!(
            "{} needs TLS: build the example with --features ssl",
            o.url()
        ));
    }
    None
}

/// The C tools' `trace_callback`: `Trace : <level>, <message>` on stderr.
/// The crate hands the library's trace to the `log` crate, which names the
/// level (`DEBUG`, `TRACE`...) instead of C's number.
struct TracePrinter;

impl log::Log for TracePrinter {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.target() == paho_mqtt_sync::TRACE_TARGET
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            eprintln!("Trace : {}, {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

/// `--trace`: prints the library's trace from that level up.
pub fn start_trace(level: Option<TraceLevel>) {
    if let Some(level) = level {
        static PRINTER: TracePrinter = TracePrinter;
        let _ = log::set_logger(&PRINTER);
        log::set_max_level(log::LevelFilter::Trace);
        paho_mqtt_sync::set_trace_level(Some(level));
    }
}

/// Set by SIGINT or SIGTERM (the C tools' `toStop`).
pub fn stop_flag() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

/// The C tools' `myconnect`: connect options from the command line, a clean
/// session, TLS for TLS URIs. Prints `Connecting` / `Connected` with
/// `--verbose` (to `connected_to_stderr` or stdout, as the C tool does), and
/// the failure unless `--quiet`.
pub fn connect(client: &Client, o: &Opts, connected_to_stderr: bool) -> bool {
    if o.verbose {
        println!("Connecting");
    }
    let mut opts = ConnectOptions::new()
        .keep_alive_interval(Duration::from_secs(o.keepalive))
        .clean_session(true)
        .mqtt_version(o.mqtt_version);
    if let Some(u) = &o.username {
        opts = opts.username(u);
    }
    if let Some(p) = &o.password {
        opts = opts.password(p);
    }
    if let Some(topic) = &o.will_topic {
        let payload = o.will_payload.as_deref().unwrap_or("");
        opts = opts.will(
            WillOptions::new(topic, payload)
                .qos(o.will_qos)
                .retained(o.will_retain),
        );
    }
    #[cfg(feature = "ssl")]
    if o.is_tls() {
        opts = opts.ssl(ssl_options(o));
    }
    match client.connect(&opts) {
        Ok(_) => {
            if o.verbose {
                if connected_to_stderr {
                    eprintln!("Connected");
                } else {
                    println!("Connected");
                }
            }
            true
        }
        Err(e) => {
            if !o.quiet {
                eprintln!("Connect failed return code: {e}");
            }
            false
        }
    }
}

/// The TLS options of the C tools: the server's chain is always checked;
/// `--insecure` only skips the host name check.
#[cfg(feature = "ssl")]
fn ssl_options(o: &Opts) -> paho_mqtt_sync::SslOptions {
    let mut ssl = paho_mqtt_sync::SslOptions::new().verify(!o.insecure);
    if let Some(f) = &o.cafile {
        ssl = ssl.trust_store(f);
    }
    if let Some(d) = &o.capath {
        ssl = ssl.ca_path(d);
    }
    if let Some(f) = &o.cert {
        ssl = ssl.key_store(f);
    }
    if let Some(f) = &o.key {
        ssl = ssl.private_key(f);
    }
    if let Some(p) = &o.keypass {
        ssl = ssl.private_key_password(p);
    }
    if let Some(c) = &o.ciphers {
        ssl = ssl.enabled_cipher_suites(c);
    }
    ssl
}
