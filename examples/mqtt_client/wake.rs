//! Waking the main loop: a self-pipe written by the SIGINT/SIGTERM handler
//! and by the connection-lost callback, read with `poll` and a timeout.
//!
//! The signal handler only does async-signal-safe things: atomic stores,
//! `write(2)` to a non-blocking pipe, and `_exit(2)` on a second signal, with
//! `errno` saved and restored around them.

use std::io;
use std::os::raw::c_int;
use std::sync::atomic::{AtomicI32, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// Write end of the pipe; -1 until [`install`]. The pipe is never closed: a
/// signal may come at any time until the process ends.
static WRITE_FD: AtomicI32 = AtomicI32::new(-1);
/// The first SIGINT/SIGTERM received, 0 for none.
static SIGNAL: AtomicI32 = AtomicI32::new(0);

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

/// The read end of the self-pipe.
pub struct Wakeup {
    read_fd: c_int,
}

/// Creates the pipe and installs the SIGINT and SIGTERM handlers.
pub fn install() -> io::Result<Wakeup> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    WRITE_FD.store(fds[1], SeqCst);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: an all-zero sigaction is a valid value to fill in (empty mask, no flags).
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as extern "C" fn(c_int) as libc::sighandler_t;
        // Restart interrupted system calls in the library's threads; our
        // poll() is never restarted and handles EINTR itself.
        action.sa_flags = libc::SA_RESTART;
        // This replaces an inherited SIG_IGN too (background jobs of a
        // non-interactive shell start with SIGINT ignored), so `kill -INT`
        // always reaches the demo.
        // SAFETY: `action` is initialized, the handler is async-signal-safe
        // (see the module docs) and stays valid for the whole program.
        if unsafe { libc::sigaction(sig, &action, std::ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(Wakeup { read_fd: fds[0] })
}

extern "C" fn on_signal(sig: c_int) {
    // SAFETY: __errno_location returns this thread's errno, valid for the
    // thread's life; saved and restored so the interrupted code never sees
    // the handler's errno.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: as above.
    let saved = unsafe { *errno };
    if SIGNAL.compare_exchange(0, sig, SeqCst, SeqCst).is_err() {
        // Second signal: the user insists. _exit is async-signal-safe.
        // SAFETY: ends the process at once, running no Rust code.
        unsafe { libc::_exit(128 + sig) };
    }
    notify_fd(WRITE_FD.load(SeqCst));
    // SAFETY: as above.
    unsafe { *errno = saved };
}

/// Writes one byte to the pipe. A full pipe already wakes the reader, so
/// EAGAIN is fine; nothing else can fail on a valid descriptor.
fn notify_fd(fd: c_int) {
    if fd >= 0 {
        // SAFETY: writes one byte from a static buffer; `fd` is the pipe's
        // write end, never closed. write(2) is async-signal-safe.
        unsafe { libc::write(fd, b"!".as_ptr().cast(), 1) };
    }
}

/// Wakes the main loop (from any thread).
pub fn notify() {
    notify_fd(WRITE_FD.load(SeqCst));
}

/// The signal that asked for shutdown, if any.
pub fn shutdown_signal() -> Option<i32> {
    match SIGNAL.load(SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

impl Wakeup {
    /// Waits until `deadline` or until woken, whichever comes first.
    /// A shutdown request wins over everything else.
    pub fn wait_until(&self, deadline: Instant) -> Event {
        loop {
            if shutdown_signal().is_some() {
                return Event::Shutdown;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Event::Timeout;
            }
            let mut pfd = libc::pollfd {
                fd: self.read_fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut pfd, 1, poll_ms(left)) };
            if n > 0 {
                self.drain();
                if shutdown_signal().is_some() {
                    return Event::Shutdown;
                }
                return Event::Woken;
            }
            // 0: timed out (checked at the top); -1: EINTR, try again.
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

    /// Empties the pipe.
    fn drain(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reads into a local buffer of that size; the descriptor is
        // non-blocking, so this ends with EAGAIN once the pipe is empty.
        while unsafe { libc::read(self.read_fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

/// A poll timeout in milliseconds, rounded up so the loop never spins.
fn poll_ms(d: Duration) -> c_int {
    let ms = d.as_nanos().div_ceil(1_000_000);
    c_int::try_from(ms).unwrap_or(c_int::MAX)
}
