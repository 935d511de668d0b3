//! Command line and environment: `--flag value`, `--flag=value`, with
//! `MQTT_*` environment variables as fallbacks for the connection settings.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the demo needs to run.
#[derive(Debug)]
pub struct Config {
    pub broker: String,
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub prefix: String,
    pub interval: Duration,
    pub temp_path: PathBuf,
    pub led_dir: PathBuf,
    pub keepalive: Duration,
    /// `--mqtt5`: MQTT 5 with a session expiry interval and a will delay.
    pub mqtt5: bool,
    /// `--will-delay`: the will delay interval with `--mqtt5`.
    pub will_delay: Duration,
    /// `--persistence-dir`: where QoS 1/2 messages in flight are kept
    /// (`DirStore`); none by default.
    pub persistence_dir: Option<PathBuf>,
    /// Number of `-v`: 1 adds debug logs and the library's protocol trace,
    /// 2 and more everything.
    pub verbose: u8,
}

/// Why parsing did not produce a [`Config`].
#[derive(Debug)]
pub enum Stop {
    /// `-h` / `--help`: print [`usage`] to stdout, exit 0.
    Help,
    /// A bad argument: print the message and a hint to stderr, exit 64.
    Usage(String),
}

/// The `--help` text.
pub fn usage() -> String {
    format!(
        "\
mqtt_client {version}: a Rust port of the mqttClient.c board demo (Paho C {paho}).

Publishes the SoC temperature every interval and drives an LED from MQTT.

USAGE:
    mqtt_client [OPTIONS]

OPTIONS:
    --broker URI         Broker [env MQTT_BROKER] (default tcp://localhost:1883)
    --client-id ID       Client id; keep it stable, the session is persistent
                         [env MQTT_CLIENT_ID] (default mqtt_client-<hostname>)
    --username U         User name [env MQTT_USERNAME]
    --password P         Password [env MQTT_PASSWORD]; prefer the environment,
                         the command line is visible to every user in `ps`
    --topic-prefix P     Topic prefix (default dt_mqtt)
    --interval SECS      Seconds between temperature readings (default 30)
    --temp-path FILE     Temperature file, millidegrees Celsius
                         (default /sys/class/thermal/thermal_zone0/temp)
    --led-path DIR       LED class directory with `trigger` and `brightness`
                         (default /sys/class/leds/sys-led)
    --keepalive SECS     MQTT keepalive, 0 turns it off (default 30)
    --mqtt5              Speak MQTT 5 (default MQTT 3.1.1), with a session expiry
                         interval (120 s) and a will delay interval: a connection
                         that drops and comes back within the delay does not
                         publish the will (no `Unexpected disconnection` flap)
    --will-delay SECS    The will delay interval with --mqtt5 (default 10)
    --persistence-dir DIR
                         Keep QoS 1/2 messages in flight in DIR (an existing,
                         writable directory, e.g. on the data partition of a
                         board with a read-only root), so they are sent after
                         a crash or power cut (default: none, memory only)
    -v, --verbose        Debug logs and the Paho C protocol trace (-vv: all of it;
                         repeating it more is the same as -vv)
    -h, --help           This text

Empty environment variables count as unset; a flag wins over the environment.

TOPICS (with the default prefix):
    dt_mqtt/will         `Online` (retained) after each connect, `Offline` on
                         SIGINT/SIGTERM; the broker publishes the will
                         `Unexpected disconnection` (retained) if the demo dies
    dt_mqtt/temperature  the temperature file's content, trimmed (retained, QoS 0)
    dt_mqtt/led          commands: 0 = off, 1 = on, 2 = heartbeat

EXIT CODES:
    0     clean shutdown after SIGINT or SIGTERM
    1     unexpected error (logged)
    2     the broker refused the connection (CONNACK), e.g. a bad password
    64    bad command line
    128+N a second signal N during shutdown forced an immediate exit
",
        version = env!("CARGO_PKG_VERSION"),
        paho = paho_mqtt_sync::library_version(),
    )
}

/// Parses the arguments (without the program name); `env` looks up an
/// environment variable.
pub fn parse(
    args: impl IntoIterator<Item = OsString>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Config, Stop> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let mut broker = None;
    let mut client_id = None;
    let mut username = None;
    let mut password = None;
    let mut prefix = None;
    let mut interval = None;
    let mut temp_path = None;
    let mut led_dir = None;
    let mut keepalive = None;
    let mut will_delay = None;
    let mut mqtt5 = false;
    let mut persistence_dir = None;
    let mut verbose = 0u8;

    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str().map(str::to_owned) else {
            return Err(Stop::Usage(format!("unexpected argument {arg:?}")));
        };
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_owned(), Some(OsString::from(v))),
            _ => (arg.clone(), None),
        };
        match name.as_str() {
            "-h" | "--help" => return Err(Stop::Help),
            "--verbose" => verbose = verbose.saturating_add(1),
            "--mqtt5" => mqtt5 = true,
            // -v, -vv, -vvv...: each v counts; more than needed changes nothing.
            short if short.len() > 1 && short[1..].bytes().all(|b| b == b'v') => {
                let n = u8::try_from(short.len() - 1).unwrap_or(u8::MAX);
                verbose = verbose.saturating_add(n);
            }
            "--broker" | "--client-id" | "--username" | "--password" | "--topic-prefix"
            | "--interval" | "--temp-path" | "--led-path" | "--keepalive" | "--persistence-dir"
            | "--will-delay" => {
                let value = match inline {
                    Some(v) => v,
                    None => args
                        .next()
                        .ok_or_else(|| Stop::Usage(format!("{name} needs a value")))?,
                };
                match name.as_str() {
                    "--temp-path" => temp_path = Some(PathBuf::from(value)),
                    "--led-path" => led_dir = Some(PathBuf::from(value)),
                    "--persistence-dir" => persistence_dir = Some(PathBuf::from(value)),
                    _ => {
                        let text = value
                            .into_string()
                            .map_err(|v| Stop::Usage(format!("{name}: {v:?} is not UTF-8")))?;
                        let slot = match name.as_str() {
                            "--broker" => &mut broker,
                            "--client-id" => &mut client_id,
                            "--username" => &mut username,
                            "--password" => &mut password,
                            "--topic-prefix" => &mut prefix,
                            "--interval" => &mut interval,
                            "--will-delay" => &mut will_delay,
                            _ => &mut keepalive,
                        };
                        *slot = Some(text);
                    }
                }
            }
            _ => return Err(Stop::Usage(format!("unknown argument {arg:?}"))),
        }
    }

    let broker = broker
        .or_else(|| env("MQTT_BROKER"))
        .unwrap_or_else(|| "tcp://localhost:1883".to_owned());
    let client_id = client_id
        .or_else(|| env("MQTT_CLIENT_ID"))
        .unwrap_or_else(default_client_id);
    if client_id.is_empty() {
        return Err(Stop::Usage(
            "--client-id must not be empty (the session is persistent)".into(),
        ));
    }
    let prefix = prefix.unwrap_or_else(|| "dt_mqtt".to_owned());
    // The longest topic built from the prefix; the checks are the library's.
    paho_mqtt_sync::validate_topic(&format!("{prefix}/temperature"))
        .map_err(|e| Stop::Usage(format!("--topic-prefix: {e}")))?;
    let username = username.or_else(|| env("MQTT_USERNAME"));
    let password = password.or_else(|| env("MQTT_PASSWORD"));
    if password.is_some() && username.is_none() {
        // MQTT 3.1.1 (3.1.2.9): no password without a user name.
        return Err(Stop::Usage(
            "a password needs a user name (--username or MQTT_USERNAME)".into(),
        ));
    }
    let interval = seconds("--interval", interval, 30, 1, 86_400)?;
    let keepalive = seconds("--keepalive", keepalive, 30, 0, 65_535)?;
    if will_delay.is_some() && !mqtt5 {
        return Err(Stop::Usage("--will-delay needs --mqtt5".into()));
    }
    let will_delay = seconds("--will-delay", will_delay, 10, 0, 86_400)?;
    Ok(Config {
        broker,
        client_id,
        username,
        password,
        prefix,
        interval,
        temp_path: temp_path.unwrap_or_else(|| "/sys/class/thermal/thermal_zone0/temp".into()),
        led_dir: led_dir.unwrap_or_else(|| "/sys/class/leds/sys-led".into()),
        keepalive,
        mqtt5,
        will_delay,
        persistence_dir,
        verbose,
    })
}

/// A whole number of seconds in `min..=max`.
fn seconds(
    flag: &str,
    value: Option<String>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<Duration, Stop> {
    let secs = match value {
        None => default,
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| (min..=max).contains(s))
            .ok_or_else(|| {
                Stop::Usage(format!(
                    "{flag}: {v:?} is not a whole number of seconds from {min} to {max}"
                ))
            })?,
    };
    Ok(Duration::from_secs(secs))
}

/// `mqtt_client-<hostname>`: stable across restarts of the same board.
fn default_client_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    format!(
        "mqtt_client-{}",
        if host.is_empty() { "unknown" } else { host }
    )
}
