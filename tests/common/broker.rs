//! A private Mosquitto for tests: `/usr/sbin/mosquitto -c <generated config>`
//! listening on 127.0.0.1 only, on a free port that stays reserved for the
//! broker's whole life, so it can be stopped, killed and started again on the
//! same port.
//!
//! Port choice: a random port below the kernel's ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`) that binds on 127.0.0.1, plus a
//! reservation file under `<tmp>/paho-sync-ports/` so concurrent test
//! processes never pick the same one. Ports from `bind(127.0.0.1:0)` come from
//! the ephemeral range, where a client connecting while the broker is down can
//! get that very port as its own local port (even connect to itself) and keep
//! the broker from starting again on it.
//!
//! Mosquitto runs in the test process's process group, so Ctrl-C and
//! nextest's timeout handling reach it too; `Drop` stops and reaps it.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

use super::{euid, random_u64, TempDir};

/// The Mosquitto binary the tests run.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// How long a broker may take to come up or to stop.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Pids of the brokers this process runs, for [`kill_all_brokers`].
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<u32>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// SIGKILLs every broker this process started (for the watchdog, right
/// before it aborts the process).
pub fn kill_all_brokers() {
    for pid in live().iter() {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
}

/// Options of a [`Broker`]; [`BrokerBuilder::start`] starts it.
#[derive(Debug, Clone, Default)]
pub struct BrokerBuilder {
    users: Vec<(String, String)>,
    allow_anonymous: Option<bool>,
    persistence: bool,
    autosave_interval: Option<u32>,
    sys_interval: Option<u32>,
    acl: Option<String>,
    extra: Vec<String>,
}

impl BrokerBuilder {
    /// Adds a user to the password file (made with `mosquitto_passwd -b`).
    /// With any user, anonymous clients are refused unless
    /// [`allow_anonymous`](Self::allow_anonymous) says otherwise.
    pub fn user(mut self, name: &str, password: &str) -> Self {
        self.users.push((name.to_owned(), password.to_owned()));
        self
    }

    /// `allow_anonymous`; default: true without users, false with users.
    pub fn allow_anonymous(mut self, allow: bool) -> Self {
        self.allow_anonymous = Some(allow);
        self
    }

    /// `persistence true` with `persistence_location` in the broker's temp
    /// dir: a stop/start keeps sessions, queued and retained messages (the
    /// database is written on SIGTERM; after [`Broker::kill`] only what the
    /// last autosave wrote survives).
    pub fn persistence(mut self, on: bool) -> Self {
        self.persistence = on;
        self
    }

    /// `autosave_interval` in seconds (with persistence).
    pub fn autosave_interval(mut self, secs: u32) -> Self {
        self.autosave_interval = Some(secs);
        self
    }

    /// `sys_interval`: publish `$SYS/broker/...` every `secs` seconds
    /// (default here: 0, no periodic `$SYS` updates).
    pub fn sys_interval(mut self, secs: u32) -> Self {
        self.sys_interval = Some(secs);
        self
    }

    /// The contents of an `acl_file` (for example "user alice\ntopic read a/#\n").
    pub fn acl(mut self, rules: &str) -> Self {
        self.acl = Some(rules.to_owned());
        self
    }

    /// Any other line for `mosquitto.conf` (for example `max_queued_messages 10`).
    pub fn config_line(mut self, line: &str) -> Self {
        self.extra.push(line.to_owned());
        self
    }

    /// Writes the configuration into a new temp dir, picks a port and starts
    /// Mosquitto, returning once it accepts TCP connections.
    pub fn start(self) -> anyhow::Result<Broker> {
        super::library_setup();
        let dir = TempDir::new("broker")?;
        let log = dir.path().join("mosquitto.log");
        let mut broker = Broker {
            config: dir.path().join("mosquitto.conf"),
            log,
            dir,
            port: 0,
            reservation: None,
            child: None,
            options: self,
        };
        broker.write_auth_files()?;
        let mut last_error = None;
        for _ in 0..20 {
            let reservation = PortReservation::new()?;
            broker.port = reservation.port;
            broker.reservation = Some(reservation);
            broker.write_config()?;
            match broker.spawn()? {
                Spawned::Running => return Ok(broker),
                Spawned::AddressInUse(log) => last_error = Some(log),
            }
        }
        bail!(
            "mosquitto found its port in use 20 times; last log:\n{}",
            last_error.unwrap_or_default()
        )
    }
}

/// A running (or stopped) private Mosquitto. See the module docs.
#[derive(Debug)]
pub struct Broker {
    // Field order matters for Drop: the child is stopped in `drop`, then the
    // reservation and the directory go.
    child: Option<Child>,
    reservation: Option<PortReservation>,
    port: u16,
    config: PathBuf,
    log: PathBuf,
    options: BrokerBuilder,
    dir: TempDir,
}

enum Spawned {
    Running,
    AddressInUse(String),
}

impl Broker {
    /// Options for a new broker.
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder::default()
    }

    /// A broker with default options (anonymous clients allowed, no persistence).
    pub fn new() -> anyhow::Result<Broker> {
        Self::builder().start()
    }

    /// The TCP port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `tcp://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The broker's temp dir (config, log, password file, persistence database).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The generated `mosquitto.conf`.
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The log file (Mosquitto's stderr, `log_type all`, every run appended).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        read_lossy(&self.log, 0)
    }

    /// Waits up to `timeout` for `needle` to appear in the log.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        super::wait_until(timeout, || self.log().contains(needle))
    }

    /// The pid of the running Mosquitto.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether Mosquitto is running (reaps it if it exited on its own).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.reap();
                false
            }
            None => false,
        }
    }

    /// Starts Mosquitto again on the same port (after [`stop`](Self::stop) or
    /// [`kill`](Self::kill)); returns once it accepts connections.
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("broker on port {} is already running", self.port);
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn()? {
                Spawned::Running => return Ok(()),
                // Something holds the port for a moment (the reservation keeps
                // other test brokers off it): retry for a while.
                Spawned::AddressInUse(log) => {
                    if Instant::now() >= deadline {
                        bail!("port {} stayed in use; log:\n{log}", self.port);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// SIGTERM, then waits for it to exit (SIGKILL after 10 s). With
    /// persistence, Mosquitto saves its database on the way out.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        if child.try_wait()?.is_none() {
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()
                .context("running kill -TERM")?;
            if !status.success() && child.try_wait()?.is_none() {
                bail!("kill -TERM {} failed: {status}", child.id());
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            while child.try_wait()?.is_none() {
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    self.reap();
                    bail!("mosquitto did not stop within {STOP_TIMEOUT:?} after SIGTERM; killed");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.reap();
        Ok(())
    }

    /// SIGKILL (no database save, no clean close of connections: clients see
    /// their sockets reset), then reaps it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut() {
            if child.try_wait()?.is_none() {
                child.kill().context("SIGKILL mosquitto")?;
            }
        }
        self.reap();
        Ok(())
    }

    /// [`stop`](Self::stop) then [`start`](Self::start), same port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.start()
    }

    /// Waits for the child to exit and forgets it.
    fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
            live().retain(|&p| p != child.id());
        }
    }

    fn write_auth_files(&self) -> anyhow::Result<()> {
        let passwd = self.dir().join("passwd");
        for (i, (user, pw)) in self.options.users.iter().enumerate() {
            let mut cmd = Command::new("mosquitto_passwd");
            cmd.arg("-b");
            if i == 0 {
                cmd.arg("-c");
            }
            let out = cmd
                .arg(&passwd)
                .arg(user)
                .arg(pw)
                .stdin(Stdio::null())
                .output()
                .context("running mosquitto_passwd")?;
            if !out.status.success() {
                bail!(
                    "mosquitto_passwd failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        if let Some(acl) = &self.options.acl {
            fs::write(self.dir().join("acl"), acl)?;
        }
        Ok(())
    }

    fn write_config(&self) -> anyhow::Result<()> {
        let o = &self.options;
        let dir = self.dir().display().to_string();
        let anonymous = o.allow_anonymous.unwrap_or(o.users.is_empty());
        let mut c = String::from("# generated by tests/common/broker.rs\n");
        c += &format!("listener {} 127.0.0.1\n", self.port);
        c += &format!("allow_anonymous {anonymous}\n");
        if !o.users.is_empty() {
            c += &format!("password_file {dir}/passwd\n");
        }
        if o.acl.is_some() {
            c += &format!("acl_file {dir}/acl\n");
        }
        c += &format!("persistence {}\n", o.persistence);
        c += &format!("persistence_location {dir}/\n");
        if let Some(s) = o.autosave_interval {
            c += &format!("autosave_interval {s}\n");
        }
        c += &format!("sys_interval {}\n", o.sys_interval.unwrap_or(0));
        if euid() == Some(0) {
            // As root Mosquitto would switch to the `mosquitto` user, which
            // cannot write this root-owned temp dir.
            c += "user root\n";
        }
        c += "log_dest stderr\nlog_type all\nlog_timestamp_format %H:%M:%S\nconnection_messages true\n";
        for line in &o.extra {
            c += line;
            c += "\n";
        }
        fs::write(&self.config, c).with_context(|| format!("writing {}", self.config.display()))
    }

    /// Starts the process and waits until it is up or has failed.
    fn spawn(&mut self) -> anyhow::Result<Spawned> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let from = log.metadata()?.len();
        let mut child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {MOSQUITTO}"))?;
        live().push(child.id());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait()? {
                live().retain(|&p| p != child.id());
                let text = read_lossy(&self.log, from);
                if text.contains("Address already in use") {
                    return Ok(Spawned::AddressInUse(text));
                }
                bail!(
                    "mosquitto exited at start ({status}); config:\n{}\nlog:\n{text}",
                    self.config_text()
                );
            }
            let text = read_lossy(&self.log, from);
            if text.contains(" running")
                && TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500)).is_ok()
            {
                self.child = Some(child);
                return Ok(Spawned::Running);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                live().retain(|&p| p != child.id());
                return Err(anyhow!(
                    "mosquitto did not accept connections on {} within {START_TIMEOUT:?}; log:\n{}",
                    self.addr(),
                    read_lossy(&self.log, from)
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn config_text(&self) -> String {
        read_lossy(&self.config, 0)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Shown with the failing test's output.
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!(
                "---- mosquitto on port {} (last {} log lines) ----",
                self.port,
                tail.len()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        if let Err(e) = self.stop() {
            eprintln!("stopping mosquitto: {e:#}");
            let _ = self.kill();
        }
    }
}

/// Reads a file from byte `from`, lossily as UTF-8 ("" if unreadable).
fn read_lossy(path: &Path, from: u64) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut f) = File::open(path) {
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = f.read_to_end(&mut bytes);
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A port reserved for one broker: free on 127.0.0.1 when picked, below the
/// ephemeral range, and claimed by a file `<tmp>/paho-sync-ports/<port>`
/// holding our pid (stale files of dead processes are taken over).
#[derive(Debug)]
struct PortReservation {
    port: u16,
    file: PathBuf,
}

impl PortReservation {
    fn new() -> anyhow::Result<PortReservation> {
        let dir = std::env::temp_dir().join("paho-sync-ports");
        fs::create_dir_all(&dir)?;
        let low = 20_000u32;
        let high = ephemeral_start().clamp(low + 2_000, 65_000);
        for _ in 0..1_000 {
            let port = (low + (random_u64() % u64::from(high - low)) as u32) as u16;
            if port == 1883 || port == 8883 {
                continue;
            }
            let file = dir.join(port.to_string());
            if !claim(&file)? {
                continue;
            }
            let reservation = PortReservation { port, file };
            if TcpListener::bind(("127.0.0.1", port)).is_ok() {
                return Ok(reservation);
            }
        }
        bail!("no free port found between {low} and {high}")
    }
}

impl Drop for PortReservation {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.file);
    }
}

/// Creates the reservation file; false if a live process holds it.
fn claim(file: &Path) -> anyhow::Result<bool> {
    for _ in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(file) {
            Ok(mut f) => {
                write!(f, "{}", std::process::id())?;
                return Ok(true);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = fs::read_to_string(file).unwrap_or_default();
                let alive = owner
                    .trim()
                    .parse::<u32>()
                    .map(|pid| Path::new(&format!("/proc/{pid}")).exists())
                    // Being written right now by its owner: treat as taken.
                    .unwrap_or(true);
                if alive {
                    return Ok(false);
                }
                let _ = fs::remove_file(file);
            }
            Err(e) => return Err(e).with_context(|| format!("creating {}", file.display())),
        }
    }
    Ok(false)
}

/// The first port of the kernel's ephemeral range (32768 if unknown).
fn ephemeral_start() -> u32 {
    fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(32_768)
}
