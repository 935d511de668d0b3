//! A loopback TCP proxy between clients and a broker, to break connections on
//! purpose: [`Proxy::cut`] closes them (the client reads EOF, the broker sees
//! the client vanish without DISCONNECT), [`Proxy::stall`] stops forwarding
//! while keeping the sockets open (only keepalive can notice), and
//! [`Proxy::resume`] forwards again.
//!
//! Threads and std::net only: one accept thread, two forwarding threads per
//! connection. Every loop polls a stop flag (reads time out after 20 ms), so
//! dropping the proxy ends all of them.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;

const POLL: Duration = Duration::from_millis(20);

struct Shared {
    target: Mutex<SocketAddr>,
    stop: AtomicBool,
    stalled: AtomicBool,
    links: Mutex<Vec<Arc<Link>>>,
    accepted: AtomicUsize,
    refuse: AtomicUsize,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// One proxied connection: the socket from the client and the one to the broker.
struct Link {
    client: TcpStream,
    server: TcpStream,
    closed: AtomicBool,
    /// Per direction: the forwarder has seen the stall and reads nothing.
    parked: [AtomicBool; 2],
    done: [AtomicBool; 2],
}

impl Link {
    fn close(&self) {
        self.closed.store(true, SeqCst);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.server.shutdown(Shutdown::Both);
    }

    fn is_open(&self) -> bool {
        !self.closed.load(SeqCst)
    }

    /// Both forwarders are stalled or gone.
    fn quiet(&self) -> bool {
        (0..2).all(|i| self.parked[i].load(SeqCst) || self.done[i].load(SeqCst))
    }
}

/// See the module docs.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on 127.0.0.1 on a free port and forwards every connection to
    /// 127.0.0.1:`target_port`.
    pub fn new(target_port: u16) -> anyhow::Result<Proxy> {
        Self::to(SocketAddr::from(([127, 0, 0, 1], target_port)))
    }

    /// Like [`Proxy::new`] with any loopback target address.
    pub fn to(target: SocketAddr) -> anyhow::Result<Proxy> {
        anyhow::ensure!(
            target.ip().is_loopback(),
            "the proxy only forwards to loopback, not {target}"
        );
        let listener = TcpListener::bind("127.0.0.1:0").context("proxy bind")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target: Mutex::new(target),
            stop: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            links: Mutex::new(Vec::new()),
            accepted: AtomicUsize::new(0),
            refuse: AtomicUsize::new(0),
            threads: Mutex::new(Vec::new()),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(&listener, &s))?;
        Ok(Proxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `tcp://127.0.0.1:PORT` of the proxy.
    pub fn uri(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.addr.port())
    }

    /// Forwards new connections to another loopback port from now on.
    pub fn set_target_port(&self, port: u16) {
        *lock(&self.shared.target) = SocketAddr::from(([127, 0, 0, 1], port));
    }

    /// Connections currently open through the proxy.
    pub fn connections(&self) -> usize {
        let mut links = lock(&self.shared.links);
        links.retain(|l| l.is_open());
        links.len()
    }

    /// Connections accepted since the proxy started.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(SeqCst)
    }

    /// Closes every current connection abruptly: both sockets of each are shut
    /// down in both directions, so the client reads EOF at once and the broker
    /// sees the client gone without a DISCONNECT (and publishes its will). New
    /// connections are still accepted.
    pub fn cut(&self) {
        let links: Vec<Arc<Link>> = std::mem::take(&mut *lock(&self.shared.links));
        for l in links {
            l.close();
        }
    }

    /// Stops forwarding in both directions, on current and new connections,
    /// keeping every socket open. Returns once no forwarder will pass on
    /// another byte (bytes read before the call are still delivered).
    ///
    /// Panics if that takes more than 10 s, instead of returning with bytes
    /// still flowing (a forwarder finishes a write within its 5 s write
    /// timeout, so only a broken proxy gets there; a loaded machine does not).
    pub fn stall(&self) {
        self.shared.stalled.store(true, SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let links: Vec<Arc<Link>> = lock(&self.shared.links).clone();
            if links.iter().all(|l| l.quiet()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "proxy: forwarders still active 10 s after stall()"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Forwards again after [`stall`](Self::stall); bytes that waited in the
    /// sockets meanwhile go through.
    pub fn resume(&self) {
        self.shared.stalled.store(false, SeqCst);
    }

    /// Closes the next `n` connections right after accepting them, without
    /// connecting them to the target (the client sees its connection closed
    /// before any answer).
    pub fn refuse_next(&self, n: usize) {
        self.shared.refuse.store(n, SeqCst);
    }

    /// Whether the proxy is stalled.
    pub fn is_stalled(&self) -> bool {
        self.shared.stalled.load(SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        self.cut();
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        let threads = std::mem::take(&mut *lock(&self.shared.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(SeqCst) {
        match listener.accept() {
            Ok((client, _)) => {
                shared.accepted.fetch_add(1, SeqCst);
                let refuse = shared
                    .refuse
                    .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if refuse {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let target = *lock(&shared.target);
                let _ = client.set_nonblocking(false);
                let server = match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
                    Ok(s) => s,
                    Err(_) => {
                        // Broker down: the client sees its connection closed.
                        let _ = client.shutdown(Shutdown::Both);
                        continue;
                    }
                };
                if let Err(e) = start_link(shared, client, server) {
                    eprintln!("proxy: cannot forward a connection: {e:#}");
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => {
                eprintln!("proxy: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Forget finished threads so a long-lived proxy does not pile them up.
        lock(&shared.threads).retain(|t| !t.is_finished());
    }
}

fn start_link(shared: &Arc<Shared>, client: TcpStream, server: TcpStream) -> anyhow::Result<()> {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let link = Arc::new(Link {
        client,
        server,
        closed: AtomicBool::new(false),
        parked: [AtomicBool::new(false), AtomicBool::new(false)],
        done: [AtomicBool::new(false), AtomicBool::new(false)],
    });
    lock(&shared.links).push(link.clone());
    for dir in 0..2 {
        let (from, to) = if dir == 0 {
            (link.client.try_clone()?, link.server.try_clone()?)
        } else {
            (link.server.try_clone()?, link.client.try_clone()?)
        };
        from.set_read_timeout(Some(POLL))?;
        to.set_write_timeout(Some(Duration::from_secs(5)))?;
        let (l, s) = (link.clone(), shared.clone());
        let t = std::thread::Builder::new()
            .name(format!("proxy-fwd-{dir}"))
            .spawn(move || {
                forward(from, to, &l, dir, &s);
                l.done[dir].store(true, SeqCst);
                l.close();
            })?;
        lock(&shared.threads).push(t);
    }
    Ok(())
}

/// Copies bytes `from` -> `to` until either side closes, the link is cut or
/// the proxy stops; reads nothing while stalled.
fn forward(mut from: TcpStream, mut to: TcpStream, link: &Link, dir: usize, shared: &Shared) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if shared.stop.load(SeqCst) || !link.is_open() {
            return;
        }
        // Cleared before the stall check: `stall()` trusts a `true` only when
        // it was stored after this thread saw the stall.
        link.parked[dir].store(false, SeqCst);
        if shared.stalled.load(SeqCst) {
            link.parked[dir].store(true, SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}
