//! The examples that port the Paho C samples, run as child processes against
//! a private Mosquitto, and checked with `mosquitto_pub` / `mosquitto_sub`
//! and with the crate's own clients: output, exit status, what the broker saw.
//!
//! Like tests/demo.rs, the examples are built by the test itself (same target
//! dir, profile and features), and started through the target's runner when
//! cross-testing. Every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use common::{wait_until, watchdog, Broker, TempDir, WAIT};
use paho_mqtt_sync::{Client, QoS};

type Result<T = ()> = anyhow::Result<T>;

const TEST_LIMIT: Duration = Duration::from_secs(90);

/// The examples these tests run (tls_publish only with `ssl`).
const EXAMPLES: &[&str] = &[
    "MQTTClient_publish",
    "MQTTClient_publish_async",
    "MQTTClient_subscribe",
    "paho_cs_pub",
    "paho_cs_sub",
    "threaded_publish",
    #[cfg(feature = "ssl")]
    "tls_publish",
];

// ------------------------------------------------------------ building

/// Builds the examples once per test process; returns their directory.
fn examples_dir() -> Result<PathBuf> {
    static DIR: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    DIR.get_or_init(|| build_examples().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build_examples() -> Result<PathBuf> {
    common::build_examples(EXAMPLES)
}

/// A command that runs example `name` (through the target's runner, if any).
fn example(name: &str) -> Result<Command> {
    let bin = examples_dir()?.join(name);
    let mut cmd = common::target_command(bin);
    cmd.env("RUST_BACKTRACE", "0");
    Ok(cmd)
}

// ------------------------------------------------------------ processes

/// Runs `cmd` to completion with `stdin` as its input; kills it after `limit`.
fn run(mut cmd: Command, stdin: &[u8], limit: Duration) -> Result<Output> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {cmd:?}"))?;
    let input = stdin.to_vec();
    let mut pipe = child.stdin.take().context("no stdin pipe")?;
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
    });
    let out = collect(child, limit).with_context(|| format!("{cmd:?}"))?;
    let _ = writer.join();
    Ok(out)
}

/// Waits for `child` to exit within `limit` (killing it otherwise) and
/// returns its output.
fn collect(mut child: Child, limit: Duration) -> Result<Output> {
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break Some(s);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => bail!(
            "still running after {limit:?}, killed\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut bytes);
        }
        bytes
    })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Fails with the whole output unless the program exited with `code`.
fn expect_code(out: &Output, code: i32, what: &str) -> Result {
    ensure!(
        out.status.code() == Some(code),
        "{what}: exit {:?}, expected {code}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    Ok(())
}

/// A long-running example (a subscriber): its stdout and stderr are
/// collected as they come; killed (SIGKILL) and reaped when dropped.
struct Running {
    child: Child,
    stdin: Option<std::process::ChildStdin>,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

impl Running {
    fn spawn(mut cmd: Command) -> Result<Running> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {cmd:?}"))?;
        let out = Arc::new(Mutex::new(String::new()));
        let err = Arc::new(Mutex::new(String::new()));
        for (pipe, sink) in [
            (
                child
                    .stdout
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
                out.clone(),
            ),
            (
                child
                    .stderr
                    .take()
                    .map(|p| Box::new(p) as Box<dyn Read + Send>),
                err.clone(),
            ),
        ] {
            let Some(mut pipe) = pipe else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let chunk = String::from_utf8_lossy(&buf[..n]).into_owned();
                    sink.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_str(&chunk);
                }
            });
        }
        Ok(Running {
            stdin: child.stdin.take(),
            child,
            out,
            err,
            status: None,
        })
    }

    fn stdout(&self) -> String {
        self.out.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn stderr(&self) -> String {
        self.err.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until stdout contains `needle`.
    fn expect_out(&self, needle: &str, timeout: Duration) -> Result {
        if wait_until(timeout, || self.stdout().contains(needle)) {
            return Ok(());
        }
        bail!(
            "{needle:?} not printed within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        )
    }

    fn write_stdin(&mut self, bytes: &[u8]) -> Result {
        self.stdin
            .as_mut()
            .context("stdin closed")?
            .write_all(bytes)?;
        Ok(())
    }

    fn signal(&self, sig: i32) -> Result {
        let pid = libc::pid_t::try_from(self.child.id())?;
        // SAFETY: kill(2) takes plain integers; the child is not reaped yet
        // (we hold its `Child` and have not waited), so the pid is still ours.
        let rc = unsafe { libc::kill(pid, sig) };
        ensure!(
            rc == 0,
            "kill({pid}, {sig}): {}",
            std::io::Error::last_os_error()
        );
        Ok(())
    }

    /// Waits for the exit; the error shows the output.
    fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.status.or(self.child.try_wait()?) {
                self.status = Some(s);
                return Ok(s);
            }
            if Instant::now() >= deadline {
                bail!(
                    "still running after {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                    self.stdout(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Shown only when the test fails.
        eprintln!(
            "---- example stdout ----\n{}\n---- example stderr ----\n{}",
            self.stdout(),
            self.stderr()
        );
    }
}

// ------------------------------------------------------------ mosquitto clients

/// `mosquitto_sub` that exits after `count` messages (or 10 s), started and
/// subscribed (it is waited for in the broker's log) before this returns.
struct MosquittoSub(Child, JoinHandle<Vec<u8>>);

impl MosquittoSub {
    fn start(broker: &Broker, args: &[&str], count: usize) -> Result<MosquittoSub> {
        let id = common::client_id("msub");
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &broker.port().to_string()])
            .args(["-i", &id, "-C", &count.to_string(), "-W", "10"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting mosquitto_sub (apt-get install mosquitto-clients)")?;
        let out = drain(child.stdout.take());
        ensure!(
            broker.wait_for_log(&format!("Received SUBSCRIBE from {id}"), WAIT),
            "mosquitto_sub did not subscribe"
        );
        Ok(MosquittoSub(child, out))
    }

    /// Its output once it has exited.
    fn output(mut self) -> Result<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.0.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                let _ = self.0.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.0.wait();
        Ok(text(&self.1.join().unwrap_or_default()))
    }
}

fn mosquitto_pub(broker: &Broker, args: &[&str]) -> Result {
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &broker.port().to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running mosquitto_pub")?;
    ensure!(
        out.status.success(),
        "mosquitto_pub {args:?}: {}",
        text(&out.stderr)
    );
    Ok(())
}

/// `-h 127.0.0.1 -p PORT`, the C tools' way to name the broker.
fn host_port(broker: &Broker) -> Vec<String> {
    vec![
        "-h".into(),
        "127.0.0.1".into(),
        "-p".into(),
        broker.port().to_string(),
    ]
}

/// A crate client subscribed to `filter` at QoS 2.
fn watcher(broker: &Broker, filter: &str) -> Result<Client> {
    let c = common::connect(&broker.uri(), "watch")?;
    c.subscribe(filter, QoS::ExactlyOnce)?;
    Ok(c)
}

// ------------------------------------------------------------ MQTTClient_* samples

#[test]
fn mqttclient_publish_prints_what_c_prints() -> Result {
    let _w = watchdog("mqttclient_publish", TEST_LIMIT);
    let broker = Broker::new()?;
    let w = watcher(&broker, "MQTT Examples")?;
    let mut cmd = example("MQTTClient_publish")?;
    cmd.arg(broker.uri());
    let out = run(cmd, b"", WAIT)?;
    expect_code(&out, 0, "MQTTClient_publish")?;
    let expected = format!(
        "Using server at {}\n\
         Waiting for up to 10 seconds for publication of Hello World!\n\
         on topic MQTT Examples for client with ClientID: ExampleClientPub\n\
         Message with delivery token 1 delivered\n",
        broker.uri()
    );
    assert_eq!(text(&out.stdout), expected);
    let (topic, msg) = common::recv(&w, WAIT)?;
    assert_eq!(topic, "MQTT Examples");
    assert_eq!(msg.payload(), b"Hello World!");
    assert_eq!(msg.qos(), QoS::AtLeastOnce);
    assert!(broker.wait_for_log("Client ExampleClientPub disconnected", WAIT));

    // No broker: the C sample's message and EXIT_FAILURE.
    let mut stopped = Broker::new()?;
    stopped.stop()?;
    let mut cmd = example("MQTTClient_publish")?;
    cmd.arg(stopped.uri());
    let out = run(cmd, b"", WAIT)?;
    expect_code(&out, 1, "MQTTClient_publish without a broker")?;
    assert!(
        text(&out.stdout).ends_with("Failed to connect, return code -1\n"),
        "{}",
        text(&out.stdout)
    );
    Ok(())
}

#[test]
fn mqttclient_publish_async_confirms_from_the_callback() -> Result {
    let _w = watchdog("mqttclient_publish_async", TEST_LIMIT);
    let broker = Broker::new()?;
    let w = watcher(&broker, "MQTT Examples")?;
    let mut cmd = example("MQTTClient_publish_async")?;
    cmd.arg(broker.uri());
    let out = run(cmd, b"", WAIT)?;
    expect_code(&out, 0, "MQTTClient_publish_async")?;
    let expected = format!(
        "Using server at {}\n\
         Waiting for publication of Hello World!\n\
         on topic MQTT Examples for client with ClientID: ExampleClientPub\n\
         Message with token value 1 delivery confirmed\n",
        broker.uri()
    );
    assert_eq!(text(&out.stdout), expected);
    let (_, msg) = common::recv(&w, WAIT)?;
    assert_eq!(msg.payload(), b"Hello World!");
    Ok(())
}

#[test]
fn mqttclient_subscribe_prints_messages_until_q() -> Result {
    let _w = watchdog("mqttclient_subscribe", TEST_LIMIT);
    let broker = Broker::new()?;
    let mut cmd = example("MQTTClient_subscribe")?;
    cmd.arg(broker.uri());
    let mut sub = Running::spawn(cmd)?;
    sub.expect_out("Press Q<Enter> to quit\n\n", WAIT)?;
    ensure!(
        broker.wait_for_log("Received SUBSCRIBE from ExampleClientSub", WAIT),
        "no SUBSCRIBE"
    );
    mosquitto_pub(
        &broker,
        &["-t", "MQTT Examples", "-q", "1", "-m", "hi there"],
    )?;
    sub.expect_out("   message: hi there\n", WAIT)?;
    let p = common::connect(&broker.uri(), "pub")?;
    let t = p.publish("MQTT Examples", b"second", QoS::ExactlyOnce, false)?;
    p.wait_for_completion(t, WAIT)?;
    sub.expect_out("   message: second\n", WAIT)?;
    // Typing other characters first changes nothing; q quits.
    sub.write_stdin(b"abc\nq\n")?;
    assert_eq!(sub.wait_exit(WAIT)?.code(), Some(0));
    let expected = format!(
        "Using server at {}\n\
         Subscribing to topic MQTT Examples\nfor client ExampleClientSub using QoS1\n\n\
         Press Q<Enter> to quit\n\n\
         Message arrived\n     topic: MQTT Examples\n   message: hi there\n\
         Message arrived\n     topic: MQTT Examples\n   message: second\n",
        broker.uri()
    );
    assert_eq!(sub.stdout(), expected);
    assert!(broker.wait_for_log("Received UNSUBSCRIBE from ExampleClientSub", WAIT));
    assert!(broker.wait_for_log("Client ExampleClientSub disconnected", WAIT));

    // The end of input quits too (the C sample would spin).
    let mut cmd = example("MQTTClient_subscribe")?;
    cmd.arg(broker.uri());
    let out = run(cmd, b"", WAIT)?;
    expect_code(&out, 0, "MQTTClient_subscribe with empty stdin")?;
    Ok(())
}

#[test]
fn threaded_publish_shares_one_client() -> Result {
    let _w = watchdog("threaded_publish", TEST_LIMIT);
    let broker = Broker::new()?;
    let w = watcher(&broker, "MQTT Examples/#")?;
    let mut cmd = example("threaded_publish")?;
    cmd.args([broker.uri().as_str(), "4", "25"]);
    let out = run(cmd, b"", Duration::from_secs(30))?;
    expect_code(&out, 0, "threaded_publish")?;
    let stdout = text(&out.stdout);
    for n in 0..4 {
        assert!(
            stdout.contains(&format!("thread {n}: 25 messages delivered\n")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("100 messages from 4 threads"), "{stdout}");
    // Every message arrived once, each thread's in order.
    let msgs = common::recv_n(&w, 100, WAIT)?;
    let mut next = [0usize; 4];
    for (topic, msg) in &msgs {
        let n: usize = topic
            .strip_prefix("MQTT Examples/thread-")
            .and_then(|n| n.parse().ok())
            .with_context(|| format!("unexpected topic {topic}"))?;
        assert_eq!(msg.payload_str()?, format!("{n}:{}", next[n]));
        next[n] += 1;
    }
    assert_eq!(next, [25; 4]);
    Ok(())
}

// ------------------------------------------------------------ paho_cs_pub

#[test]
fn paho_cs_pub_message_file_and_null_to_mosquitto_sub() -> Result {
    let _w = watchdog("paho_cs_pub_message", TEST_LIMIT);
    let broker = Broker::new()?;
    let topic = common::topic("cspub");

    // -m, QoS 1, retained: mosquitto_sub sees it retained afterwards.
    let mut cmd = example("paho_cs_pub")?;
    cmd.arg(&topic)
        .args(host_port(&broker))
        .args(["-q", "1", "-r", "-m", "hello world"]);
    expect_code(&run(cmd, b"", WAIT)?, 0, "paho_cs_pub -m -r")?;
    let sub = MosquittoSub::start(&broker, &["-t", &topic, "-q", "1", "-F", "%r %q %p"], 1)?;
    assert_eq!(sub.output()?, "1 1 hello world\n");

    // -f: the file as it is, binary included (checked with a crate client);
    // -n: an empty message.
    let dir = TempDir::new("cspub")?;
    let file = dir.path().join("payload.bin");
    let content: Vec<u8> = (0u8..=255).chain(b"\nend".iter().copied()).collect();
    std::fs::write(&file, &content)?;
    let other = format!("{topic}/file");
    let w = watcher(&broker, &other)?;
    let sub = MosquittoSub::start(&broker, &["-t", &other, "-F", "[%p]"], 2)?;
    let mut cmd = example("paho_cs_pub")?;
    cmd.args(["-t", &other, "-q", "2", "-f"])
        .arg(&file)
        .args(host_port(&broker));
    expect_code(&run(cmd, b"", WAIT)?, 0, "paho_cs_pub -f")?;
    let mut cmd = example("paho_cs_pub")?;
    cmd.args(["-t", &other, "-n"]).args(host_port(&broker));
    expect_code(&run(cmd, b"", WAIT)?, 0, "paho_cs_pub -n")?;
    // The QoS 2 message may reach the watcher after the later QoS 0 one:
    // Paho C hands QoS 2 messages over on PUBREL.
    let mut got = common::recv_n(&w, 2, WAIT)?;
    got.sort_by_key(|(_, m)| m.payload().len());
    assert_eq!(got[0].1.payload(), b"");
    assert_eq!(got[1].1.payload(), content.as_slice());
    assert_eq!(got[1].1.qos(), QoS::ExactlyOnce);
    let printed = sub.output()?;
    assert!(
        printed.contains("\nend]\n") && printed.contains("[]\n"),
        "{printed:?}"
    );

    // A missing file: the message, exit 1.
    let mut cmd = example("paho_cs_pub")?;
    cmd.args(["-t", &other, "-f", "/nonexistent/paho-mqtt-sync/file"])
        .args(host_port(&broker));
    let out = run(cmd, b"", WAIT)?;
    expect_code(&out, 1, "paho_cs_pub -f missing")?;
    assert!(text(&out.stderr).contains("Can't open file"));
    Ok(())
}

#[test]
fn paho_cs_pub_stdin_lines_to_mosquitto_sub() -> Result {
    let _w = watchdog("paho_cs_pub_stdin", TEST_LIMIT);
    let broker = Broker::new()?;
    let topic = common::topic("lines");

    // Default delimiter: one message per line, the newline kept (as in C);
    // an empty line is a message; the last line without a newline too.
    let sub = MosquittoSub::start(&broker, &["-t", &topic, "-q", "1", "-N", "-F", "[%p]"], 4)?;
    let mut cmd = example("paho_cs_pub")?;
    cmd.args(["-t", &topic, "-q", "1", "-v"])
        .args(host_port(&broker));
    let out = run(cmd, b"one\ntwo\n\nthree", WAIT)?;
    expect_code(&out, 0, "paho_cs_pub from stdin")?;
    assert_eq!(sub.output()?, "[one\n][two\n][\n][three]");
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout,
        format!(
            "URL is 127.0.0.1:{}\nConnecting\nConnected\n",
            broker.port()
        )
    );
    assert_eq!(
        text(&out.stderr)
            .matches("Publishing data of length")
            .count(),
        4
    );

    // --delimiter and --maxdatalen.
    let sub = MosquittoSub::start(&broker, &["-t", &topic, "-N", "-F", "[%p]"], 4)?;
    let mut cmd = example("paho_cs_pub")?;
    cmd.args(["-t", &topic, "--delimiter", ";;", "--maxdatalen", "5"])
        .args(host_port(&broker));
    let out = run(cmd, b"a;;bb;;abcdefg", WAIT)?;
    expect_code(&out, 0, "paho_cs_pub --delimiter --maxdatalen")?;
    assert_eq!(sub.output()?, "[a;;][bb;;][abcde][fg]");
    Ok(())
}

#[test]
fn paho_cs_pub_connection_options_as_the_broker_sees_them() -> Result {
    let _w = watchdog("paho_cs_pub_options", TEST_LIMIT);
    let broker = Broker::builder().user("alice", "secret").start()?;
    let topic = common::topic("opts");
    let w = {
        let c = common::create(&broker.uri(), "watch")?;
        c.connect(&common::options().username("alice").password("secret"))?;
        c.subscribe(&topic, QoS::AtLeastOnce)?;
        c
    };
    // -c instead of host/port, client id, user, password, keepalive, MQTT 3.1.
    let id = common::client_id("cspub");
    let mut cmd = example("paho_cs_pub")?;
    cmd.args(["-t", &topic, "-c", &broker.uri(), "-i", &id])
        .args(["-u", "alice", "-P", "secret", "-k", "33", "-V", "31"])
        .args(["-m", "with options"]);
    expect_code(&run(cmd, b"", WAIT)?, 0, "paho_cs_pub with options")?;
    assert_eq!(common::recv(&w, WAIT)?.1.payload(), b"with options");
    assert!(
        broker.wait_for_log(&format!("as {id} (p1, c1, k33, u'alice')"), WAIT),
        "broker log:\n{}",
        broker.log()
    );

    // A wrong password: the C tool's message on stderr, and exit 1.
    let mut cmd = example("paho_cs_pub")?;
    cmd.args(["-t", &topic, "-u", "alice", "-P", "wrong", "-m", "x"])
        .args(host_port(&broker));
    let out = run(cmd, b"", WAIT)?;
    expect_code(&out, 1, "paho_cs_pub with a wrong password")?;
    assert!(
        text(&out.stderr).contains("Connect failed return code: connection refused"),
        "{}",
        text(&out.stderr)
    );
    // --quiet: nothing printed.
    let mut cmd = example("paho_cs_pub")?;
    cmd.args([
        "-t", &topic, "-u", "alice", "-P", "wrong", "-m", "x", "--quiet",
    ])
    .args(host_port(&broker));
    let out = run(cmd, b"", WAIT)?;
    expect_code(&out, 1, "paho_cs_pub --quiet")?;
    assert_eq!(text(&out.stderr), "");
    Ok(())
}

#[test]
fn paho_cs_tools_command_line_errors() -> Result {
    let _w = watchdog("paho_cs_errors", TEST_LIMIT);
    for tool in ["paho_cs_pub", "paho_cs_sub"] {
        // No arguments, an unknown option, a bad QoS: usage on stdout, exit 1.
        for args in [&[][..], &["t", "--bogus"], &["t", "-q", "3"], &["-q", "1"]] {
            let mut cmd = example(tool)?;
            cmd.args(args);
            let out = run(cmd, b"", WAIT)?;
            expect_code(&out, 1, &format!("{tool} {args:?}"))?;
            assert!(text(&out.stdout).contains("Usage: "), "{tool} {args:?}");
        }
        let mut cmd = example(tool)?;
        cmd.arg("--help");
        let out = run(cmd, b"", WAIT)?;
        expect_code(&out, 0, &format!("{tool} --help"))?;
        for option in ["--will-topic", "--cafile", "--insecure", "--trace", "-V"] {
            assert!(
                text(&out.stdout).contains(option),
                "{tool} --help: {option}"
            );
        }
        // MQTT 5 and proxies: accepted on the command line, refused clearly.
        for args in [
            &["t", "-V", "5"][..],
            &["t", "--MQTTversion", "mqttv5"],
            &["t", "--http-proxy", "http://127.0.0.1:1"],
        ] {
            let mut cmd = example(tool)?;
            cmd.args(args).args(["-h", "127.0.0.1", "-p", "1"]);
            let out = run(cmd, b"", WAIT)?;
            expect_code(&out, 1, &format!("{tool} {args:?}"))?;
            let err = text(&out.stderr);
            assert!(
                err.contains("not supported"),
                "{tool} {args:?}: stderr {err:?}"
            );
        }
    }
    // Without the ssl feature, a TLS URI says so.
    if !cfg!(feature = "ssl") {
        let mut cmd = example("paho_cs_pub")?;
        cmd.args(["t", "-c", "ssl://127.0.0.1:1", "-m", "x"]);
        let out = run(cmd, b"", WAIT)?;
        expect_code(&out, 1, "paho_cs_pub ssl:// without ssl")?;
        assert!(text(&out.stderr).contains("--features ssl"));
    }
    Ok(())
}

// ------------------------------------------------------------ paho_cs_sub

/// Starts `paho_cs_sub` with `args` and waits until it has subscribed.
fn cs_sub(broker: &Broker, args: &[&str]) -> Result<(Running, String)> {
    let id = common::client_id("cssub");
    let mut cmd = example("paho_cs_sub")?;
    cmd.args(args).args(["-i", &id]).args(host_port(broker));
    let sub = Running::spawn(cmd)?;
    if !broker.wait_for_log(&format!("Received SUBSCRIBE from {id}"), WAIT) {
        bail!(
            "paho_cs_sub did not subscribe\n--- stdout\n{}\n--- stderr\n{}",
            sub.stdout(),
            sub.stderr()
        );
    }
    Ok((sub, id))
}

#[test]
fn paho_cs_sub_prints_what_mosquitto_pub_sends() -> Result {
    let _w = watchdog("paho_cs_sub_prints", TEST_LIMIT);
    let broker = Broker::new()?;
    let topic = common::topic("cssub");

    // Plain topic: payload, then the delimiter unless it already ends with it.
    let (mut sub, id) = cs_sub(&broker, &[&topic])?;
    mosquitto_pub(&broker, &["-t", &topic, "-m", "hello"])?;
    mosquitto_pub(&broker, &["-t", &topic, "-m", "line\n"])?;
    mosquitto_pub(&broker, &["-t", &topic, "-n"])?;
    mosquitto_pub(&broker, &["-t", &topic, "-m", "last"])?;
    sub.expect_out("last\n", WAIT)?;
    sub.signal(libc::SIGINT)?;
    assert_eq!(sub.wait_exit(WAIT)?.code(), Some(0));
    assert_eq!(sub.stdout(), "hello\nline\n\nlast\n");
    // A clean DISCONNECT, not a dropped socket.
    assert!(
        broker.wait_for_log(&format!("Client {id} disconnected"), WAIT),
        "{}",
        broker.log()
    );

    // A wildcard turns verbose on: URL, Connecting, then topic<TAB>payload.
    let (mut sub, _) = cs_sub(&broker, &["-t", &format!("{topic}/#")])?;
    mosquitto_pub(&broker, &["-t", &format!("{topic}/a"), "-m", "one"])?;
    sub.expect_out("one\n", WAIT)?;
    sub.signal(libc::SIGTERM)?;
    assert_eq!(sub.wait_exit(WAIT)?.code(), Some(0));
    assert_eq!(
        sub.stdout(),
        format!(
            "URL is 127.0.0.1:{}\nConnecting\n{topic}/a\tone\n",
            broker.port()
        )
    );
    assert_eq!(sub.stderr(), "Connected\n");

    // --delimiter, --no-delimiter.
    let (mut sub, _) = cs_sub(&broker, &[&topic, "--delimiter", "|"])?;
    mosquitto_pub(&broker, &["-t", &topic, "-m", "a"])?;
    mosquitto_pub(&broker, &["-t", &topic, "-m", "b|"])?;
    sub.expect_out("b|", WAIT)?;
    sub.signal(libc::SIGINT)?;
    sub.wait_exit(WAIT)?;
    assert_eq!(sub.stdout(), "a|b|");
    let (mut sub, _) = cs_sub(&broker, &[&topic, "--no-delimiter"])?;
    mosquitto_pub(&broker, &["-t", &topic, "-m", "x"])?;
    mosquitto_pub(&broker, &["-t", &topic, "-m", "y"])?;
    sub.expect_out("xy", WAIT)?;
    sub.signal(libc::SIGINT)?;
    sub.wait_exit(WAIT)?;
    assert_eq!(sub.stdout(), "xy");
    Ok(())
}

#[test]
fn paho_cs_sub_no_retained_will_and_trace() -> Result {
    let _w = watchdog("paho_cs_sub_will", TEST_LIMIT);
    let broker = Broker::new()?;
    let topic = common::topic("cssub");

    // -R: the retained message waiting on the topic is not printed.
    mosquitto_pub(&broker, &["-t", &topic, "-r", "-m", "old"])?;
    let (mut sub, _) = cs_sub(&broker, &[&topic, "-R"])?;
    mosquitto_pub(&broker, &["-t", &topic, "-m", "new"])?;
    sub.expect_out("new\n", WAIT)?;
    sub.signal(libc::SIGINT)?;
    sub.wait_exit(WAIT)?;
    assert_eq!(sub.stdout(), "new\n");
    // Without -R it is printed.
    let (mut sub, _) = cs_sub(&broker, &[&topic])?;
    sub.expect_out("old\n", WAIT)?;
    sub.signal(libc::SIGINT)?;
    sub.wait_exit(WAIT)?;

    // Will options (--will-retain is a flag: the option after it counts),
    // published by the broker when the subscriber dies without DISCONNECT.
    let will = format!("{topic}/will");
    let (mut sub, _) = cs_sub(
        &broker,
        &[
            &topic,
            "--will-topic",
            &will,
            "--will-payload",
            "gone",
            "--will-retain",
            "--will-qos",
            "1",
            "--trace",
            "protocol",
        ],
    )?;
    ensure!(
        wait_until(WAIT, || sub.stderr().contains("Trace : ")),
        "no trace on stderr: {}",
        sub.stderr()
    );
    sub.signal(libc::SIGKILL)?;
    sub.wait_exit(WAIT)?;
    let retained = MosquittoSub::start(&broker, &["-t", &will, "-q", "1", "-F", "%r %q %p"], 1)?;
    assert_eq!(retained.output()?, "1 1 gone\n");
    Ok(())
}

#[test]
fn paho_cs_sub_resubscribes_after_a_broker_restart() -> Result {
    let _w = watchdog("paho_cs_sub_restart", TEST_LIMIT);
    let mut broker = Broker::new()?;
    let topic = common::topic("cssub");
    let (mut sub, id) = cs_sub(&broker, &[&topic, "-k", "2"])?;
    mosquitto_pub(&broker, &["-t", &topic, "-m", "before"])?;
    sub.expect_out("before\n", WAIT)?;
    broker.restart()?;
    // The log is appended across restarts: wait for the second SUBSCRIBE.
    let subscribe = format!("Received SUBSCRIBE from {id}");
    ensure!(
        wait_until(Duration::from_secs(20), || broker
            .log()
            .matches(&subscribe)
            .count()
            >= 2),
        "no new SUBSCRIBE after the restart\n{}",
        sub.stderr()
    );
    mosquitto_pub(&broker, &["-t", &topic, "-m", "after"])?;
    sub.expect_out("after\n", WAIT)?;
    sub.signal(libc::SIGINT)?;
    assert_eq!(sub.wait_exit(WAIT)?.code(), Some(0));
    Ok(())
}

// ------------------------------------------------------------ TLS

#[cfg(feature = "ssl")]
mod tls {
    use super::*;

    /// A CA, a server certificate for 127.0.0.1 or another name, and a
    /// client certificate, made with the `openssl` command.
    pub struct Pki {
        pub dir: TempDir,
    }

    impl Pki {
        pub fn new(server_san: &str) -> Result<Pki> {
            let dir = TempDir::new("pki")?;
            let p = dir.path().to_path_buf();
            let openssl = |args: &[&str]| -> Result {
                let out = Command::new("openssl")
                    .args(args)
                    .current_dir(&p)
                    .output()
                    .context("running openssl")?;
                ensure!(
                    out.status.success(),
                    "openssl {args:?}: {}",
                    text(&out.stderr)
                );
                Ok(())
            };
            let days = ["-days", "2"];
            openssl(
                &[
                    &["req", "-x509", "-newkey", "rsa:2048", "-nodes"][..],
                    &days,
                    &[
                        "-subj",
                        "/CN=examples test CA",
                        "-keyout",
                        "ca.key",
                        "-out",
                        "ca.crt",
                    ],
                ]
                .concat(),
            )?;
            std::fs::write(
                p.join("server.cnf"),
                format!("subjectAltName={server_san}\n"),
            )?;
            std::fs::write(p.join("client.cnf"), "extendedKeyUsage=clientAuth\n")?;
            for (name, cn) in [("server", "test broker"), ("client", "test client")] {
                let (key, csr, crt, cnf) = (
                    format!("{name}.key"),
                    format!("{name}.csr"),
                    format!("{name}.crt"),
                    format!("{name}.cnf"),
                );
                openssl(&[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    &format!("/CN={cn}"),
                    "-keyout",
                    &key,
                    "-out",
                    &csr,
                ])?;
                openssl(
                    &[
                        &[
                            "x509", "-req", "-in", &csr, "-CA", "ca.crt", "-CAkey", "ca.key",
                        ][..],
                        &["-CAcreateserial", "-extfile", &cnf, "-out", &crt],
                        &days,
                    ]
                    .concat(),
                )?;
            }
            Ok(Pki { dir })
        }

        pub fn file(&self, name: &str) -> String {
            self.dir.path().join(name).display().to_string()
        }

        /// A broker whose only listener speaks TLS and wants a client certificate.
        pub fn broker(&self) -> Result<Broker> {
            Broker::builder()
                .config_line(&format!("cafile {}", self.file("ca.crt")))
                .config_line(&format!("certfile {}", self.file("server.crt")))
                .config_line(&format!("keyfile {}", self.file("server.key")))
                .config_line("require_certificate true")
                .start()
        }
    }

    pub fn ssl_uri(broker: &Broker) -> String {
        format!("ssl://127.0.0.1:{}", broker.port())
    }

    /// A crate client over TLS, subscribed to `topic`.
    pub fn watcher(pki: &Pki, broker: &Broker, topic: &str) -> Result<Client> {
        let c = common::create(&ssl_uri(broker), "tlswatch")?;
        c.connect(
            &common::options().ssl(
                paho_mqtt_sync::SslOptions::new()
                    .trust_store(pki.file("ca.crt"))
                    .key_store(pki.file("client.crt"))
                    .private_key(pki.file("client.key")),
            ),
        )?;
        c.subscribe(topic, QoS::AtLeastOnce)?;
        Ok(c)
    }
}

#[cfg(feature = "ssl")]
#[test]
fn tls_publish_with_ca_and_client_certificate() -> Result {
    use tls::*;
    let _w = watchdog("tls_publish", TEST_LIMIT);
    let pki = Pki::new("IP:127.0.0.1")?;
    let broker = pki.broker()?;
    let w = watcher(&pki, &broker, "MQTT Examples")?;
    let mut cmd = example("tls_publish")?;
    cmd.args([
        ssl_uri(&broker),
        pki.file("ca.crt"),
        pki.file("client.crt"),
        pki.file("client.key"),
    ]);
    let out = run(cmd, b"", WAIT)?;
    expect_code(&out, 0, "tls_publish")?;
    assert!(text(&out.stdout).contains("Connected over TLS\n"));
    assert!(text(&out.stdout).ends_with("Message with delivery token 1 delivered\n"));
    assert_eq!(common::recv(&w, WAIT)?.1.payload(), b"Hello World!");

    // Without the client certificate the broker refuses the handshake.
    let mut cmd = example("tls_publish")?;
    cmd.args([ssl_uri(&broker), pki.file("ca.crt")]);
    let out = run(cmd, b"", WAIT)?;
    expect_code(&out, 1, "tls_publish without a client certificate")?;
    assert!(text(&out.stdout).contains("Failed to connect"));
    Ok(())
}

#[cfg(feature = "ssl")]
#[test]
fn paho_cs_pub_tls_options() -> Result {
    use tls::*;
    let _w = watchdog("paho_cs_pub_tls", TEST_LIMIT);
    let topic = common::topic("cstls");
    let client_files = |pki: &Pki| {
        vec![
            "--cert".to_owned(),
            pki.file("client.crt"),
            "--key".to_owned(),
            pki.file("client.key"),
        ]
    };

    // --cafile, --cert, --key: verified, delivered.
    let pki = Pki::new("IP:127.0.0.1")?;
    let broker = pki.broker()?;
    let w = watcher(&pki, &broker, &topic)?;
    let mut cmd = example("paho_cs_pub")?;
    cmd.args([
        "-t",
        &topic,
        "-q",
        "1",
        "-m",
        "over tls",
        "-c",
        &ssl_uri(&broker),
    ])
    .args(["--cafile", &pki.file("ca.crt")])
    .args(client_files(&pki));
    expect_code(&run(cmd, b"", WAIT)?, 0, "paho_cs_pub over TLS")?;
    assert_eq!(common::recv(&w, WAIT)?.1.payload(), b"over tls");

    // A certificate for another host name: refused, unless --insecure.
    let pki = Pki::new("DNS:not-this-host.example")?;
    let broker = pki.broker()?;
    let base = |insecure: bool| -> Result<Command> {
        let mut cmd = example("paho_cs_pub")?;
        cmd.args(["-t", &topic, "-m", "x", "-c", &ssl_uri(&broker)])
            .args(["--cafile", &pki.file("ca.crt")])
            .args(client_files(&pki));
        if insecure {
            cmd.arg("--insecure");
        }
        Ok(cmd)
    };
    let out = run(base(false)?, b"", WAIT)?;
    expect_code(&out, 1, "paho_cs_pub, certificate for another host")?;
    assert!(text(&out.stderr).contains("Connect failed"));
    expect_code(&run(base(true)?, b"", WAIT)?, 0, "paho_cs_pub --insecure")?;
    Ok(())
}

/// Found with these examples: a subscriber that had received QoS 1 or 2
/// messages (mixed with QoS 0 ones) and then disconnected often died in
/// glibc's `free(): invalid pointer` as the library's thread exited (about 1
/// run in 2 at QoS 2 with the code of 7a016ba; not seen since the changes
/// merged up to fb03a7e). Kept as a regression test.
#[test]
fn qos1_messages_then_disconnect_keep_the_heap_intact() -> Result {
    let _w = watchdog("qos1_then_disconnect", TEST_LIMIT);
    let broker = Broker::new()?;
    let topic = common::topic("heap");
    for run in 0..5 {
        let (mut sub, _) = cs_sub(&broker, &[&topic, "-q", "2"])?;
        for r in 0..3 {
            let h = format!("h{run}.{r}");
            mosquitto_pub(&broker, &["-t", &topic, "-q", "2", "-m", &h])?;
            mosquitto_pub(&broker, &["-t", &topic, "-m", "a"])?;
            mosquitto_pub(&broker, &["-t", &topic, "-m", "b"])?;
            sub.expect_out(&format!("{h}\n"), WAIT)?;
        }
        sub.signal(libc::SIGINT)?;
        let status = sub.wait_exit(WAIT)?;
        ensure!(
            status.code() == Some(0),
            "run {run}: paho_cs_sub ended with {status}\n{}",
            sub.stderr()
        );
    }
    Ok(())
}
