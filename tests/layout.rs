//! Struct layouts: the Rust bindings against the C compiler of the same target.
//!
//! The committed bindings are per target (`paho-mqtt-c/bindings/`), and
//! bindgen's compile-time asserts inside them only prove that Rust agrees with
//! what *clang* said when the file was generated. These tests close the loop
//! with the compiler that built the library actually linked:
//! `paho-mqtt-c/layout/layout.c`, built by the target's gcc against the Paho C
//! headers in use and run on the target (under qemu-user for ARM), prints a
//! table of `sizeof` / `alignof` / `offsetof` facts; [`rust_table`] prints
//! the same table from the bindings, and [`c_layout_matches_rust`] compares
//! the two.
//!
//! `c_layout_matches_rust` is `#[ignore]`d because it needs that C output:
//! `scripts/layout-check.sh [--system] [<target>]` builds and runs the C
//! program and then runs this test with `PAHO_MQTT_SYNC_C_LAYOUT=<file>`.
//! Run by hand without the variable it fails, on purpose.

use paho_mqtt_sync::ffi::*;
use std::collections::{BTreeMap, BTreeSet};
use std::mem::{align_of, offset_of, size_of};

/// The layout facts, keyed like layout.c prints them: `sizeof <type>`,
/// `alignof <type>`, `offsetof <type>.<field path>`.
#[derive(Default)]
struct Table {
    facts: BTreeMap<String, usize>,
    /// Rust type names whose layout the table checks.
    covered: BTreeSet<&'static str>,
}

impl Table {
    fn insert(&mut self, key: String, value: usize) {
        let dup = self.facts.insert(key.clone(), value);
        assert!(dup.is_none(), "{key} listed twice in the Rust table");
    }

    /// Size and alignment of `T`, named `name` as layout.c names it.
    fn ty<T>(&mut self, name: &str) {
        self.insert(format!("sizeof {name}"), size_of::<T>());
        self.insert(format!("alignof {name}"), align_of::<T>());
        self.covers::<T>();
    }

    fn covers<T>(&mut self) {
        let full = std::any::type_name::<T>();
        self.covered
            .insert(full.rsplit("::").next().unwrap_or(full));
    }

    fn field(&mut self, path: &str, offset: usize) {
        self.insert(format!("offsetof {path}"), offset);
    }
}

/// `offsetof` lines for fields of `$ty`, named `$prefix.<field>` and counted
/// from `$base` (the offset of `$ty` inside the outermost C struct).
macro_rules! fields {
    ($t:ident, $ty:ident => $($f:ident),* $(,)?) => {
        $t.ty::<$ty>(stringify!($ty));
        fields!($t, stringify!($ty), 0; $ty => $($f),*);
    };
    ($t:ident, $prefix:expr, $base:expr; $ty:ty => $($f:ident),* $(,)?) => {
        $( $t.field(&format!("{}.{}", $prefix, stringify!($f)), $base + offset_of!($ty, $f)); )*
    };
}

/// The layout of every type in the bindings that crosses the FFI boundary,
/// in layout.c's terms.
fn rust_table() -> Table {
    let mut t = Table::default();

    t.ty::<MQTTClient>("MQTTClient");
    t.ty::<MQTTClient_deliveryToken>("MQTTClient_deliveryToken");
    t.ty::<MQTTClient_token>("MQTTClient_token");
    t.ty::<MQTTPropertyCodes>("MQTTPropertyCodes");
    t.ty::<MQTTPropertyTypes>("MQTTPropertyTypes");
    t.ty::<MQTTReasonCodes>("MQTTReasonCodes");
    t.ty::<MQTTCLIENT_TRACE_LEVELS>("MQTTCLIENT_TRACE_LEVELS");
    t.ty::<MQTTClient_traceCallback>("MQTTClient_traceCallback");
    t.ty::<MQTTClient_messageArrived>("MQTTClient_messageArrived");

    fields!(t, MQTTLenString => len, data);

    fields!(t, MQTTProperty => identifier, value);
    let value = offset_of!(MQTTProperty, value);
    t.ty::<MQTTProperty__bindgen_ty_1>("MQTTProperty.value");
    fields!(t, "MQTTProperty.value", value;
        MQTTProperty__bindgen_ty_1 => byte, integer2, integer4);
    // The anonymous struct inside the union: C reaches its fields as
    // `value.data` / `value.value`, Rust through `__bindgen_anon_1`.
    let anon = value + offset_of!(MQTTProperty__bindgen_ty_1, __bindgen_anon_1);
    t.covers::<MQTTProperty__bindgen_ty_1__bindgen_ty_1>();
    fields!(t, "MQTTProperty.value", anon;
        MQTTProperty__bindgen_ty_1__bindgen_ty_1 => data, value);

    fields!(t, MQTTProperties => count, max_count, length, array);

    fields!(t, MQTTSubscribe_options =>
        struct_id, struct_version, noLocal, retainAsPublished, retainHandling);

    fields!(t, MQTTClient_persistence =>
        context, popen, pclose, pput, pget, premove, pkeys, pclear, pcontainskey);

    fields!(t, MQTTClient_init_options => struct_id, struct_version, do_openssl_init);

    fields!(t, MQTTClient_message =>
        struct_id, struct_version, payloadlen, payload, qos, retained, dup, msgid, properties);

    fields!(t, MQTTClient_createOptions => struct_id, struct_version, MQTTVersion);

    fields!(t, MQTTClient_willOptions =>
        struct_id, struct_version, topicName, message, retained, qos, payload);
    t.ty::<MQTTClient_willOptions__bindgen_ty_1>("MQTTClient_willOptions.payload");
    fields!(t, "MQTTClient_willOptions.payload", offset_of!(MQTTClient_willOptions, payload);
        MQTTClient_willOptions__bindgen_ty_1 => len, data);

    fields!(t, MQTTClient_SSLOptions =>
        struct_id, struct_version, trustStore, keyStore, privateKey, privateKeyPassword,
        enabledCipherSuites, enableServerCertAuth, sslVersion, verify, CApath, ssl_error_cb,
        ssl_error_context, ssl_psk_cb, ssl_psk_context, disableDefaultTrustStore, protos,
        protos_len);

    fields!(t, MQTTClient_nameValue => name, value);

    fields!(t, MQTTClient_connectOptions =>
        struct_id, struct_version, keepAliveInterval, cleansession, reliable, will, username,
        password, connectTimeout, retryInterval, ssl, serverURIcount, serverURIs, MQTTVersion,
        returned, binarypwd, maxInflightMessages, cleanstart, httpHeaders, httpProxy, httpsProxy);
    t.ty::<MQTTClient_connectOptions__bindgen_ty_1>("MQTTClient_connectOptions.returned");
    fields!(t, "MQTTClient_connectOptions.returned",
        offset_of!(MQTTClient_connectOptions, returned);
        MQTTClient_connectOptions__bindgen_ty_1 => serverURI, MQTTVersion, sessionPresent);
    t.ty::<MQTTClient_connectOptions__bindgen_ty_2>("MQTTClient_connectOptions.binarypwd");
    fields!(t, "MQTTClient_connectOptions.binarypwd",
        offset_of!(MQTTClient_connectOptions, binarypwd);
        MQTTClient_connectOptions__bindgen_ty_2 => len, data);

    fields!(t, MQTTResponse =>
        version, reasonCode, reasonCodeCount, reasonCodes, properties);

    t
}

/// Parses layout.c's output: `<kind> <name> <bytes>` lines, `#` comments.
fn parse_c_table(text: &str) -> Result<BTreeMap<String, usize>, String> {
    let mut facts = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || format!("line {}: cannot parse {line:?}", n + 1);
        let mut parts = line.split_whitespace();
        let (Some(kind), Some(name), Some(value), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if !matches!(kind, "sizeof" | "alignof" | "offsetof") {
            return Err(bad());
        }
        let value: usize = value.parse().map_err(|_| bad())?;
        if facts.insert(format!("{kind} {name}"), value).is_some() {
            return Err(format!("line {}: {kind} {name} printed twice", n + 1));
        }
    }
    Ok(facts)
}

/// Every difference between the two tables, one per line.
fn differences(rust: &BTreeMap<String, usize>, c: &BTreeMap<String, usize>) -> Vec<String> {
    let mut out = Vec::new();
    for (key, r) in rust {
        match c.get(key) {
            Some(c) if c == r => {}
            Some(c) => out.push(format!("{key}: Rust {r}, C {c}")),
            None => out.push(format!("{key}: Rust {r}, missing from the C output")),
        }
    }
    for (key, c) in c {
        if !rust.contains_key(key) {
            out.push(format!("{key}: C {c}, missing from the Rust table"));
        }
    }
    out
}

#[test]
#[ignore = "needs PAHO_MQTT_SYNC_C_LAYOUT (the output of paho-mqtt-c/layout/layout.c built for \
            this target): run scripts/layout-check.sh"]
fn c_layout_matches_rust() {
    let path = std::env::var_os("PAHO_MQTT_SYNC_C_LAYOUT").unwrap_or_else(|| {
        panic!(
            "PAHO_MQTT_SYNC_C_LAYOUT is not set: this test compares the Rust bindings with the \
             output of paho-mqtt-c/layout/layout.c built by the target's C compiler; run \
             scripts/layout-check.sh"
        )
    });
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read PAHO_MQTT_SYNC_C_LAYOUT={path:?}: {e}"));
    let c = parse_c_table(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let rust = rust_table().facts;
    let diff = differences(&rust, &c);
    assert!(
        diff.is_empty(),
        "Rust bindings ({}) and the C compiler disagree on {} of {} layout facts:\n  {}",
        std::env::consts::ARCH,
        diff.len(),
        rust.len(),
        diff.join("\n  ")
    );
    println!(
        "{}: {} layout facts agree ({} types)",
        std::env::consts::ARCH,
        rust.len(),
        rust.keys().filter(|k| k.starts_with("sizeof ")).count()
    );
}

/// The table misses no struct or union of the bindings this build uses, so
/// a type added by a future bindings regeneration cannot go unchecked.
#[test]
fn every_bindings_struct_is_in_the_table() {
    let bindings = include_str!(env!("PAHO_MQTT_SYNC_BINDINGS"));
    let table = rust_table();
    let mut missing = Vec::new();
    let mut seen = 0;
    for line in bindings.lines() {
        let rest = line
            .strip_prefix("pub struct ")
            .or_else(|| line.strip_prefix("pub union "));
        if let Some(name) = rest.and_then(|r| r.split([' ', '{']).next()) {
            seen += 1;
            if !table.covered.contains(name) {
                missing.push(name);
            }
        }
    }
    assert!(
        seen >= 18,
        "only {seen} structs found in the bindings: parser out of date?"
    );
    assert!(
        missing.is_empty(),
        "not in tests/layout.rs and layout.c: {missing:?}"
    );
}

/// The comparison itself: a mismatch, a missing and an extra fact are each
/// reported, and malformed C output is an error, not a silent pass.
#[test]
fn comparison_reports_every_kind_of_difference() {
    let rust = rust_table().facts;
    let mut text: String = rust.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
    let c = parse_c_table(&format!("# comment\n\n{text}")).unwrap();
    assert!(differences(&rust, &c).is_empty());

    text = text.replacen(
        "sizeof MQTTClient_message ",
        "sizeof MQTTClient_message 1",
        1,
    );
    text = text.replace(
        "offsetof MQTTResponse.properties",
        "offsetof MQTTResponse.extra",
    );
    let diff = differences(&rust, &parse_c_table(&text).unwrap());
    assert_eq!(diff.len(), 3, "{diff:#?}");
    assert!(diff
        .iter()
        .any(|d| d.starts_with("offsetof MQTTResponse.extra: C")));
    assert!(diff
        .iter()
        .any(|d| d.starts_with("offsetof MQTTResponse.properties: Rust")));
    assert!(diff
        .iter()
        .any(|d| d.starts_with("sizeof MQTTClient_message: Rust")));

    assert!(parse_c_table("sizeof X").is_err());
    assert!(parse_c_table("sizeof X eight").is_err());
    assert!(parse_c_table("weight X 8").is_err());
    assert!(parse_c_table("sizeof X 8\nsizeof X 8").is_err());
}
