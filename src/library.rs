//! The C library's process-wide state: its version and its description.
//!
//! Limitations of the library, documented rather than worked around: its
//! timed waits drop the sub-second part of every timeout (Thread.c,
//! `Thread_time_from_now`, paho.mqtt.c#1682), so the client rounds the
//! timeouts it passes (connect, command) up. The lifecycle bugs of an
//! unpatched library are handled in run_thread.rs.

use std::ffi::CStr;
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::ffi;

/// The library's own description of itself (`MQTTClient_getVersionInfo`):
/// pairs such as `("Product name", ...)`, `("Version", "1.3.16")`,
/// `("Build level", ...)`.
pub fn version_info() -> &'static [(&'static str, &'static str)] {
    static INFO: OnceLock<Vec<(&'static str, &'static str)>> = OnceLock::new();
    INFO.get_or_init(|| {
        let mut out = Vec::new();
        // SAFETY: MQTTClient_getVersionInfo returns a static array terminated by
        // a NULL name; names and values are string literals (or static OpenSSL
        // strings), valid for the whole program. It rewrites the same static
        // array on every call, so it is called once, here.
        unsafe {
            let mut p = ffi::MQTTClient_getVersionInfo();
            while !p.is_null() && !(*p).name.is_null() {
                let text = |s: *const std::os::raw::c_char| {
                    if s.is_null() {
                        ""
                    } else {
                        CStr::from_ptr(s).to_str().unwrap_or("?")
                    }
                };
                out.push((text((*p).name), text((*p).value)));
                p = p.add(1);
            }
        }
        out
    })
}

/// The version of the linked Paho C library, such as `"1.3.16"`.
pub fn library_version() -> &'static str {
    version_info()
        .iter()
        .find(|(name, _)| *name == "Version")
        .map_or("unknown", |(_, v)| *v)
}

/// Checks once that the linked library is the release line the bindings were
/// generated for (same major and minor version; the structs of 1.3.x agree).
fn check_version() -> Result<()> {
    static CHECK: OnceLock<Result<()>> = OnceLock::new();
    CHECK
        .get_or_init(|| {
            let found = library_version();
            let expected = ffi::BINDINGS_VERSION;
            let line = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
            if line(found) == line(expected) {
                if found != expected {
                    log::debug!(
                        "paho-mqtt-sync: Paho C {found} linked, bindings made for {expected}"
                    );
                }
                Ok(())
            } else {
                Err(Error::IncompatibleLibrary {
                    found: found.to_owned(),
                    expected,
                })
            }
        })
        .clone()
}

/// `MQTTClient_yield`: lets the library process network traffic for 100 ms.
///
/// Never needed with this crate: every client runs in callback mode, where the
/// library's own thread does that work (in that mode the C function just
/// sleeps 100 ms). Kept for parity with C code being ported.
pub fn yield_now() {
    // SAFETY: takes no arguments; safe from any thread.
    unsafe { ffi::MQTTClient_yield() }
}

/// Checks the library version once, and sets up what an unpatched library
/// needs (run_thread.rs). Called before a client is created or adopted.
pub(crate) fn check_library() -> Result<()> {
    check_version()?;
    crate::run_thread::init();
    Ok(())
}

#[cfg(feature = "bundled")]
extern "C" {
    /// Export of the bundled build's fix 021 (paho-mqtt-c/fixes/): the
    /// largest incoming packet, process-wide; 0 restores the default;
    /// returns the previous value.
    fn MQTTClient_setMaxIncomingPacketSize(size: usize) -> usize;
}

/// The largest packet a broker may send to any client of the process, fixed
/// header included, before the client closes the connection instead of
/// allocating it (`MQTTClient_setMaxIncomingPacketSize`, added by the bundled
/// build's fix 021; default 16 MiB). `None` restores the default. Returns the
/// previous limit.
///
/// Paho C 1.3.16 itself allocates whatever length a packet declares, up to
/// 256 MiB: with a system library (no `bundled` feature) there is no limit to
/// set, and this returns [`Error::InvalidArgument`].
pub fn set_max_incoming_packet_size(bytes: Option<usize>) -> Result<usize> {
    if bytes == Some(0) {
        return Err(Error::InvalidArgument(
            "the maximum incoming packet size must be more than zero".into(),
        ));
    }
    #[cfg(feature = "bundled")]
    {
        // SAFETY: takes and returns a size_t; the library serializes the
        // update with its mutex.
        Ok(unsafe { MQTTClient_setMaxIncomingPacketSize(bytes.unwrap_or(0)) })
    }
    #[cfg(not(feature = "bundled"))]
    Err(Error::InvalidArgument(
        "set_max_incoming_packet_size needs the bundled Paho C (fix 021); the linked \
         library has no limit"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn max_incoming_packet_size_checks_its_argument() {
        assert!(super::set_max_incoming_packet_size(Some(0)).is_err());
        if !cfg!(feature = "bundled") {
            // No limit to set in an unpatched library.
            assert!(super::set_max_incoming_packet_size(Some(1 << 20)).is_err());
        }
    }
}
