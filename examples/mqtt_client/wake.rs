//! Waking the main loop: a socket pair that the SIGINT/SIGTERM handlers and
//! the connection-lost callback write a byte to, read with a timeout.
//!
//! The signal handlers are `signal-hook`'s (async-signal-safe: atomic stores,
//! a non-blocking write, `_exit(2)`, with `errno` preserved): a first
//! SIGINT/SIGTERM records the signal and wakes the loop, a second one ends the
//! process at once with `128 + N`.

use std::io::{self, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::OnceLock;
use std::time::Instant;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::{flag, low_level::pipe};

/// Write end of the socket pair, for [`notify`]; set by [`install`] and never
/// closed: a signal may come at any time until the process ends.
static WRITER: OnceLock<UnixStream> = OnceLock::new();
/// Set by the first SIGINT/SIGTERM; arms the immediate exit on the second.
static SHUTDOWN: AtomicBool = AtomicBool::new(false);
/// The signal that asked for shutdown, 0 for none.
static SIGNAL: AtomicUsize = AtomicUsize::new(0);

/// Why [`Wakeup::wait_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// SIGINT or SIGTERM: shut down.
    Shutdown,
    /// Something else woke the loop (the connection-lost callback).
    Woken,
    /// The deadline passed.
    Timeout,
}

/// The read end of the socket pair.
#[derive(Debug)]
pub struct Wakeup {
    reader: UnixStream,
}

/// Creates the socket pair and installs the SIGINT and SIGTERM handlers
/// (replacing an inherited SIG_IGN too: background jobs of a non-interactive
/// shell start with SIGINT ignored, and `kill -INT` must still reach the demo).
pub fn install() -> io::Result<Wakeup> {
    let (reader, writer) = UnixStream::pair()?;
    writer.set_nonblocking(true)?;
    for sig in [SIGINT, SIGTERM] {
        // Registration order is the order the actions run in: the exit
        // checks the flag before the first signal sets it.
        flag::register_conditional_shutdown(sig, 128 + sig, &SHUTDOWN)?;
        flag::register(sig, &SHUTDOWN)?;
        flag::register_usize(sig, &SIGNAL, sig as usize)?;
        pipe::register(sig, writer.try_clone()?)?;
    }
    let _ = WRITER.set(writer);
    Ok(Wakeup { reader })
}

/// Wakes the main loop (from any thread). A full socket buffer already wakes
/// the reader, so `WouldBlock` is fine.
pub fn notify() {
    if let Some(mut w) = WRITER.get() {
        let _ = w.write(b"!");
    }
}

/// The signal that asked for shutdown, if any.
pub fn shutdown_signal() -> Option<i32> {
    match SIGNAL.load(SeqCst) {
        0 => None,
        sig => i32::try_from(sig).ok(),
    }
}

impl Wakeup {
    /// Waits until `deadline` or until woken, whichever comes first.
    /// A shutdown request wins over everything else.
    pub fn wait_until(&self, deadline: Instant) -> Event {
        let mut buf = [0u8; 64];
        loop {
            if shutdown_signal().is_some() {
                return Event::Shutdown;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || self.reader.set_read_timeout(Some(left)).is_err() {
                return Event::Timeout;
            }
            // One read empties the socket (the writes are single bytes).
            match (&self.reader).read(&mut buf) {
                Ok(_) => {
                    if shutdown_signal().is_some() {
                        return Event::Shutdown;
                    }
                    return Event::Woken;
                }
                // Timed out (checked at the top), or interrupted: again.
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Event::Woken,
            }
        }
    }

    /// Sleeps until `deadline` unless a shutdown is requested: true if it was.
    pub fn sleep_until(&self, deadline: Instant) -> bool {
        loop {
            match self.wait_until(deadline) {
                Event::Shutdown => return true,
                Event::Timeout => return false,
                Event::Woken => {}
            }
        }
    }
}
