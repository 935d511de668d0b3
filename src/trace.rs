//! The library's trace output (`MQTTClient_setTraceCallback`,
//! `MQTTClient_setTraceLevel`), routed to the [`log`] crate.

use std::ffi::CStr;
use std::os::raw::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::ffi;

/// How much the C library traces (`enum MQTTCLIENT_TRACE_LEVELS`), from the
/// most to the least verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TraceLevel {
    /// `MQTTCLIENT_TRACE_MAXIMUM`: every function entry and exit.
    Maximum,
    /// `MQTTCLIENT_TRACE_MEDIUM`.
    Medium,
    /// `MQTTCLIENT_TRACE_MINIMUM`: the main events, such as callbacks called.
    Minimum,
    /// `MQTTCLIENT_TRACE_PROTOCOL`: every MQTT packet sent and received.
    Protocol,
    /// `MQTTCLIENT_TRACE_ERROR`.
    Error,
    /// `MQTTCLIENT_TRACE_SEVERE`.
    Severe,
    /// `MQTTCLIENT_TRACE_FATAL`.
    Fatal,
}

impl TraceLevel {
    fn raw(self) -> ffi::MQTTCLIENT_TRACE_LEVELS {
        match self {
            TraceLevel::Maximum => ffi::MQTTCLIENT_TRACE_MAXIMUM,
            TraceLevel::Medium => ffi::MQTTCLIENT_TRACE_MEDIUM,
            TraceLevel::Minimum => ffi::MQTTCLIENT_TRACE_MINIMUM,
            TraceLevel::Protocol => ffi::MQTTCLIENT_TRACE_PROTOCOL,
            TraceLevel::Error => ffi::MQTTCLIENT_TRACE_ERROR,
            TraceLevel::Severe => ffi::MQTTCLIENT_TRACE_SEVERE,
            TraceLevel::Fatal => ffi::MQTTCLIENT_TRACE_FATAL,
        }
    }
}

/// The `log` level a C trace level is logged at.
fn log_level(level: ffi::MQTTCLIENT_TRACE_LEVELS) -> log::Level {
    match level {
        ffi::MQTTCLIENT_TRACE_MAXIMUM | ffi::MQTTCLIENT_TRACE_MEDIUM => log::Level::Trace,
        ffi::MQTTCLIENT_TRACE_MINIMUM | ffi::MQTTCLIENT_TRACE_PROTOCOL => log::Level::Debug,
        _ => log::Level::Error,
    }
}

/// The `log` target of the library's trace records.
pub const TRACE_TARGET: &str = "paho_mqtt_c";

unsafe extern "C" fn trace_callback(level: ffi::MQTTCLIENT_TRACE_LEVELS, message: *mut c_char) {
    if message.is_null() {
        return;
    }
    // The logger is user code: it must not unwind into C.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the library passes a NUL-terminated message valid for the call.
        let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
        log::log!(target: TRACE_TARGET, log_level(level), "{text}");
    }));
}

/// Routes the library's trace to the [`log`] facade (target
/// [`TRACE_TARGET`]) from `level` up (`MQTTClient_setTraceCallback` +
/// `MQTTClient_setTraceLevel`); `None` turns it off. Process-wide, like the C
/// functions. Maximum and medium are logged at `Trace`, minimum and protocol at
/// `Debug`, the rest at `Error`.
///
/// The logger is called on the library's threads, sometimes with its mutex
/// held: it must not call back into this crate.
pub fn set_trace_level(level: Option<TraceLevel>) {
    // SAFETY: both functions store a process-wide setting; the callback is a
    // static function that never unwinds.
    unsafe {
        match level {
            Some(level) => {
                ffi::MQTTClient_setTraceLevel(level.raw());
                ffi::MQTTClient_setTraceCallback(Some(trace_callback));
            }
            None => ffi::MQTTClient_setTraceCallback(None),
        }
    }
}
