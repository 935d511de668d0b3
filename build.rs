//! Build script: picks the FFI bindings for the target and tells rustc which
//! Paho C library to link.
//!
//! * Feature `bundled` (default): Paho C 1.3.16 is compiled here, with `cc`,
//!   from the sources in the `paho-mqtt-sys` package, after applying our fixes
//!   (`paho-mqtt-c/fixes/*.patch`), into a static `libpaho-mqtt3c.a`
//!   (`libpaho-mqtt3cs.a` with `ssl`); see `paho-mqtt-c/build/bundled.rs`.
//! * Without `bundled`: the system or board library is linked
//!   (`libpaho-mqtt3c.so` from Debian's `libpaho-mqtt-dev`, or the directory in
//!   `PAHO_MQTT_C_LIB_DIR`; `PAHO_MQTT_C_STATIC=1` links the `.a` instead).
//! * Feature `build_bindgen`: bindings are generated now from the headers in
//!   `PAHO_MQTT_C_INCLUDE_DIR` (or `/usr/include`, `/usr/local/include`),
//!   instead of using the committed files under `paho-mqtt-c/bindings/`.

use std::env;
use std::path::PathBuf;

#[cfg(feature = "bundled")]
#[path = "paho-mqtt-c/build/bundled.rs"]
mod bundled;
#[cfg(feature = "bundled")]
#[path = "paho-mqtt-c/build/patch.rs"]
mod patch;

/// The Paho C release the committed bindings were generated from.
const BINDINGS_VERSION: &str = "1.3.16";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=paho-mqtt-c/wrapper.h");
    for var in [
        "PAHO_MQTT_C_LIB_DIR",
        "PAHO_MQTT_C_INCLUDE_DIR",
        "PAHO_MQTT_C_STATIC",
        "PAHO_MQTT_SYNC_WRITE_BINDINGS",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    let bindings = bindings_path();
    println!("cargo:rerun-if-changed={}", bindings.display());
    println!(
        "cargo:rustc-env=PAHO_MQTT_SYNC_BINDINGS={}",
        bindings.display()
    );
    println!("cargo:rustc-env=PAHO_MQTT_SYNC_BINDINGS_VERSION={BINDINGS_VERSION}");
    // The target triple, for tests that start target binaries themselves
    // (through CARGO_TARGET_<TRIPLE>_RUNNER, e.g. qemu-user, when cross-testing).
    let target = env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=PAHO_MQTT_SYNC_TARGET={target}");

    link();
}

fn ssl() -> bool {
    env::var_os("CARGO_FEATURE_SSL").is_some()
}

fn link() {
    let lib = if ssl() { "paho-mqtt3cs" } else { "paho-mqtt3c" };
    if cfg!(feature = "bundled") {
        // Emits the link instructions for the library it builds.
        #[cfg(feature = "bundled")]
        bundled::build(&manifest_dir(), ssl());
    } else {
        let kind = match env::var("PAHO_MQTT_C_STATIC").as_deref() {
            Ok("1") | Ok("yes") | Ok("true") => "static",
            _ => "dylib",
        };
        if let Some(dir) = env::var_os("PAHO_MQTT_C_LIB_DIR") {
            let dir = PathBuf::from(dir);
            if !dir.is_dir() {
                fail(&format!(
                    "PAHO_MQTT_C_LIB_DIR={} is not a directory",
                    dir.display()
                ));
            }
            println!("cargo:rustc-link-search=native={}", dir.display());
        }
        println!("cargo:rustc-link-lib={kind}={lib}");
    }
    // With `vendored-openssl`, `openssl-sys` links the OpenSSL it built
    // (statically); otherwise the system's (or the board's) is linked.
    if ssl() && env::var_os("CARGO_FEATURE_VENDORED_OPENSSL").is_none() {
        println!("cargo:rustc-link-lib=ssl");
        println!("cargo:rustc-link-lib=crypto");
    }
}

/// Which committed bindings file serves a target. The Paho structs hold only
/// `int`, `unsigned`, `size_t`, pointers and `char` arrays, so their layout
/// depends on the architecture's C ABI, not on the libc flavour (gnu/musl).
#[cfg_attr(feature = "build_bindgen", allow(dead_code))]
fn committed_bindings_for(arch: &str, os: &str) -> Option<&'static str> {
    if os != "linux" {
        return None;
    }
    match arch {
        "x86_64" => Some("x86_64-unknown-linux-gnu"),
        "aarch64" => Some("aarch64-unknown-linux-gnu"),
        // armv7 and armv6 (arm-unknown-linux-gnueabihf) share the AAPCS layout.
        "arm" => Some("armv7-unknown-linux-gnueabihf"),
        _ => None,
    }
}

#[cfg(not(feature = "build_bindgen"))]
fn bindings_path() -> PathBuf {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target = env::var("TARGET").unwrap_or_default();
    let Some(name) = committed_bindings_for(&arch, &os) else {
        fail(&format!(
            "no pre-generated Paho C bindings for target `{target}` (committed: x86_64, \
             aarch64 and 32-bit ARM Linux). Enable the `build_bindgen` feature to generate \
             them from your Paho C headers (PAHO_MQTT_C_INCLUDE_DIR)."
        ));
    };
    let path = manifest_dir()
        .join("paho-mqtt-c/bindings")
        .join(format!("bindings_paho_mqtt_c_{BINDINGS_VERSION}-{name}.rs"));
    if !path.is_file() {
        fail(&format!("bindings file {} is missing", path.display()));
    }
    path
}

#[cfg(feature = "build_bindgen")]
fn bindings_path() -> PathBuf {
    let include = find_headers();
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("bindings.rs");
    let wrapper = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("paho-mqtt-c/wrapper.h");
    let bindings = bindgen::Builder::default()
        .header(wrapper.display().to_string())
        .clang_arg(format!("-I{}", include.display()))
        .allowlist_function("MQTTClient_.*")
        .allowlist_function("MQTTResponse_.*")
        .allowlist_function("MQTTProperties_.*")
        .allowlist_function("MQTTProperty_.*")
        .allowlist_function("MQTTReasonCode_.*")
        .allowlist_type("MQTTClient.*")
        .allowlist_type("MQTTResponse.*")
        .allowlist_type("MQTTProperty.*")
        .allowlist_type("MQTTProperties")
        .allowlist_type("MQTTReasonCodes")
        .allowlist_type("MQTTSubscribe_options")
        .allowlist_type("MQTTCLIENT_.*")
        .allowlist_type("Persistence_.*")
        .allowlist_var("MQTTCLIENT_.*")
        .allowlist_var("MQTTVERSION_.*")
        .allowlist_var("MQTT_BAD_SUBSCRIBE")
        .allowlist_var("MQTT_SSL_VERSION_.*")
        .allowlist_var("MQTT_INVALID_PROPERTY_ID")
        .allowlist_var("PAHO_MEMORY_ERROR")
        .allowlist_var("MQTTCLIENT_PERSISTENCE_.*")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .default_macro_constant_type(bindgen::MacroTypeVariation::Signed)
        .prepend_enum_name(false)
        .layout_tests(true)
        .derive_default(false)
        .generate_comments(false)
        .generate()
        .unwrap_or_else(|e| fail(&format!("bindgen failed on {}: {e}", include.display())));
    bindings
        .write_to_file(&out)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", out.display())));
    if let Some(copy) = env::var_os("PAHO_MQTT_SYNC_WRITE_BINDINGS") {
        std::fs::copy(&out, &copy).unwrap_or_else(|e| {
            fail(&format!(
                "cannot copy bindings to {}: {e}",
                PathBuf::from(&copy).display()
            ))
        });
    }
    out
}

#[cfg(feature = "build_bindgen")]
fn find_headers() -> PathBuf {
    let candidates: Vec<PathBuf> = match env::var_os("PAHO_MQTT_C_INCLUDE_DIR") {
        Some(dir) => vec![PathBuf::from(dir)],
        None => vec!["/usr/include".into(), "/usr/local/include".into()],
    };
    for dir in &candidates {
        println!(
            "cargo:rerun-if-changed={}",
            dir.join("MQTTClient.h").display()
        );
        if dir.join("MQTTClient.h").is_file() {
            return dir.clone();
        }
    }
    fail(&format!(
        "feature build_bindgen: MQTTClient.h not found in {candidates:?}; set \
         PAHO_MQTT_C_INCLUDE_DIR to the directory holding the Paho C headers"
    ))
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
}

fn fail(msg: &str) -> ! {
    eprintln!("error: paho-mqtt-sync: {msg}");
    std::process::exit(1)
}
