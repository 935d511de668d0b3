//! Messages (`MQTTClient_message`) and quality of service.

use std::fmt;
use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::ffi;
use crate::properties::Properties;

/// The largest payload MQTT can carry: the "remaining length" field tops out at
/// 268,435,455 bytes (MQTT 3.1.1, 2.2.3), and the fixed header takes some of it.
pub const MAX_PAYLOAD: usize = 268_435_455;

/// Quality of service of a message or a subscription (the C API's `int qos`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(i32)]
pub enum QoS {
    /// 0: at most once, fire and forget.
    #[default]
    AtMostOnce = 0,
    /// 1: at least once; the receiver acknowledges with PUBACK.
    AtLeastOnce = 1,
    /// 2: exactly once; PUBREC, PUBREL, PUBCOMP.
    ExactlyOnce = 2,
}

impl TryFrom<i32> for QoS {
    type Error = Error;

    fn try_from(value: i32) -> Result<Self> {
        match value {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            2 => Ok(QoS::ExactlyOnce),
            other => Err(Error::InvalidQos(other)),
        }
    }
}

impl From<QoS> for i32 {
    fn from(q: QoS) -> i32 {
        q as i32
    }
}

/// A payload buffer allocated by the C library, freed with `MQTTClient_free`.
/// Received payloads are handed to Rust this way, without a copy.
struct PahoBuf {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: PahoBuf is the only owner of its heap buffer (moved out of the C
// message, whose pointer is cleared); plain bytes may be read from any thread
// and `free` may be called from any thread.
unsafe impl Send for PahoBuf {}
// SAFETY: shared access is read-only.
unsafe impl Sync for PahoBuf {}

impl Drop for PahoBuf {
    fn drop(&mut self) {
        // SAFETY: the pointer came from the C library's malloc and is freed once.
        unsafe { ffi::MQTTClient_free(self.ptr.as_ptr().cast()) }
    }
}

enum Payload {
    Owned(Vec<u8>),
    Paho(PahoBuf),
}

/// An MQTT application message: payload, QoS, retained flag, and on received
/// messages the duplicate flag and packet id. The Rust side of `MQTTClient_message`.
pub struct Message {
    payload: Payload,
    qos: QoS,
    retained: bool,
    dup: bool,
    msgid: i32,
    properties: Properties,
}

impl Message {
    /// A message to publish (`MQTTClient_message_initializer` with `payload`,
    /// `payloadlen`, `qos` and `retained` set). Payloads over [`MAX_PAYLOAD`] are
    /// refused when published.
    pub fn new(payload: impl Into<Vec<u8>>, qos: QoS, retained: bool) -> Message {
        Message {
            payload: Payload::Owned(payload.into()),
            qos,
            retained,
            dup: false,
            msgid: 0,
            properties: Properties::new(),
        }
    }

    /// Sets the MQTT 5 properties sent with the message (`properties`), for
    /// [`Client::publish_message5`](crate::Client::publish_message5). An
    /// MQTT 3 client's [`publish_message`](crate::Client::publish_message)
    /// sends the message without them (MQTT 3 has none).
    pub fn with_properties(mut self, properties: Properties) -> Message {
        self.properties = properties;
        self
    }

    /// The MQTT 5 properties (`properties`): on a received message those the
    /// broker sent (payload format indicator, message expiry interval, topic
    /// alias, response topic, correlation data, user properties,
    /// subscription identifiers, content type); empty with MQTT 3.
    pub fn properties(&self) -> &Properties {
        &self.properties
    }

    /// Takes a received message from the C library: the payload buffer moves
    /// into the returned `Message` (the C struct's `payload` is set to NULL so
    /// `MQTTClient_freeMessage` will not free it).
    ///
    /// # Safety
    /// `msg` must point to a valid `MQTTClient_message` allocated by the library,
    /// whose payload buffer (if any) is `payloadlen` bytes from the C heap.
    pub(crate) unsafe fn take_from_c(msg: *mut ffi::MQTTClient_message) -> Message {
        // SAFETY: the caller guarantees `msg` is valid and exclusively ours.
        let m = unsafe { &mut *msg };
        let len = usize::try_from(m.payloadlen).unwrap_or(0);
        let payload = match NonNull::new(m.payload.cast::<u8>()) {
            Some(ptr) if len > 0 => {
                m.payload = std::ptr::null_mut();
                m.payloadlen = 0;
                Payload::Paho(PahoBuf { ptr, len })
            }
            // An empty payload stays with the C struct (freed with it).
            _ => Payload::Owned(Vec::new()),
        };
        // The property list moves too; the C struct keeps an empty one.
        // SAFETY: the library built the list; nothing else frees it now.
        let properties = unsafe { Properties::from_raw(std::mem::take(&mut m.properties)) };
        Message {
            payload,
            qos: QoS::try_from(m.qos).unwrap_or_default(),
            retained: m.retained != 0,
            dup: m.dup != 0,
            msgid: m.msgid,
            properties,
        }
    }

    /// Gives a payload taken with [`Message::take_from_c`] back to the C struct,
    /// for a message the library is to deliver again.
    ///
    /// # Safety
    /// `msg` must be the struct this message was taken from.
    pub(crate) unsafe fn give_back_to_c(self, msg: *mut ffi::MQTTClient_message) {
        // SAFETY: the caller guarantees `msg` is the original, still valid
        // struct, whose list was emptied by `take_from_c`.
        unsafe { (*msg).properties = self.properties.into_raw() };
        if let Payload::Paho(buf) = self.payload {
            let buf = std::mem::ManuallyDrop::new(buf);
            // SAFETY: the caller guarantees `msg` is the original, still valid struct.
            let m = unsafe { &mut *msg };
            m.payload = buf.ptr.as_ptr().cast();
            m.payloadlen = buf.len as i32;
        }
    }

    /// The payload bytes (`payload`, `payloadlen`).
    pub fn payload(&self) -> &[u8] {
        match &self.payload {
            Payload::Owned(v) => v,
            // SAFETY: ptr/len describe a live C buffer owned by this message.
            Payload::Paho(b) => unsafe { std::slice::from_raw_parts(b.ptr.as_ptr(), b.len) },
        }
    }

    /// The payload as UTF-8 text, or [`Error::Utf8`].
    pub fn payload_str(&self) -> Result<&str> {
        Ok(std::str::from_utf8(self.payload())?)
    }

    /// The payload as an owned vector (copied if the C library allocated it).
    pub fn into_payload(self) -> Vec<u8> {
        match self.payload {
            Payload::Owned(v) => v,
            Payload::Paho(_) => self.payload().to_vec(),
        }
    }

    /// The quality of service (`qos`).
    pub fn qos(&self) -> QoS {
        self.qos
    }

    /// The retained flag (`retained`): on a received message, true when it is a
    /// retained message sent because of a new subscription.
    pub fn retained(&self) -> bool {
        self.retained
    }

    /// The duplicate flag (`dup`) of a received QoS 1 message: it may have been
    /// delivered before.
    pub fn dup(&self) -> bool {
        self.dup
    }

    /// The MQTT packet identifier (`msgid`) of a received QoS 1/2 message, 0 otherwise.
    pub fn msgid(&self) -> i32 {
        self.msgid
    }

    /// The C struct for publishing this message; it borrows the payload.
    pub(crate) fn raw(&self) -> Result<ffi::MQTTClient_message> {
        let payload = self.payload();
        let len = check_payload_len(payload.len())?;
        Ok(ffi::MQTTClient_message {
            payloadlen: len,
            payload: payload.as_ptr() as *mut _,
            qos: self.qos as i32,
            retained: i32::from(self.retained),
            // Borrowed: the library only reads the list.
            properties: self.properties.shallow(),
            ..ffi::MQTTClient_message::default()
        })
    }
}

/// Checks a payload length against MQTT's limit and converts it to C's `int`.
pub(crate) fn check_payload_len(len: usize) -> Result<i32> {
    if len > MAX_PAYLOAD {
        return Err(Error::PayloadTooLarge(len));
    }
    Ok(len as i32)
}

impl Clone for Message {
    fn clone(&self) -> Self {
        Message {
            payload: Payload::Owned(self.payload().to_vec()),
            qos: self.qos,
            retained: self.retained,
            dup: self.dup,
            msgid: self.msgid,
            properties: self.properties.clone(),
        }
    }
}

impl PartialEq for Message {
    fn eq(&self, other: &Self) -> bool {
        self.payload() == other.payload()
            && self.qos == other.qos
            && self.retained == other.retained
            && self.dup == other.dup
            && self.msgid == other.msgid
            && self.properties == other.properties
    }
}

impl Eq for Message {}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let payload = self.payload();
        let shown = &payload[..payload.len().min(64)];
        let mut d = f.debug_struct("Message");
        match std::str::from_utf8(shown) {
            Ok(text) => d.field("payload", &text),
            Err(_) => d.field("payload", &shown),
        };
        d.field("len", &payload.len())
            .field("qos", &self.qos)
            .field("retained", &self.retained)
            .field("dup", &self.dup)
            .field("msgid", &self.msgid)
            .field("properties", &self.properties)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_conversions() {
        for q in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            assert_eq!(QoS::try_from(i32::from(q)).unwrap(), q);
        }
        assert_eq!(QoS::try_from(3), Err(Error::InvalidQos(3)));
        assert_eq!(QoS::try_from(-1), Err(Error::InvalidQos(-1)));
    }

    #[test]
    fn message_accessors() {
        let m = Message::new("hello", QoS::AtLeastOnce, true);
        assert_eq!(m.payload(), b"hello");
        assert_eq!(m.payload_str().unwrap(), "hello");
        assert_eq!(m.qos(), QoS::AtLeastOnce);
        assert!(m.retained() && !m.dup());
        assert_eq!(m.msgid(), 0);
        let raw = m.raw().unwrap();
        assert_eq!((raw.payloadlen, raw.qos, raw.retained), (5, 1, 1));
        assert_eq!(m.clone(), m);
        assert!(Message::new(vec![0xff, 0xfe], QoS::AtMostOnce, false)
            .payload_str()
            .is_err());
        assert_eq!(check_payload_len(MAX_PAYLOAD).unwrap(), MAX_PAYLOAD as i32);
        assert_eq!(
            check_payload_len(MAX_PAYLOAD + 1),
            Err(Error::PayloadTooLarge(MAX_PAYLOAD + 1))
        );
    }

    #[test]
    fn c_payload_moves_without_copy_and_back() {
        // SAFETY: the struct and buffer come from malloc, as the library's
        // received messages do, and MQTTClient_freeMessage (plain free) frees
        // them below. (Not MQTTClient_malloc: Paho C before 1.3.13 lacks it.)
        unsafe {
            let raw = libc::malloc(std::mem::size_of::<ffi::MQTTClient_message>())
                as *mut ffi::MQTTClient_message;
            raw.write(ffi::MQTTClient_message::default());
            let buf = libc::malloc(3) as *mut u8;
            buf.copy_from_nonoverlapping(b"abc".as_ptr(), 3);
            (*raw).payload = buf.cast();
            (*raw).payloadlen = 3;
            (*raw).qos = 2;
            (*raw).msgid = 7;
            let m = Message::take_from_c(raw);
            assert!((*raw).payload.is_null());
            assert_eq!(m.payload().as_ptr(), buf as *const u8);
            assert_eq!(
                (m.payload(), m.qos(), m.msgid()),
                (&b"abc"[..], QoS::ExactlyOnce, 7)
            );
            m.give_back_to_c(raw);
            assert_eq!((*raw).payload, buf.cast());
            let mut raw = raw;
            ffi::MQTTClient_freeMessage(&mut raw);
            assert!(raw.is_null());
        }
    }
}
