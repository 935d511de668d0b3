//! User-defined persistence (`MQTTCLIENT_PERSISTENCE_USER`): a Rust store
//! behind the `Persistence_*` callbacks of `MQTTClientPersistence.h`.
//!
//! [`ClientPersistence`] is the store; [`Persistence::User`](crate::Persistence::User)
//! hands it to [`Client::create`](crate::Client::create). The crate builds the
//! `MQTTClient_persistence` table of C functions ("trampolines") that call it,
//! and keeps table and store alive until after `MQTTClient_destroy`.
//!
//! The trampolines:
//! * never let a panic cross into C: a panic, like an `Err`, becomes
//!   `MQTTCLIENT_PERSISTENCE_ERROR` and is logged (target `paho_mqtt_sync`);
//! * hand C the memory it frees (the `get` buffer, the `keys` array and
//!   strings) allocated the way the library frees it (see [`c_alloc`]);
//! * check every stored MQTT packet that `get` returns before the library
//!   parses it (the library trusts its framing and reads past a short
//!   buffer); a damaged entry is logged and handed to the library in a form
//!   it rejects safely, so it removes the entry and restores the others.
//!
//! The library calls the store from the application's threads (publish,
//! create, destroy) and from its background thread (acknowledgements); the
//! crate serializes the calls with a `Mutex` (the trait takes `&mut self`),
//! so a store method must not call back into the client.

use std::ffi::{c_void, CStr};
use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::Mutex;

use crate::context::lock;
use crate::ffi;

/// The error a [`ClientPersistence`] method returns: any error type (an
/// `std::io::Error` converts with `?`).
pub type PersistenceError = Box<dyn std::error::Error + Send + Sync>;

/// The result of a [`ClientPersistence`] method.
pub type PersistenceResult<T> = std::result::Result<T, PersistenceError>;

/// A store for the messages a client has in flight, with one method per
/// `Persistence_*` callback of `MQTTClientPersistence.h`, used through
/// [`Persistence::User`](crate::Persistence::User).
///
/// The library stores each QoS 1/2 message it sends (and each QoS 2 message
/// it receives) under a short ASCII key such as `s-17` (`s-` sent PUBLISH,
/// `sc-` sent PUBREL, `r-` received PUBLISH, `q-` received message not yet
/// handed to the application), and removes it when the exchange with the
/// broker is over. When a client is created, it opens the store, lists its
/// keys and reads every entry back: those messages are then in flight again
/// and are resent after the next connect with `clean_session(false)`. A
/// connect or disconnect with a clean session clears the store.
///
/// An `Err` (or a panic) from any method is logged and becomes
/// `MQTTCLIENT_PERSISTENCE_ERROR` for the library: from `open`, `keys` or
/// `get` while the client is created, [`Client::create`](crate::Client::create)
/// fails with [`Error::Persistence`](crate::Error::Persistence) naming the
/// method and the error; from `put` while publishing, the library goes on
/// without the entry (the message is sent, but would not survive a crash), so
/// only the log shows it.
///
/// The methods are called on the application's threads and on the library's
/// background thread, one at a time, and must not call into the client.
///
/// ```no_run
/// use std::collections::HashMap;
/// use paho_mqtt_sync::{Client, ClientPersistence, DirStore, Persistence, PersistenceResult};
///
/// /// Keeps entries in memory (survives a reconnect, not a restart).
/// #[derive(Default)]
/// struct Memory(HashMap<String, Vec<u8>>);
///
/// impl ClientPersistence for Memory {
///     fn open(&mut self, _id: &str, _uri: &str) -> PersistenceResult<()> { Ok(()) }
///     fn close(&mut self) -> PersistenceResult<()> { Ok(()) }
///     fn put(&mut self, key: &str, buffers: &[&[u8]]) -> PersistenceResult<()> {
///         self.0.insert(key.to_owned(), buffers.concat());
///         Ok(())
///     }
///     fn get(&mut self, key: &str) -> PersistenceResult<Vec<u8>> {
///         Ok(self.0.get(key).cloned().ok_or("no such key")?)
///     }
///     fn remove(&mut self, key: &str) -> PersistenceResult<()> {
///         self.0.remove(key);
///         Ok(())
///     }
///     fn keys(&mut self) -> PersistenceResult<Vec<String>> { Ok(self.0.keys().cloned().collect()) }
///     fn clear(&mut self) -> PersistenceResult<()> { self.0.clear(); Ok(()) }
///     fn contains_key(&mut self, key: &str) -> PersistenceResult<bool> { Ok(self.0.contains_key(key)) }
/// }
///
/// # fn main() -> paho_mqtt_sync::Result<()> {
/// let _c = Client::create("tcp://127.0.0.1:1883", "board-1", Persistence::User(Box::new(Memory::default())))?;
/// // On a board: files that survive a power cut.
/// let _d = Client::create("tcp://127.0.0.1:1883", "board-2", Persistence::User(Box::new(DirStore::new("/data/mqtt"))))?;
/// # Ok(())
/// # }
/// ```
pub trait ClientPersistence: Send {
    /// Opens (or creates) the store for this client id and server URI
    /// (`Persistence_open`). Called once, when the client is created.
    fn open(&mut self, client_id: &str, server_uri: &str) -> PersistenceResult<()>;

    /// Closes the store (`Persistence_close`). Called once, when the client
    /// is destroyed (and only after a successful `open`).
    fn close(&mut self) -> PersistenceResult<()>;

    /// Stores the concatenation of `buffers` under `key`, replacing what was
    /// there (`Persistence_put`).
    fn put(&mut self, key: &str, buffers: &[&[u8]]) -> PersistenceResult<()>;

    /// The data stored under `key` (`Persistence_get`).
    fn get(&mut self, key: &str) -> PersistenceResult<Vec<u8>>;

    /// Removes `key` (`Persistence_remove`).
    fn remove(&mut self, key: &str) -> PersistenceResult<()>;

    /// Every key in the store (`Persistence_keys`).
    fn keys(&mut self) -> PersistenceResult<Vec<String>>;

    /// Removes every key (`Persistence_clear`).
    fn clear(&mut self) -> PersistenceResult<()>;

    /// Whether `key` is in the store (`Persistence_containskey`).
    fn contains_key(&mut self, key: &str) -> PersistenceResult<bool>;
}

/// What the trampolines reach through the `context` pointer.
struct Cell {
    store: Mutex<Box<dyn ClientPersistence>>,
    /// The first error of `open`, `keys` or `get` (the calls made while the
    /// client is created), for the `Error::Persistence` of a failed create.
    create_error: Mutex<Option<String>>,
}

/// A user store together with the `MQTTClient_persistence` table the library
/// keeps a pointer to. Both are heap allocations owned through raw pointers
/// (`Box::into_raw`), so moving a `UserStore` never invalidates the pointers
/// C holds; drop it only after `MQTTClient_destroy` (or after a create that
/// returned no handle).
pub(crate) struct UserStore {
    table: *mut ffi::MQTTClient_persistence,
    cell: *mut Cell,
}

impl UserStore {
    pub(crate) fn new(store: Box<dyn ClientPersistence>) -> UserStore {
        let cell = Box::into_raw(Box::new(Cell {
            store: Mutex::new(store),
            create_error: Mutex::new(None),
        }));
        let table = Box::into_raw(Box::new(ffi::MQTTClient_persistence {
            context: cell.cast(),
            popen: Some(p_open),
            pclose: Some(p_close),
            pput: Some(p_put),
            pget: Some(p_get),
            premove: Some(p_remove),
            pkeys: Some(p_keys),
            pclear: Some(p_clear),
            pcontainskey: Some(p_containskey),
        }));
        UserStore { table, cell }
    }

    /// The `persistence_context` for `MQTTClient_createWithOptions` with
    /// `MQTTCLIENT_PERSISTENCE_USER`: the table, valid while `self` lives.
    pub(crate) fn context(&self) -> *mut c_void {
        self.table.cast()
    }

    /// The first error reported while the client was created, if any.
    pub(crate) fn create_error(&self) -> Option<String> {
        // SAFETY: `cell` is a live allocation owned by `self` (freed in Drop).
        lock(&unsafe { &*self.cell }.create_error).clone()
    }
}

impl Drop for UserStore {
    fn drop(&mut self) {
        // SAFETY: both pointers come from `Box::into_raw` in `new` and are
        // freed once, here; the library no longer uses them (see the type).
        unsafe {
            drop(Box::from_raw(self.table));
            drop(Box::from_raw(self.cell));
        }
    }
}

// SAFETY: the table points into `cell`, which `self` owns; the store in it is
// `Send`, and only used behind its mutex.
unsafe impl Send for UserStore {}
// SAFETY: as above; `&UserStore` gives no access to the store but through
// the mutex.
unsafe impl Sync for UserStore {}

impl Cell {
    /// Runs `f` on the store: `Err` for an error or a panic, logged.
    fn call<T>(
        &self,
        op: &str,
        key: Option<&str>,
        f: impl FnOnce(&mut dyn ClientPersistence) -> PersistenceResult<T>,
    ) -> Option<T> {
        let what = match key {
            Some(k) => format!("{op}({k:?})"),
            None => format!("{op}()"),
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut store = lock(&self.store);
            f(&mut **store)
        }));
        let msg = match result {
            Ok(Ok(v)) => return Some(v),
            Ok(Err(e)) => format!("{what} failed: {e}"),
            Err(p) => format!("{what} panicked: {}", panic_text(&*p)),
        };
        log::error!("paho-mqtt-sync: persistence store: {msg}");
        if matches!(op, "open" | "keys" | "get") {
            lock(&self.create_error).get_or_insert(msg);
        }
        None
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned())
}

const OK: c_int = 0;
const ERR: c_int = ffi::MQTTCLIENT_PERSISTENCE_ERROR;

/// The cell behind a `context` or `handle` pointer.
///
/// # Safety
/// `p` is null or the `context` of a table made by [`UserStore::new`] whose
/// `UserStore` is still alive.
unsafe fn cell<'a>(p: *mut c_void) -> Option<&'a Cell> {
    // The store is user code and may take long (a DirStore syncs to disk):
    // readers of received messages should not wait for it.
    crate::idle::wake_deferred();
    // SAFETY: guaranteed by the caller.
    unsafe { p.cast::<Cell>().as_ref() }
}

/// A key or other string argument from C.
///
/// # Safety
/// `s` is null or a NUL-terminated string alive for `'a`.
unsafe fn text<'a>(s: *const c_char) -> Option<&'a str> {
    if s.is_null() {
        return None;
    }
    // SAFETY: guaranteed by the caller.
    let s = unsafe { CStr::from_ptr(s) };
    match s.to_str() {
        Ok(t) => Some(t),
        Err(_) => {
            log::error!("paho-mqtt-sync: persistence store: a key or name from the library is not UTF-8: {s:?}");
            None
        }
    }
}

/// Memory the library may `free()`.
///
/// The bundled build calls `MQTTClient_malloc`, the library's own
/// allocator (plain `malloc`: it is built with `HIGH_PERFORMANCE`, without
/// heap tracking). A system library may predate `MQTTClient_malloc` (Debian
/// 12's 1.3.11 has none; 1.3.16 has it), so it is looked up at run time
/// and used when present; otherwise memory comes from the C `malloc`. A
/// system library built with heap tracking (CMake's default) then cannot
/// find the block when it frees it: it logs an error and leaks it (the few
/// entries read when a client is created), but frees nothing it does not own.
fn c_alloc(size: usize) -> *mut c_void {
    #[cfg(feature = "bundled")]
    {
        // SAFETY: plain allocation; callers check for null.
        unsafe { ffi::MQTTClient_malloc(size) }
    }
    #[cfg(not(feature = "bundled"))]
    match library_malloc() {
        // SAFETY: plain allocation; callers check for null.
        Some(malloc) => unsafe { malloc(size) },
        // SAFETY: as above.
        None => unsafe { libc::malloc(size) },
    }
}

/// Frees what [`c_alloc`] returned, when the library will not.
///
/// # Safety
/// `p` comes from [`c_alloc`] and is not used afterwards.
unsafe fn c_free(p: *mut c_void) {
    #[cfg(not(feature = "bundled"))]
    if library_malloc().is_none() {
        // SAFETY: from libc::malloc (see c_alloc).
        unsafe { libc::free(p) };
        return;
    }
    // SAFETY: from MQTTClient_malloc, which MQTTClient_free matches.
    unsafe { ffi::MQTTClient_free(p) }
}

/// `MQTTClient_malloc` of the linked system library, if it has one.
#[cfg(not(feature = "bundled"))]
fn library_malloc() -> Option<unsafe extern "C" fn(usize) -> *mut c_void> {
    type Malloc = unsafe extern "C" fn(usize) -> *mut c_void;
    static FOUND: std::sync::OnceLock<Option<Malloc>> = std::sync::OnceLock::new();
    *FOUND.get_or_init(|| {
        // SAFETY: a NUL-terminated name; dlsym has no other preconditions.
        let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"MQTTClient_malloc".as_ptr()) };
        // SAFETY: when present, the symbol is `void* MQTTClient_malloc(size_t)`.
        (!sym.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, Malloc>(sym) })
    })
}

/// `len` bytes copied into memory the library frees (at least one byte, so
/// a null return always means out of memory).
fn c_copy(bytes: &[u8]) -> *mut c_char {
    let p = c_alloc(bytes.len().max(1)).cast::<u8>();
    if !p.is_null() {
        // SAFETY: `p` has room for `bytes.len()` bytes and does not overlap.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
    }
    p.cast()
}

unsafe extern "C" fn p_open(
    handle: *mut *mut c_void,
    client_id: *const c_char,
    server_uri: *const c_char,
    context: *mut c_void,
) -> c_int {
    // SAFETY: the library passes the table's context, alive with the store.
    let Some(c) = (unsafe { cell(context) }) else {
        return ERR;
    };
    // SAFETY: NUL-terminated strings owned by the library for the call.
    let (id, uri) = unsafe { (text(client_id), text(server_uri)) };
    let (Some(id), Some(uri)) = (id, uri) else {
        return ERR;
    };
    if handle.is_null() || c.call("open", None, |s| s.open(id, uri)).is_none() {
        return ERR;
    }
    // SAFETY: `handle` is the library's out pointer.
    unsafe { *handle = context };
    OK
}

unsafe extern "C" fn p_close(handle: *mut c_void) -> c_int {
    // The library calls close on destroy even when open failed (the handle
    // is then null): nothing was opened, nothing to close.
    // SAFETY: null or the context set by `p_open`.
    let Some(c) = (unsafe { cell(handle) }) else {
        return OK;
    };
    if c.call("close", None, |s| s.close()).is_some() {
        OK
    } else {
        ERR
    }
}

unsafe extern "C" fn p_put(
    handle: *mut c_void,
    key: *mut c_char,
    bufcount: c_int,
    buffers: *mut *mut c_char,
    buflens: *mut c_int,
) -> c_int {
    // SAFETY: the context set by `p_open`; the key is the library's string.
    let (Some(c), Some(k)) = (unsafe { cell(handle) }, unsafe { text(key) }) else {
        return ERR;
    };
    let n = usize::try_from(bufcount).unwrap_or(0);
    let mut parts: Vec<&[u8]> = Vec::with_capacity(n);
    if n > 0 && (buffers.is_null() || buflens.is_null()) {
        return ERR;
    }
    for i in 0..n {
        // SAFETY: the library passes `bufcount` pointers and lengths.
        let (p, len) = unsafe { (*buffers.add(i), *buflens.add(i)) };
        let len = usize::try_from(len).unwrap_or(0);
        if len == 0 || p.is_null() {
            parts.push(&[]);
        } else {
            // SAFETY: buffer `i` holds `len` bytes, alive for the call.
            parts.push(unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) });
        }
    }
    match c.call("put", Some(k), |s| s.put(k, &parts)) {
        Some(()) => OK,
        None => ERR,
    }
}

unsafe extern "C" fn p_get(
    handle: *mut c_void,
    key: *mut c_char,
    buffer: *mut *mut c_char,
    buflen: *mut c_int,
) -> c_int {
    // SAFETY: the context set by `p_open`; the key is the library's string.
    let (Some(c), Some(k)) = (unsafe { cell(handle) }, unsafe { text(key) }) else {
        return ERR;
    };
    if buffer.is_null() || buflen.is_null() {
        return ERR;
    }
    let Some(data) = c.call("get", Some(k), |s| s.get(k)) else {
        return ERR;
    };
    let data = match check_entry(k, &data) {
        Ok(()) => data,
        Err(why) => {
            log::warn!(
                "paho-mqtt-sync: persistence store: entry {k:?} is damaged ({why}); \
                 the library drops it and restores the others"
            );
            REJECTED.to_vec()
        }
    };
    let Ok(len) = c_int::try_from(data.len()) else {
        log::error!("paho-mqtt-sync: persistence store: entry {k:?} is too large");
        return ERR;
    };
    let p = c_copy(&data);
    if p.is_null() {
        return ERR;
    }
    // SAFETY: the library's out pointers; it frees the buffer with free().
    unsafe {
        *buffer = p;
        *buflen = len;
    }
    OK
}

unsafe extern "C" fn p_remove(handle: *mut c_void, key: *mut c_char) -> c_int {
    // SAFETY: the context set by `p_open`; the key is the library's string.
    let (Some(c), Some(k)) = (unsafe { cell(handle) }, unsafe { text(key) }) else {
        return ERR;
    };
    match c.call("remove", Some(k), |s| s.remove(k)) {
        Some(()) => OK,
        None => ERR,
    }
}

unsafe extern "C" fn p_keys(
    handle: *mut c_void,
    keys: *mut *mut *mut c_char,
    nkeys: *mut c_int,
) -> c_int {
    // SAFETY: the context set by `p_open`.
    let Some(c) = (unsafe { cell(handle) }) else {
        return ERR;
    };
    if keys.is_null() || nkeys.is_null() {
        return ERR;
    }
    let Some(list) = c.call("keys", None, |s| s.keys()) else {
        return ERR;
    };
    let list: Vec<String> = list
        .into_iter()
        .filter(|k| {
            let ok = !k.is_empty() && !k.contains('\0');
            if !ok {
                log::warn!("paho-mqtt-sync: persistence store: key {k:?} skipped (empty or with a NUL byte)");
            }
            ok && queue_entry_usable(c, k)
        })
        .collect();
    let Ok(n) = c_int::try_from(list.len()) else {
        return ERR;
    };
    if list.is_empty() {
        // SAFETY: the library's out pointers (it frees a null array fine).
        unsafe {
            *keys = ptr::null_mut();
            *nkeys = 0;
        }
        return OK;
    }
    let array = c_alloc(list.len() * size_of::<*mut c_char>()).cast::<*mut c_char>();
    if array.is_null() {
        return ERR;
    }
    for (i, k) in list.iter().enumerate() {
        let mut bytes = Vec::with_capacity(k.len() + 1);
        bytes.extend_from_slice(k.as_bytes());
        bytes.push(0);
        let s = c_copy(&bytes);
        if s.is_null() {
            for j in 0..i {
                // SAFETY: strings 0..i and the array come from c_alloc.
                unsafe { c_free((*array.add(j)).cast()) };
            }
            // SAFETY: as above.
            unsafe { c_free(array.cast()) };
            return ERR;
        }
        // SAFETY: `array` has room for `list.len()` pointers.
        unsafe { *array.add(i) = s };
    }
    // SAFETY: the library's out pointers; it frees strings and array with free().
    unsafe {
        *keys = array;
        *nkeys = n;
    }
    OK
}

unsafe extern "C" fn p_clear(handle: *mut c_void) -> c_int {
    // SAFETY: the context set by `p_open`.
    let Some(c) = (unsafe { cell(handle) }) else {
        return ERR;
    };
    match c.call("clear", None, |s| s.clear()) {
        Some(()) => OK,
        None => ERR,
    }
}

unsafe extern "C" fn p_containskey(handle: *mut c_void, key: *mut c_char) -> c_int {
    // SAFETY: the context set by `p_open`; the key is the library's string.
    let (Some(c), Some(k)) = (unsafe { cell(handle) }, unsafe { text(key) }) else {
        return ERR;
    };
    match c.call("contains_key", Some(k), |s| s.contains_key(k)) {
        Some(true) => OK,
        _ => ERR,
    }
}

/// Whether a key is not a queue entry (`q-`, `q5-`), or one the library can
/// read: it parses queue entries without any bounds check, and stops
/// restoring the queue at the first entry it cannot get, so a damaged one is
/// logged, removed from the store and left out of the key list here.
fn queue_entry_usable(c: &Cell, key: &str) -> bool {
    if !matches!(key.split('-').next(), Some("q" | "q5")) {
        return true;
    }
    let Some(data) = c.call("get", Some(key), |s| s.get(key)) else {
        return false;
    };
    match check_queue_entry(key, &data) {
        Ok(()) => true,
        Err(why) => {
            log::warn!(
                "paho-mqtt-sync: persistence store: entry {key:?} is damaged ({why}); removed"
            );
            let _ = c.call("remove", Some(key), |s| s.remove(key));
            false
        }
    }
}

/// Checks a stored queue entry (a received message not yet handed to the
/// application), laid out by `MQTTPersistence_persistQueueEntry` as C `int`s
/// in the machine's byte order: payload length, payload, QoS, retained, dup,
/// packet id, topic with its NUL, topic length (MQTT 5: then properties).
pub(crate) fn check_queue_entry(key: &str, data: &[u8]) -> std::result::Result<(), String> {
    const INT: usize = size_of::<c_int>();
    let int_at = |at: usize| -> Option<c_int> {
        let b = data.get(at..at + INT)?;
        Some(c_int::from_ne_bytes(b.try_into().ok()?))
    };
    let payload_len = int_at(0).ok_or("shorter than a payload length")?;
    let payload_len =
        usize::try_from(payload_len).map_err(|_| format!("payload length {payload_len}"))?;
    let topic_at = INT
        .checked_add(payload_len)
        .and_then(|n| n.checked_add(4 * INT))
        .filter(|&n| n <= data.len())
        .ok_or("shorter than its payload")?;
    let nul = data[topic_at..]
        .iter()
        .position(|&b| b == 0)
        .ok_or("topic without its NUL")?;
    let end = topic_at + nul + 1 + INT;
    let v5 = key.starts_with("q5-");
    if end > data.len() || (!v5 && end != data.len()) {
        return Err(format!("{} bytes, the fields need {end}", data.len()));
    }
    // The library copies the topic up to its NUL but hands on the stored
    // length, and the message callback reads that many bytes.
    let topic_len = int_at(topic_at + nul + 1).ok_or("no topic length")?;
    if usize::try_from(topic_len).map_or(true, |n| n > nul) {
        return Err(format!("topic length {topic_len} for a {nul}-byte topic"));
    }
    Ok(())
}

/// What the library gets instead of a damaged entry: a packet of type 0,
/// which `MQTTPersistence_restorePacket` turns into "bad persisted record"
/// (it returns no packet), so the library removes the entry and goes on.
const REJECTED: [u8; 2] = [0, 0];

/// Checks the framing of a stored MQTT packet before the library parses it:
/// `MQTTPersistence_restorePacket` reads the fixed header and its
/// remaining-length bytes without looking at the buffer's length, and
/// `MQTTPacket_publish` reads the packet id without a bound. Only the keys
/// of stored packets (`s-`, `sc-`, `r-` and their MQTT 5 forms) are
/// checked; `q-` queue entries and `c-` (the library's own) are passed on as
/// they are, and any other key is rejected: `MQTTPersistence_restorePackets`
/// parses every key but `c-` and `q-` as a packet, so a stray entry would be
/// read as one.
pub(crate) fn check_entry(key: &str, data: &[u8]) -> std::result::Result<(), String> {
    let stem = key.split('-').next().unwrap_or("");
    let expect = match stem {
        "s" | "s5" | "r" | "r5" => 3, // PUBLISH
        "sc" | "sc5" => 6,            // PUBREL
        "q" | "q5" | "c" | "c5" => return Ok(()),
        _ => return Err(format!("{key:?} is not an entry the library writes")),
    };
    let Some(&first) = data.first() else {
        return Err("empty".into());
    };
    let kind = first >> 4;
    if kind != expect {
        return Err(format!("packet type {kind}, expected {expect}"));
    }
    let mut remaining: usize = 0;
    let mut i = 1;
    loop {
        if i > 4 {
            return Err("remaining length longer than 4 bytes".into());
        }
        let Some(&b) = data.get(i) else {
            return Err("truncated in the fixed header".into());
        };
        remaining |= usize::from(b & 127) << (7 * (i - 1));
        i += 1;
        if b & 128 == 0 {
            break;
        }
    }
    if i + remaining != data.len() {
        return Err(format!(
            "{} bytes, the header says {}",
            data.len(),
            i + remaining
        ));
    }
    let body = &data[i..];
    if expect == 6 {
        // Packet id (MQTT 5: and maybe a reason code and properties).
        return if body.len() >= 2 {
            Ok(())
        } else {
            Err("PUBREL without a packet id".into())
        };
    }
    let qos = (first >> 1) & 3;
    if qos == 3 {
        return Err("PUBLISH with QoS 3".into());
    }
    let Some(topic_len) = body
        .get(..2)
        .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    else {
        return Err("PUBLISH without a topic length".into());
    };
    let id_len = if qos > 0 { 2 } else { 0 };
    if 2 + topic_len + id_len > body.len() {
        return Err("PUBLISH shorter than its topic and packet id".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_entry;

    #[test]
    fn entries_are_checked_before_the_library_parses_them() {
        // PUBLISH QoS 1, topic "a", packet id 1, payload "x".
        let good = [0x32, 6, 0, 1, b'a', 0, 1, b'x'];
        assert_eq!(check_entry("s-1", &good), Ok(()));
        assert!(check_entry("s-1", &good[..5]).is_err());
        assert!(check_entry("s-1", &[]).is_err());
        assert!(check_entry("s-1", &[0x32]).is_err());
        assert!(check_entry("s-1", &[0x32, 0xff, 0xff, 0xff, 0xff, 0x7f]).is_err());
        assert!(check_entry("s-1", &[0x62, 2, 0, 1]).is_err(), "wrong type");
        assert!(
            check_entry("s-1", &[0x32, 3, 0, 9, b'a']).is_err(),
            "topic too long"
        );
        assert!(
            check_entry("s-1", &[0x32, 3, 0, 1, b'a']).is_err(),
            "no packet id"
        );
        assert_eq!(check_entry("sc-1", &[0x62, 2, 0, 1]), Ok(()));
        assert!(check_entry("sc-1", &[0x62, 1, 0]).is_err());
        assert_eq!(check_entry("q-1", b"anything"), Ok(()));
    }

    #[test]
    fn queue_entries_are_checked() {
        use super::check_queue_entry;
        let int = |v: i32| v.to_ne_bytes().to_vec();
        let mut good = int(2);
        good.extend(b"hi");
        for v in [1, 0, 0, 7] {
            good.extend(int(v));
        }
        good.extend(b"a/b\0");
        good.extend(int(3));
        assert_eq!(check_queue_entry("q-1", &good), Ok(()));
        for cut in [0, 3, 6, good.len() - 4, good.len() - 1] {
            assert!(
                check_queue_entry("q-1", &good[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut huge = good.clone();
        huge[..4].copy_from_slice(&int(i32::MAX));
        assert!(check_queue_entry("q-1", &huge).is_err());
        huge[..4].copy_from_slice(&int(-5));
        assert!(check_queue_entry("q-1", &huge).is_err());
        let mut longer = good.clone();
        longer.push(0);
        assert!(check_queue_entry("q-1", &longer).is_err());
        assert_eq!(check_queue_entry("q5-1", &longer), Ok(()));
        // A stored topic length beyond the topic's NUL would be read past.
        let mut long_topic = good.clone();
        let at = long_topic.len() - 4;
        long_topic[at..].copy_from_slice(&int(4));
        assert!(check_queue_entry("q-1", &long_topic).is_err());
        long_topic[at..].copy_from_slice(&int(-1));
        assert!(check_queue_entry("q-1", &long_topic).is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        use super::check_entry;
        assert!(check_entry("notes", b"x").is_err());
        assert!(check_entry("x-1", b"x").is_err());
        assert_eq!(check_entry("c5-1", b"anything"), Ok(()));
    }
}
