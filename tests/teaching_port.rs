//! The teaching port of the C board demo (`examples/mqtt_client_port.rs`),
//! run as a child process against a private Mosquitto and a fake sysfs in a
//! temp dir: it must do what the seed's `mqttClient.c` does. The example is
//! built by the test (as in tests/demo.rs: same target dir, profile, features).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use common::{wait_until, watchdog, Broker, TempDir, WAIT};
use paho_mqtt_sync::{Client, Message, QoS};

type Result<T = ()> = anyhow::Result<T>;

const EXAMPLE: &str = "mqtt_client_port";
const TEST_LIMIT: Duration = Duration::from_secs(90);
const WILL_TOPIC: &str = "dt_mqtt/will";
const LED_TOPIC: &str = "dt_mqtt/led";
const TEMP_TOPIC: &str = "dt_mqtt/temperature";

// ------------------------------------------------------------ the binary

/// Builds the example once per test process and returns its path.
fn example_binary() -> Result<PathBuf> {
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    BIN.get_or_init(|| build_example().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build_example() -> Result<PathBuf> {
    Ok(common::build_examples(&[EXAMPLE])?.join(EXAMPLE))
}

// ------------------------------------------------------------ the process

/// The running port; SIGKILLed and reaped when dropped. Its stdout and
/// stderr go into one log, which a failing test prints.
struct Port {
    child: Child,
    log: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Port {
    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Result<Port> {
        let mut cmd = common::target_command(example_binary()?);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in [
            "MQTT_BROKER",
            "MQTT_CLIENT_ID",
            "MQTT_USERNAME",
            "MQTT_PASSWORD",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd.spawn().context("starting the example")?;
        let log = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().context("no stdout pipe")?),
            Box::new(child.stderr.take().context("no stderr pipe")?),
        ];
        for pipe in pipes {
            let sink = log.clone();
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut l = sink.lock().unwrap_or_else(|e| e.into_inner());
                    l.push_str(&line);
                    l.push('\n');
                }
            }));
        }
        Ok(Port {
            child,
            log,
            readers,
            status: None,
        })
    }

    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn count(&self, needle: &str) -> usize {
        self.log().matches(needle).count()
    }

    fn expect_log(&self, needle: &str, timeout: Duration) -> Result {
        if wait_until(timeout, || self.log().contains(needle)) {
            Ok(())
        } else {
            bail!(
                "{needle:?} not printed within {timeout:?}; output:\n{}",
                self.log()
            )
        }
    }

    fn is_running(&mut self) -> Result<bool> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status.is_none())
    }

    fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        if !wait_until(timeout, || !matches!(self.is_running(), Ok(true))) {
            bail!("still running after {timeout:?}; output:\n{}", self.log());
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Ok(self.child.wait()?)
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        eprintln!("---- {EXAMPLE} output ----\n{}", self.log());
    }
}

// ------------------------------------------------------------ the board

/// A fake sysfs: `temp` (thermal zone) and `led/{trigger,brightness}`.
struct Board {
    dir: TempDir,
}

impl Board {
    fn new(temp: &str) -> Result<Board> {
        let dir = TempDir::new("cport")?;
        std::fs::create_dir(dir.path().join("led"))?;
        std::fs::write(dir.path().join("led/trigger"), "mmc0\n")?;
        std::fs::write(dir.path().join("led/brightness"), "9\n")?;
        let board = Board { dir };
        board.set_temp(temp)?;
        Ok(board)
    }

    fn temp(&self) -> PathBuf {
        self.dir.path().join("temp")
    }

    fn led(&self) -> PathBuf {
        self.dir.path().join("led")
    }

    /// Replaces the temperature file atomically.
    fn set_temp(&self, content: &str) -> Result {
        let tmp = self.dir.path().join("temp.new");
        std::fs::write(&tmp, content)?;
        std::fs::rename(&tmp, self.temp())?;
        Ok(())
    }

    /// The LED files' exact contents.
    fn led_state(&self) -> (String, String) {
        let read = |f: &str| {
            std::fs::read_to_string(self.led().join(f)).unwrap_or_else(|e| format!("<{e}>"))
        };
        (read("trigger"), read("brightness"))
    }

    /// Waits until the LED files hold exactly `trigger` and `brightness`.
    fn expect_led(&self, trigger: &str, brightness: &str) -> Result {
        let want = (trigger.to_owned(), brightness.to_owned());
        if wait_until(WAIT, || self.led_state() == want) {
            Ok(())
        } else {
            bail!("LED files are {:?}, expected {want:?}", self.led_state())
        }
    }

    /// The port's arguments for this board, the broker and a 1 s interval.
    fn args(&self, uri: &str) -> Vec<String> {
        let path = |p: PathBuf| p.to_str().expect("UTF-8 temp dir").to_owned();
        [
            "--broker".to_owned(),
            uri.to_owned(),
            "--temp-path".to_owned(),
            path(self.temp()),
            "--led-path".to_owned(),
            path(self.led()),
            "--interval".to_owned(),
            "1".to_owned(),
        ]
        .to_vec()
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

// ------------------------------------------------------------ MQTT peers

/// An anonymous test client subscribed to `dt_mqtt/#`.
fn watcher(uri: &str) -> Result<Client> {
    let c = common::connect(uri, "watch")?;
    c.subscribe("dt_mqtt/#", QoS::AtMostOnce)?;
    Ok(c)
}

/// Waits for `payload` on `topic`, skipping other messages.
fn expect_msg(c: &Client, topic: &str, payload: &[u8], timeout: Duration) -> Result<Message> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match c.receive(left)? {
            Some((t, m)) if t == topic && m.payload() == payload => return Ok(m),
            Some((t, m)) => seen.push(format!("{t}={:?}", m.payload().escape_ascii().to_string())),
            None => bail!(
                "no {:?} on {topic} within {timeout:?}; saw {seen:?}",
                payload.escape_ascii().to_string()
            ),
        }
    }
}

/// The retained message of `topic`, as a new subscriber gets it.
fn retained(uri: &str, topic: &str) -> Result<Message> {
    let c = common::connect(uri, "retain")?;
    c.subscribe(topic, QoS::AtMostOnce)?;
    match c.receive(WAIT)? {
        Some((t, m)) if t == topic => {
            ensure!(m.retained(), "message on {topic} is not flagged retained");
            Ok(m)
        }
        other => bail!("no retained message on {topic}: {:?}", other.map(|m| m.0)),
    }
}

fn publish(c: &Client, topic: &str, payload: &[u8]) -> Result {
    let token = c.publish(topic, payload, QoS::AtLeastOnce, false)?;
    c.wait_for_completion(token, WAIT)?;
    Ok(())
}

/// A broker with the user the tests log in as (anonymous watchers allowed).
fn broker() -> Result<Broker> {
    Broker::builder()
        .user("board", "s3cret")
        .allow_anonymous(true)
        .start()
}

// ------------------------------------------------------------ the tests

/// Connect options, `Online`, the temperature loop and the LED commands.
#[test]
fn online_temperature_and_led() -> Result {
    let _w = watchdog("online_temperature_and_led", TEST_LIMIT);
    let broker = broker()?;
    let uri = broker.uri();
    let board = Board::new("45678\n")?;
    let peer = watcher(&uri)?;
    let id = common::client_id("cport");
    let env = [
        ("MQTT_CLIENT_ID", id.as_str()),
        ("MQTT_USERNAME", "board"),
        ("MQTT_PASSWORD", "s3cret"),
    ];
    let args = board.args(&uri);
    let mut port = Port::spawn(&strs(&args), &env)?;

    // The connect: the id, clean session 0, keepalive 30, the user name.
    port.expect_log("MQTT server connected!", WAIT)?;
    let seen = format!("as {id} (p2, c0, k30, u'board')");
    ensure!(
        broker.wait_for_log(&seen, WAIT),
        "broker log has no {seen:?}:\n{}",
        broker.log()
    );
    // "Online", QoS 0, retained.
    let online = expect_msg(&peer, WILL_TOPIC, b"Online", WAIT)?;
    assert_eq!(online.qos(), QoS::AtMostOnce);
    assert_eq!(retained(&uri, WILL_TOPIC)?.payload(), b"Online");

    // The temperature: the file's bytes as read (newline and all), QoS 0,
    // retained, again every interval; at most 10 bytes, like the C buffer.
    let first = expect_msg(&peer, TEMP_TOPIC, b"45678\n", WAIT)?;
    assert_eq!(first.qos(), QoS::AtMostOnce);
    assert_eq!(retained(&uri, TEMP_TOPIC)?.payload(), b"45678\n");
    board.set_temp("51234\n")?;
    expect_msg(&peer, TEMP_TOPIC, b"51234\n", WAIT)?;
    board.set_temp("123456789012345\n")?;
    expect_msg(&peer, TEMP_TOPIC, b"1234567890", WAIT)?;

    // LED commands, exactly "0", "1" and "2"; the files get `echo`'s newline.
    for (payload, trigger, brightness) in [
        ("1", "none\n", "1\n"),
        ("2", "heartbeat\n", "1\n"),
        ("0", "none\n", "0\n"),
        ("2", "heartbeat\n", "0\n"),
        ("1", "none\n", "1\n"),
    ] {
        publish(&peer, LED_TOPIC, payload.as_bytes())?;
        board
            .expect_led(trigger, brightness)
            .with_context(|| format!("after LED command {payload:?}"))?;
    }

    // Anything else is ignored. To see that, the LED files become directories:
    // every write the port tries then prints an error (the C `system("echo
    // ...")` fails the same way) and the port goes on. Commands are handled
    // in order, so once the last valid command's errors are printed, every
    // payload before it has been handled.
    for f in ["trigger", "brightness"] {
        let p = board.led().join(f);
        std::fs::remove_file(&p)?;
        std::fs::create_dir(&p)?;
    }
    let garbage: &[&[u8]] = &[
        b"3", b"", b"on", b" 1", b"1\n", b"1\0", b"11", b"2\r\n", b"\x002", b"0 ", b"00", b"-0",
    ];
    for g in garbage {
        publish(&peer, LED_TOPIC, g)?;
    }
    publish(&peer, LED_TOPIC, b"2")?;
    publish(&peer, LED_TOPIC, b"0")?;
    port.expect_log("echo 0 > ", WAIT)?;
    for (write, n) in [
        ("echo heartbeat > ", 1),
        ("echo none > ", 1),
        ("echo 0 > ", 1),
        ("echo 1 > ", 0),
    ] {
        assert_eq!(port.count(write), n, "{write:?}; output:\n{}", port.log());
    }
    assert!(port.is_running()?, "exited; output:\n{}", port.log());
    Ok(())
}

/// Killed without a DISCONNECT, the broker publishes the will: retained, QoS 0.
#[test]
fn kill_leaves_the_will() -> Result {
    let _w = watchdog("kill_leaves_the_will", TEST_LIMIT);
    let broker = broker()?;
    let uri = broker.uri();
    let board = Board::new("40000\n")?;
    let peer = watcher(&uri)?;
    let mut args = board.args(&uri);
    args.extend(["--client-id", "cport-will"].map(String::from));
    args.extend(["--username", "board", "--password", "s3cret"].map(String::from));
    let mut port = Port::spawn(&strs(&args), &[])?;
    expect_msg(&peer, WILL_TOPIC, b"Online", WAIT)?;
    expect_msg(&peer, TEMP_TOPIC, b"40000\n", WAIT)?;
    port.child.kill()?;
    port.wait_exit(WAIT)?;
    let will = expect_msg(&peer, WILL_TOPIC, b"Unexpected disconnection", WAIT)?;
    assert_eq!(will.qos(), QoS::AtMostOnce);
    assert_eq!(
        retained(&uri, WILL_TOPIC)?.payload(),
        b"Unexpected disconnection"
    );
    Ok(())
}

/// The broker goes away: `connlost` prints, the next temperature publish
/// fails, and the program runs the C clean-up chain: unsubscribe fails,
/// disconnect succeeds (Paho C 1.3.16 returns success for a client that is
/// not connected), destroy. Exit 1 (the C program would exit 0 here, as its
/// `rc` ends up being the disconnect's result).
#[test]
fn connection_lost_runs_the_clean_up_chain() -> Result {
    let _w = watchdog("connection_lost_runs_the_clean_up_chain", TEST_LIMIT);
    let mut broker = broker()?;
    let uri = broker.uri();
    let board = Board::new("41000\n")?;
    let env = [("MQTT_USERNAME", "board"), ("MQTT_PASSWORD", "s3cret")];
    let mut port = Port::spawn(&strs(&board.args(&uri)), &env)?;
    {
        let peer = watcher(&uri)?;
        expect_msg(&peer, TEMP_TOPIC, b"41000\n", WAIT)?;
    }
    broker.stop()?;
    let status = port.wait_exit(Duration::from_secs(30))?;
    let out = port.log();
    assert_eq!(status.code(), Some(1), "output:\n{out}");
    let expected = [
        "\nConnection lost\n cause: (null)\n",
        "Failed to publish message, return code -3\n",
        "Failed to unsubscribe, return code -3\n",
    ];
    let mut at = 0;
    for line in expected {
        match out[at..].find(line) {
            Some(i) => at += i + line.len(),
            None => bail!("{line:?} missing or out of order; output:\n{out}"),
        }
    }
    assert!(!out.contains("Failed to disconnect"), "output:\n{out}");
    Ok(())
}

/// A refused connect prints the C message with the CONNACK code and exits 1.
#[test]
fn refused_connect_exits_1() -> Result {
    let _w = watchdog("refused_connect_exits_1", TEST_LIMIT);
    let broker = broker()?;
    let board = Board::new("42000\n")?;
    let env = [("MQTT_USERNAME", "board"), ("MQTT_PASSWORD", "wrong")];
    let mut port = Port::spawn(&strs(&board.args(&broker.uri())), &env)?;
    let status = port.wait_exit(WAIT)?;
    let out = port.log();
    assert_eq!(status.code(), Some(1), "output:\n{out}");
    assert!(
        out.contains("Failed to connect, return code 5\n"),
        "output:\n{out}"
    );
    assert!(!out.contains("connected!"), "output:\n{out}");
    Ok(())
}
