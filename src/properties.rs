//! MQTT 5 properties (`MQTTProperties`, `MQTTProperty`, `MQTTProperties_*`).
//!
//! [`Properties`] owns a C `MQTTProperties` list: values are added with
//! `MQTTProperties_add` (which copies strings and binary data into the C
//! heap), read back through `MQTTProperties_getPropertyAt` /
//! `MQTTProperties_getNumericValueAt`, copied with `MQTTProperties_copy`, and
//! freed once with `MQTTProperties_free` when the `Properties` is dropped.
//! The same struct can then be handed to the `MQTTClient_*5` calls without
//! any conversion.

use std::fmt;
use std::os::raw::c_int;

use crate::error::{Error, Result};
use crate::ffi;

/// The largest value of a variable byte integer (MQTT 5, 1.5.5).
pub const MAX_VARIABLE_BYTE_INTEGER: u32 = 268_435_455;

/// The identifier of an MQTT 5 property (`enum MQTTPropertyCodes`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum PropertyCode {
    /// 0x01, byte (0 bytes, 1 UTF-8): PUBLISH, will.
    PayloadFormatIndicator = 1,
    /// 0x02, four-byte integer (seconds): PUBLISH, will.
    MessageExpiryInterval = 2,
    /// 0x03, string: PUBLISH, will.
    ContentType = 3,
    /// 0x08, string (a topic name): PUBLISH, will.
    ResponseTopic = 8,
    /// 0x09, binary: PUBLISH, will.
    CorrelationData = 9,
    /// 0x0B, variable byte integer 1..=268,435,455: SUBSCRIBE (one), and
    /// received PUBLISH (one per matching subscription).
    SubscriptionIdentifier = 11,
    /// 0x11, four-byte integer (seconds): CONNECT, CONNACK, DISCONNECT.
    SessionExpiryInterval = 17,
    /// 0x12, string: CONNACK.
    AssignedClientIdentifier = 18,
    /// 0x13, two-byte integer (seconds): CONNACK.
    ServerKeepAlive = 19,
    /// 0x15, string: CONNECT, CONNACK, AUTH.
    AuthenticationMethod = 21,
    /// 0x16, binary: CONNECT, CONNACK, AUTH.
    AuthenticationData = 22,
    /// 0x17, byte (0 or 1): CONNECT.
    RequestProblemInformation = 23,
    /// 0x18, four-byte integer (seconds): will.
    WillDelayInterval = 24,
    /// 0x19, byte (0 or 1): CONNECT.
    RequestResponseInformation = 25,
    /// 0x1A, string: CONNACK.
    ResponseInformation = 26,
    /// 0x1C, string: CONNACK, DISCONNECT.
    ServerReference = 28,
    /// 0x1F, string: every acknowledgement, DISCONNECT, AUTH.
    ReasonString = 31,
    /// 0x21, two-byte integer, not 0: CONNECT, CONNACK.
    ReceiveMaximum = 33,
    /// 0x22, two-byte integer: CONNECT, CONNACK.
    TopicAliasMaximum = 34,
    /// 0x23, two-byte integer, not 0: PUBLISH.
    TopicAlias = 35,
    /// 0x24, byte (0 or 1): CONNACK.
    MaximumQos = 36,
    /// 0x25, byte (0 or 1): CONNACK.
    RetainAvailable = 37,
    /// 0x26, string pair, any number of times: every packet.
    UserProperty = 38,
    /// 0x27, four-byte integer, not 0: CONNECT, CONNACK.
    MaximumPacketSize = 39,
    /// 0x28, byte (0 or 1): CONNACK.
    WildcardSubscriptionAvailable = 40,
    /// 0x29, byte (0 or 1): CONNACK.
    SubscriptionIdentifiersAvailable = 41,
    /// 0x2A, byte (0 or 1): CONNACK.
    SharedSubscriptionAvailable = 42,
}

const ALL_CODES: [PropertyCode; 27] = {
    use PropertyCode::*;
    [
        PayloadFormatIndicator,
        MessageExpiryInterval,
        ContentType,
        ResponseTopic,
        CorrelationData,
        SubscriptionIdentifier,
        SessionExpiryInterval,
        AssignedClientIdentifier,
        ServerKeepAlive,
        AuthenticationMethod,
        AuthenticationData,
        RequestProblemInformation,
        WillDelayInterval,
        RequestResponseInformation,
        ResponseInformation,
        ServerReference,
        ReasonString,
        ReceiveMaximum,
        TopicAliasMaximum,
        TopicAlias,
        MaximumQos,
        RetainAvailable,
        UserProperty,
        MaximumPacketSize,
        WildcardSubscriptionAvailable,
        SubscriptionIdentifiersAvailable,
        SharedSubscriptionAvailable,
    ]
};

/// The data type of a property's value (`enum MQTTPropertyTypes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyType {
    /// One byte.
    Byte,
    /// Two-byte integer.
    TwoByteInteger,
    /// Four-byte integer.
    FourByteInteger,
    /// Variable byte integer (up to 268,435,455).
    VariableByteInteger,
    /// Binary data (up to 65,535 bytes).
    BinaryData,
    /// UTF-8 string (up to 65,535 bytes).
    Utf8String,
    /// A pair of UTF-8 strings (name, value).
    Utf8StringPair,
}

impl PropertyCode {
    /// The code for an identifier byte, `None` for identifiers MQTT 5 does not define.
    pub fn from_u8(id: u8) -> Option<PropertyCode> {
        ALL_CODES.iter().copied().find(|c| *c as u8 == id)
    }

    /// The identifier byte.
    pub fn value(self) -> u8 {
        self as u8
    }

    /// The type of the property's value, as the library knows it
    /// (`MQTTProperty_getType`).
    pub fn value_type(self) -> PropertyType {
        // SAFETY: a pure lookup in a static table.
        let t = unsafe { ffi::MQTTProperty_getType(ffi::MQTTPropertyCodes::from(self as u8)) };
        match u32::try_from(t).unwrap_or(u32::MAX) {
            ffi::MQTTPROPERTY_TYPE_BYTE => PropertyType::Byte,
            ffi::MQTTPROPERTY_TYPE_TWO_BYTE_INTEGER => PropertyType::TwoByteInteger,
            ffi::MQTTPROPERTY_TYPE_FOUR_BYTE_INTEGER => PropertyType::FourByteInteger,
            ffi::MQTTPROPERTY_TYPE_VARIABLE_BYTE_INTEGER => PropertyType::VariableByteInteger,
            ffi::MQTTPROPERTY_TYPE_BINARY_DATA => PropertyType::BinaryData,
            ffi::MQTTPROPERTY_TYPE_UTF_8_ENCODED_STRING => PropertyType::Utf8String,
            // Every code of the enum is in the library's table.
            _ => PropertyType::Utf8StringPair,
        }
    }

    /// Whether the property may appear more than once in one packet.
    pub fn is_multi_valued(self) -> bool {
        matches!(
            self,
            PropertyCode::UserProperty | PropertyCode::SubscriptionIdentifier
        )
    }
}

/// A property value, typed as MQTT 5 defines it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PropertyValue {
    /// A byte.
    Byte(u8),
    /// A two-byte integer.
    TwoByteInteger(u16),
    /// A four-byte integer.
    FourByteInteger(u32),
    /// A variable byte integer.
    VariableByteInteger(u32),
    /// Binary data.
    Binary(Vec<u8>),
    /// A UTF-8 string.
    String(String),
    /// A name and a value.
    StringPair(String, String),
}

impl PropertyValue {
    /// The value's type.
    pub fn value_type(&self) -> PropertyType {
        match self {
            PropertyValue::Byte(_) => PropertyType::Byte,
            PropertyValue::TwoByteInteger(_) => PropertyType::TwoByteInteger,
            PropertyValue::FourByteInteger(_) => PropertyType::FourByteInteger,
            PropertyValue::VariableByteInteger(_) => PropertyType::VariableByteInteger,
            PropertyValue::Binary(_) => PropertyType::BinaryData,
            PropertyValue::String(_) => PropertyType::Utf8String,
            PropertyValue::StringPair(..) => PropertyType::Utf8StringPair,
        }
    }

    /// The value of an integer property of any width.
    pub fn as_u32(&self) -> Option<u32> {
        match *self {
            PropertyValue::Byte(v) => Some(v.into()),
            PropertyValue::TwoByteInteger(v) => Some(v.into()),
            PropertyValue::FourByteInteger(v) | PropertyValue::VariableByteInteger(v) => Some(v),
            _ => None,
        }
    }
}

/// The packets whose properties the crate checks before sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Packet {
    Connect,
    Will,
    Publish,
    Subscribe,
    Unsubscribe,
    Disconnect,
}

impl Packet {
    fn name(self) -> &'static str {
        match self {
            Packet::Connect => "CONNECT",
            Packet::Will => "will",
            Packet::Publish => "PUBLISH",
            Packet::Subscribe => "SUBSCRIBE",
            Packet::Unsubscribe => "UNSUBSCRIBE",
            Packet::Disconnect => "DISCONNECT",
        }
    }
}

/// Whether a client may send `code` in `packet` (MQTT 5, table 2-4, and
/// 3.3.4: a client's PUBLISH carries no subscription identifier).
fn allowed(code: PropertyCode, packet: Packet) -> bool {
    use Packet as P;
    use PropertyCode::*;
    match code {
        UserProperty => true,
        PayloadFormatIndicator
        | MessageExpiryInterval
        | ContentType
        | ResponseTopic
        | CorrelationData => matches!(packet, P::Publish | P::Will),
        TopicAlias => packet == P::Publish,
        SubscriptionIdentifier => packet == P::Subscribe,
        SessionExpiryInterval => matches!(packet, P::Connect | P::Disconnect),
        AuthenticationMethod
        | AuthenticationData
        | RequestProblemInformation
        | RequestResponseInformation
        | ReceiveMaximum
        | TopicAliasMaximum
        | MaximumPacketSize => packet == P::Connect,
        WillDelayInterval => packet == P::Will,
        ServerReference | ReasonString => packet == P::Disconnect,
        AssignedClientIdentifier
        | ServerKeepAlive
        | ResponseInformation
        | MaximumQos
        | RetainAvailable
        | WildcardSubscriptionAvailable
        | SubscriptionIdentifiersAvailable
        | SharedSubscriptionAvailable => false,
    }
}

fn invalid(property: PropertyCode, reason: impl Into<String>) -> Error {
    Error::InvalidProperty {
        property,
        reason: reason.into(),
    }
}

/// Checks a string or binary length (a two-byte length prefix on the wire).
fn check_len(code: PropertyCode, what: &str, len: usize) -> Result<c_int> {
    if len > 65_535 {
        return Err(invalid(
            code,
            format!("{what} of {len} bytes is longer than 65535 bytes"),
        ));
    }
    Ok(len as c_int)
}

fn check_str(code: PropertyCode, s: &str) -> Result<c_int> {
    if s.contains('\0') {
        return Err(invalid(code, "a string property may not contain U+0000"));
    }
    check_len(code, "string", s.len())
}

/// A list of MQTT 5 properties that owns its data (a C `MQTTProperties`).
///
/// Build one with [`Properties::push`] (or the typed shortcuts), which checks
/// the value's type and range against the property; the calls that send it
/// check that each property is allowed in their packet. Received
/// properties (CONNACK, acknowledgements, messages, DISCONNECT) are read with
/// [`get`](Properties::get), [`get_int`](Properties::get_int),
/// [`get_str`](Properties::get_str), [`user_properties`](Properties::user_properties)
/// or [`iter`](Properties::iter).
///
/// ```
/// use paho_mqtt_sync::{Properties, PropertyCode};
/// let mut p = Properties::new();
/// p.push_int(PropertyCode::MessageExpiryInterval, 60)?;
/// p.push_user_property("trace-id", "42")?;
/// assert_eq!(p.get_int(PropertyCode::MessageExpiryInterval), Some(60));
/// assert_eq!(p.user_properties(), vec![("trace-id", "42")]);
/// # Ok::<(), paho_mqtt_sync::Error>(())
/// ```
pub struct Properties {
    raw: ffi::MQTTProperties,
}

// SAFETY: `Properties` is the only owner of the C heap memory its list points
// to (strings and the array, allocated by MQTTProperties_add); nothing else
// keeps a pointer to it, so it may move between threads.
unsafe impl Send for Properties {}
// SAFETY: `&Properties` only reads that memory.
unsafe impl Sync for Properties {}

impl Default for Properties {
    fn default() -> Self {
        Properties::new()
    }
}

impl Properties {
    /// An empty list (`MQTTProperties_initializer`); allocates nothing.
    pub const fn new() -> Properties {
        Properties {
            raw: ffi::MQTTProperties {
                count: 0,
                max_count: 0,
                length: 0,
                array: std::ptr::null_mut(),
            },
        }
    }

    /// Takes ownership of a C list (moved out of a message or response).
    ///
    /// # Safety
    /// `raw` must be a list built by the library (or zeroed) that nothing
    /// else frees.
    pub(crate) unsafe fn from_raw(raw: ffi::MQTTProperties) -> Properties {
        Properties { raw }
    }

    /// A deep copy of a C list the library still owns (`MQTTProperties_copy`).
    ///
    /// # Safety
    /// `raw` must be NULL or point to a valid list for the call.
    pub(crate) unsafe fn copy_from(raw: *const ffi::MQTTProperties) -> Properties {
        if raw.is_null() {
            return Properties::new();
        }
        // SAFETY: guaranteed by the caller; the copy is new memory we own.
        Properties {
            raw: unsafe { ffi::MQTTProperties_copy(raw) },
        }
    }

    /// Gives up ownership of the C list (for handing it back to a C message).
    pub(crate) fn into_raw(self) -> ffi::MQTTProperties {
        let me = std::mem::ManuallyDrop::new(self);
        me.raw
    }

    /// A pointer for the `MQTTClient_*5` calls, which only read the list.
    /// NULL for an empty list.
    pub(crate) fn as_c_ptr(&self) -> *mut ffi::MQTTProperties {
        if self.is_empty() {
            std::ptr::null_mut()
        } else {
            &self.raw as *const _ as *mut _
        }
    }

    /// A bitwise copy of the list header, for a C struct that embeds it and
    /// that the library only reads (a message to publish). Must not be freed.
    pub(crate) fn shallow(&self) -> ffi::MQTTProperties {
        self.raw
    }

    /// The number of properties (`count`).
    pub fn len(&self) -> usize {
        usize::try_from(self.raw.count).unwrap_or(0)
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoded length of the properties in bytes (`MQTTProperties_len`,
    /// without the length prefix).
    pub fn encoded_len(&self) -> usize {
        usize::try_from(self.raw.length).unwrap_or(0)
    }

    /// Adds a property (`MQTTProperties_add`). Errors
    /// ([`Error::InvalidProperty`]): a value of the wrong type for `code`, a
    /// value out of range (0 where MQTT forbids it, a byte flag other than 0 or
    /// 1, a variable byte integer over 268,435,455, a string or binary value
    /// over 65,535 bytes, a string with U+0000), or a second value of a property
    /// that may appear only once.
    pub fn push(&mut self, code: PropertyCode, value: PropertyValue) -> Result<&mut Self> {
        let want = code.value_type();
        if value.value_type() != want {
            return Err(invalid(
                code,
                format!("needs a {want:?} value, not {:?}", value.value_type()),
            ));
        }
        if !code.is_multi_valued() && self.contains(code) {
            return Err(invalid(code, "may appear only once"));
        }
        if let Some(v) = value.as_u32() {
            check_range(code, v)?;
        }
        // SAFETY: a plain C struct; zero is a valid value for every field.
        let mut prop: ffi::MQTTProperty = unsafe { std::mem::zeroed() };
        prop.identifier = ffi::MQTTPropertyCodes::from(code as u8);
        // The library copies the bytes (datadup), so pointers into `value`
        // only need to live for the call.
        match &value {
            PropertyValue::Byte(v) => prop.value.byte = *v,
            PropertyValue::TwoByteInteger(v) => prop.value.integer2 = *v,
            PropertyValue::FourByteInteger(v) | PropertyValue::VariableByteInteger(v) => {
                prop.value.integer4 = *v
            }
            PropertyValue::Binary(b) => {
                let len = check_len(code, "binary value", b.len())?;
                prop.value.__bindgen_anon_1.data = ffi::MQTTLenString {
                    len,
                    data: b.as_ptr() as *mut _,
                };
            }
            PropertyValue::String(s) => {
                let len = check_str(code, s)?;
                prop.value.__bindgen_anon_1.data = ffi::MQTTLenString {
                    len,
                    data: s.as_ptr() as *mut _,
                };
            }
            PropertyValue::StringPair(k, v) => {
                let klen = check_str(code, k)?;
                let vlen = check_str(code, v)?;
                prop.value.__bindgen_anon_1.data = ffi::MQTTLenString {
                    len: klen,
                    data: k.as_ptr() as *mut _,
                };
                prop.value.__bindgen_anon_1.value = ffi::MQTTLenString {
                    len: vlen,
                    data: v.as_ptr() as *mut _,
                };
            }
        }
        // SAFETY: `self.raw` is a valid list we own; `prop` and the bytes it
        // points to are valid for the call, which copies them.
        let rc = unsafe { ffi::MQTTProperties_add(&mut self.raw, &prop) };
        if rc != 0 {
            return Err(Error::Library(rc));
        }
        Ok(self)
    }

    /// Adds an integer property, in the width `code` needs.
    pub fn push_int(&mut self, code: PropertyCode, value: u32) -> Result<&mut Self> {
        let v = match code.value_type() {
            PropertyType::Byte => PropertyValue::Byte(
                u8::try_from(value).map_err(|_| invalid(code, format!("{value} is not a byte")))?,
            ),
            PropertyType::TwoByteInteger => PropertyValue::TwoByteInteger(
                u16::try_from(value)
                    .map_err(|_| invalid(code, format!("{value} does not fit in two bytes")))?,
            ),
            PropertyType::FourByteInteger => PropertyValue::FourByteInteger(value),
            PropertyType::VariableByteInteger => PropertyValue::VariableByteInteger(value),
            t => {
                return Err(invalid(
                    code,
                    format!("needs a {t:?} value, not an integer"),
                ))
            }
        };
        self.push(code, v)
    }

    /// Adds a string property.
    pub fn push_str(&mut self, code: PropertyCode, value: &str) -> Result<&mut Self> {
        self.push(code, PropertyValue::String(value.to_owned()))
    }

    /// Adds a binary property.
    pub fn push_binary(&mut self, code: PropertyCode, value: &[u8]) -> Result<&mut Self> {
        self.push(code, PropertyValue::Binary(value.to_vec()))
    }

    /// Adds a user property (name, value); may be repeated, also with the same name.
    pub fn push_user_property(&mut self, name: &str, value: &str) -> Result<&mut Self> {
        self.push(
            PropertyCode::UserProperty,
            PropertyValue::StringPair(name.to_owned(), value.to_owned()),
        )
    }

    /// Whether the list has `code` (`MQTTProperties_hasProperty`).
    pub fn contains(&self, code: PropertyCode) -> bool {
        // SAFETY: a valid list we own.
        unsafe {
            ffi::MQTTProperties_hasProperty(&self.raw, code as u8 as ffi::MQTTPropertyCodes) != 0
        }
    }

    /// How many times `code` appears (`MQTTProperties_propertyCount`).
    pub fn count(&self, code: PropertyCode) -> usize {
        // SAFETY: a valid list we own.
        let n = unsafe {
            ffi::MQTTProperties_propertyCount(&self.raw, code as u8 as ffi::MQTTPropertyCodes)
        };
        usize::try_from(n).unwrap_or(0)
    }

    /// The first value of `code`.
    pub fn get(&self, code: PropertyCode) -> Option<PropertyValue> {
        self.get_at(code, 0)
    }

    /// Every value of `code`, in order (user properties, subscription identifiers).
    pub fn get_all(&self, code: PropertyCode) -> Vec<PropertyValue> {
        (0..self.count(code))
            .filter_map(|i| self.get_at(code, i))
            .collect()
    }

    /// The `index`th value of `code` (`MQTTProperties_getPropertyAt`).
    pub fn get_at(&self, code: PropertyCode, index: usize) -> Option<PropertyValue> {
        let index = c_int::try_from(index).ok()?;
        // SAFETY: a valid list we own; the result points into it (or is NULL).
        let p = unsafe {
            ffi::MQTTProperties_getPropertyAt(
                &self.raw,
                code as u8 as ffi::MQTTPropertyCodes,
                index,
            )
        };
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` points to an element of our list, alive while `self` is.
        Some(unsafe { value_of(code, &*p) })
    }

    /// The first value of an integer property; `None` when absent or not an
    /// integer. (Read through `MQTTProperties_getPropertyAt`, not
    /// `MQTTProperties_getNumericValue`, which returns an `int` in older
    /// releases such as Debian's 1.3.11 and an `int64_t` in 1.3.16: its
    /// "absent" marker cannot be read the same way from both.)
    pub fn get_int(&self, code: PropertyCode) -> Option<u32> {
        self.get(code).and_then(|v| v.as_u32())
    }

    /// Every value of an integer property (subscription identifiers of a message).
    pub fn get_ints(&self, code: PropertyCode) -> Vec<u32> {
        self.get_all(code)
            .iter()
            .filter_map(PropertyValue::as_u32)
            .collect()
    }

    /// The first value of a string property, borrowed; `None` when absent,
    /// not a string, or not UTF-8.
    pub fn get_str(&self, code: PropertyCode) -> Option<&str> {
        if code.value_type() != PropertyType::Utf8String {
            return None;
        }
        // SAFETY: a valid list we own.
        let p = unsafe {
            ffi::MQTTProperties_getProperty(&self.raw, code as u8 as ffi::MQTTPropertyCodes)
        };
        if p.is_null() {
            return None;
        }
        // SAFETY: `p` points into our list; its data lives as long as `self`.
        std::str::from_utf8(unsafe { bytes_of(&(*p).value.__bindgen_anon_1.data) }).ok()
    }

    /// The first value of a binary property, borrowed.
    pub fn get_binary(&self, code: PropertyCode) -> Option<&[u8]> {
        if code.value_type() != PropertyType::BinaryData {
            return None;
        }
        // SAFETY: a valid list we own.
        let p = unsafe {
            ffi::MQTTProperties_getProperty(&self.raw, code as u8 as ffi::MQTTPropertyCodes)
        };
        if p.is_null() {
            return None;
        }
        // SAFETY: as in `get_str`.
        Some(unsafe { bytes_of(&(*p).value.__bindgen_anon_1.data) })
    }

    /// The user properties (name, value) in order; pairs that are not UTF-8
    /// are left out.
    pub fn user_properties(&self) -> Vec<(&str, &str)> {
        self.c_slice()
            .iter()
            .filter(|p| p.identifier == PropertyCode::UserProperty as u8 as ffi::MQTTPropertyCodes)
            .filter_map(|p| {
                // SAFETY: user properties are string pairs whose data lives as
                // long as `self`.
                let (k, v) = unsafe {
                    (
                        bytes_of(&p.value.__bindgen_anon_1.data),
                        bytes_of(&p.value.__bindgen_anon_1.value),
                    )
                };
                Some((std::str::from_utf8(k).ok()?, std::str::from_utf8(v).ok()?))
            })
            .collect()
    }

    /// The value of the first user property called `name`.
    pub fn user_property(&self, name: &str) -> Option<&str> {
        self.user_properties()
            .into_iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// Every property in list order (identifiers the crate does not know are skipped).
    pub fn iter(&self) -> impl Iterator<Item = (PropertyCode, PropertyValue)> + '_ {
        self.c_slice().iter().filter_map(|p| {
            let code = PropertyCode::from_u8(u8::try_from(p.identifier).ok()?)?;
            // SAFETY: an element of our list.
            Some((code, unsafe { value_of(code, p) }))
        })
    }

    fn c_slice(&self) -> &[ffi::MQTTProperty] {
        if self.raw.array.is_null() || self.raw.count <= 0 {
            return &[];
        }
        // SAFETY: the library keeps `count` initialized elements in `array`.
        unsafe { std::slice::from_raw_parts(self.raw.array, self.raw.count as usize) }
    }

    /// Checks that every property may be sent in `packet` and appears no
    /// more often than allowed there.
    pub(crate) fn check_for(&self, packet: Packet) -> Result<()> {
        for (code, _) in self.iter() {
            if !allowed(code, packet) {
                return Err(invalid(
                    code,
                    format!("is not allowed in a {} packet", packet.name()),
                ));
            }
            if code == PropertyCode::SubscriptionIdentifier && self.count(code) > 1 {
                return Err(invalid(code, "may appear only once in a SUBSCRIBE"));
            }
        }
        Ok(())
    }
}

/// Range rules for integer properties (MQTT 5, 3.1.2.11, 3.2.2.3, 3.3.2.3).
fn check_range(code: PropertyCode, v: u32) -> Result<()> {
    use PropertyCode::*;
    match code {
        PayloadFormatIndicator
        | RequestProblemInformation
        | RequestResponseInformation
        | MaximumQos
        | RetainAvailable
        | WildcardSubscriptionAvailable
        | SubscriptionIdentifiersAvailable
        | SharedSubscriptionAvailable
            if v > 1 =>
        {
            Err(invalid(code, format!("{v} is not 0 or 1")))
        }
        SubscriptionIdentifier | ReceiveMaximum | TopicAlias | MaximumPacketSize if v == 0 => {
            Err(invalid(code, "0 is not allowed"))
        }
        SubscriptionIdentifier if v > MAX_VARIABLE_BYTE_INTEGER => Err(invalid(
            code,
            format!("{v} is larger than {MAX_VARIABLE_BYTE_INTEGER}"),
        )),
        _ => Ok(()),
    }
}

/// The bytes of a C length-prefixed string.
///
/// # Safety
/// `s.data` must point to `s.len` readable bytes (or `s.len` be 0) that
/// live for `'a`.
unsafe fn bytes_of<'a>(s: &ffi::MQTTLenString) -> &'a [u8] {
    match usize::try_from(s.len) {
        Ok(n) if n > 0 && !s.data.is_null() => {
            // SAFETY: guaranteed by the caller.
            unsafe { std::slice::from_raw_parts(s.data as *const u8, n) }
        }
        _ => &[],
    }
}

/// The value of one C property.
///
/// # Safety
/// `p` must be an element of a valid list, with identifier `code`.
unsafe fn value_of(code: PropertyCode, p: &ffi::MQTTProperty) -> PropertyValue {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    // SAFETY: the union member read is the one the library wrote for this
    // identifier's type; string data lives as long as the list.
    unsafe {
        match code.value_type() {
            PropertyType::Byte => PropertyValue::Byte(p.value.byte),
            PropertyType::TwoByteInteger => PropertyValue::TwoByteInteger(p.value.integer2),
            PropertyType::FourByteInteger => PropertyValue::FourByteInteger(p.value.integer4),
            PropertyType::VariableByteInteger => {
                PropertyValue::VariableByteInteger(p.value.integer4)
            }
            PropertyType::BinaryData => {
                PropertyValue::Binary(bytes_of(&p.value.__bindgen_anon_1.data).to_vec())
            }
            PropertyType::Utf8String => {
                PropertyValue::String(text(bytes_of(&p.value.__bindgen_anon_1.data)))
            }
            PropertyType::Utf8StringPair => PropertyValue::StringPair(
                text(bytes_of(&p.value.__bindgen_anon_1.data)),
                text(bytes_of(&p.value.__bindgen_anon_1.value)),
            ),
        }
    }
}

impl Drop for Properties {
    fn drop(&mut self) {
        if self.raw.array.is_null() {
            return;
        }
        // SAFETY: we own the list; freed once (the function zeroes it).
        unsafe { ffi::MQTTProperties_free(&mut self.raw) };
    }
}

impl Clone for Properties {
    fn clone(&self) -> Self {
        // SAFETY: a valid list we own.
        unsafe { Properties::copy_from(&self.raw) }
    }
}

impl PartialEq for Properties {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Properties {}

impl fmt::Debug for Properties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PropertyCode as C;

    #[test]
    fn build_and_read_back() {
        let mut p = Properties::new();
        assert!(p.is_empty() && p.as_c_ptr().is_null());
        p.push_int(C::MessageExpiryInterval, 30)
            .unwrap()
            .push_str(C::ResponseTopic, "reply/to")
            .unwrap()
            .push_binary(C::CorrelationData, b"\0\x01id")
            .unwrap()
            .push_user_property("a", "1")
            .unwrap()
            .push_user_property("a", "2")
            .unwrap()
            .push_int(C::PayloadFormatIndicator, 1)
            .unwrap();
        assert_eq!(p.len(), 6);
        assert_eq!(p.get_int(C::MessageExpiryInterval), Some(30));
        assert_eq!(p.get_str(C::ResponseTopic), Some("reply/to"));
        assert_eq!(p.get_binary(C::CorrelationData), Some(&b"\0\x01id"[..]));
        assert_eq!(p.user_properties(), vec![("a", "1"), ("a", "2")]);
        assert_eq!(p.user_property("a"), Some("1"));
        assert_eq!(p.count(C::UserProperty), 2);
        assert_eq!(
            p.get_all(C::UserProperty)[1],
            PropertyValue::StringPair("a".into(), "2".into())
        );
        assert_eq!(
            p.get(C::PayloadFormatIndicator),
            Some(PropertyValue::Byte(1))
        );
        assert_eq!(p.get(C::ContentType), None);
        assert_eq!(p.get_int(C::ContentType), None);
        let q = p.clone();
        assert_eq!(p, q);
        assert_eq!(q.iter().count(), 6);
        assert!(p.check_for(Packet::Publish).is_ok());
        assert!(p.check_for(Packet::Will).is_ok());
        assert!(p.check_for(Packet::Connect).is_err());
        // 1 + 4, 1 + 2 + 8, 1 + 2 + 4, 2 * (1 + 2 + 1 + 2 + 1), 1 + 1
        assert_eq!(p.encoded_len(), 5 + 11 + 7 + 14 + 2);
    }

    #[test]
    fn bad_values_are_errors() {
        let mut p = Properties::new();
        let wrong_type = p.push(C::MessageExpiryInterval, PropertyValue::String("x".into()));
        assert!(matches!(
            wrong_type,
            Err(Error::InvalidProperty {
                property: C::MessageExpiryInterval,
                ..
            })
        ));
        assert!(p.push_str(C::TopicAlias, "x").is_err());
        assert!(p.push_int(C::ContentType, 1).is_err());
        assert!(p.push_int(C::TopicAlias, 70_000).is_err());
        assert!(p.push_int(C::TopicAlias, 0).is_err());
        assert!(p.push_int(C::PayloadFormatIndicator, 2).is_err());
        assert!(p.push_int(C::SubscriptionIdentifier, 0).is_err());
        assert!(p
            .push_int(C::SubscriptionIdentifier, MAX_VARIABLE_BYTE_INTEGER + 1)
            .is_err());
        assert!(p.push_str(C::ContentType, &"x".repeat(65_536)).is_err());
        assert!(p.push_binary(C::CorrelationData, &[0; 65_536]).is_err());
        assert!(p.push_str(C::ContentType, "a\0b").is_err());
        assert!(p.push_user_property("k", "a\0").is_err());
        assert!(p.is_empty(), "nothing was added: {p:?}");
        p.push_str(C::ContentType, &"x".repeat(65_535)).unwrap();
        assert!(p.push_str(C::ContentType, "again").is_err());
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn packets_allow_what_mqtt5_allows() {
        let one = |code, v: u32| {
            let mut p = Properties::new();
            p.push_int(code, v).unwrap();
            p
        };
        assert!(one(C::TopicAlias, 1).check_for(Packet::Publish).is_ok());
        assert!(one(C::TopicAlias, 1).check_for(Packet::Will).is_err());
        assert!(one(C::SubscriptionIdentifier, 5)
            .check_for(Packet::Publish)
            .is_err());
        assert!(one(C::SubscriptionIdentifier, 5)
            .check_for(Packet::Subscribe)
            .is_ok());
        assert!(one(C::SessionExpiryInterval, 5)
            .check_for(Packet::Disconnect)
            .is_ok());
        assert!(one(C::WillDelayInterval, 5)
            .check_for(Packet::Connect)
            .is_err());
        assert!(one(C::WillDelayInterval, 5).check_for(Packet::Will).is_ok());
        assert!(one(C::ServerKeepAlive, 5)
            .check_for(Packet::Connect)
            .is_err());
        assert!(one(C::ReceiveMaximum, 5).check_for(Packet::Connect).is_ok());
        let mut two = one(C::SubscriptionIdentifier, 5);
        two.push_int(C::SubscriptionIdentifier, 6).unwrap();
        assert!(two.check_for(Packet::Subscribe).is_err());
        for code in ALL_CODES {
            assert_eq!(PropertyCode::from_u8(code.value()), Some(code));
        }
        assert_eq!(PropertyCode::from_u8(0), None);
    }
}
