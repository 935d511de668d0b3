//! The `bundled` build: compiles Paho C from the sources shipped in the
//! `paho-mqtt-sys` package, with our fixes (`paho-mqtt-c/fixes/*.patch`)
//! applied, into a static `libpaho-mqtt3c.a` (or `libpaho-mqtt3cs.a`).
//!
//! `paho-mqtt-sys` is a dependency only so that Cargo downloads (and pins)
//! those sources: it is built without its `bundled` feature, so it runs no
//! CMake, and this crate never refers to it, so nothing of it is linked.
//! Cargo gives a build script no path to another package's files; the sources
//! are looked up where Cargo puts packages (see [`find_sources`]), or taken
//! from `PAHO_MQTT_C_SOURCE_DIR`.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use crate::patch;
use crate::{fail, BINDINGS_VERSION};

/// The `paho-mqtt-sys` release whose sources are compiled (pinned with `=` in
/// Cargo.toml); it ships Paho C [`BINDINGS_VERSION`].
const SYS_PACKAGE: &str = "paho-mqtt-sys-0.11.0";

/// The sources of `libpaho-mqtt3c` (src/CMakeLists.txt: `common_src` without
/// the tracing-only StackTrace.c and Heap.c, which `HIGH_PERFORMANCE` leaves
/// out, plus MQTTClient.c).
const SOURCES: &[&str] = &[
    "MQTTTime.c",
    "MQTTProtocolClient.c",
    "Clients.c",
    "utf-8.c",
    "MQTTPacket.c",
    "MQTTPacketOut.c",
    "Messages.c",
    "Tree.c",
    "Socket.c",
    "Log.c",
    "MQTTPersistence.c",
    "Thread.c",
    "MQTTProtocolOut.c",
    "MQTTPersistenceDefault.c",
    "SocketBuffer.c",
    "LinkedList.c",
    "MQTTProperties.c",
    "MQTTReasonCodes.c",
    "Base64.c",
    "SHA1.c",
    "WebSocket.c",
    "Proxy.c",
    "MQTTClient.c",
];

pub fn build(manifest_dir: &Path, ssl: bool) {
    println!("cargo:rerun-if-env-changed=PAHO_MQTT_C_SOURCE_DIR");
    let upstream = find_sources(manifest_dir);
    check_version(&upstream);
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("paho-mqtt-c");
    let src = out.join("src");
    let _ = fs::remove_dir_all(&out);
    fs::create_dir_all(&src).unwrap_or_else(|e| fail(&format!("{}: {e}", src.display())));
    for entry in read_dir(&upstream.join("src")) {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".c") || name.ends_with(".h") {
            copy(&entry.path(), &src.join(&*name));
        }
    }
    apply_fixes(&manifest_dir.join("paho-mqtt-c/fixes"), &out);
    write(
        &out.join("VersionInfo.h"),
        &format!(
            "#define BUILD_TIMESTAMP \"paho-mqtt-sync bundled build\"\n\
             #define CLIENT_VERSION \"{BINDINGS_VERSION}\"\n"
        ),
    );

    let mut cc = cc::Build::new();
    cc.include(&out)
        .include(&src)
        .define("_GNU_SOURCE", None)
        .define("PAHO_MQTT_STATIC", "1")
        .define("HIGH_PERFORMANCE", "1")
        .define("UNIXSOCK", "1")
        .flag_if_supported("-fvisibility=hidden")
        .flag_if_supported("-std=gnu99")
        // Upstream code, compiled as upstream compiles it.
        .warnings(false);
    for file in SOURCES {
        cc.file(src.join(file));
    }
    if ssl {
        cc.define("OPENSSL", "1").file(src.join("SSLSocket.c"));
        if let Some(include) = env::var_os("DEP_OPENSSL_INCLUDE") {
            cc.include(include);
        }
    }
    cc.compile(if ssl { "paho-mqtt3cs" } else { "paho-mqtt3c" });
}

/// Where the Paho C sources (the `paho.mqtt.c` directory) are: the
/// directory in `PAHO_MQTT_C_SOURCE_DIR`, or the `paho-mqtt-sys` package next
/// to this one (a registry's or `cargo vendor`'s layout), or in Cargo's
/// registry cache (this crate built from a git checkout).
fn find_sources(manifest_dir: &Path) -> PathBuf {
    if let Some(dir) = env::var_os("PAHO_MQTT_C_SOURCE_DIR") {
        let dir = PathBuf::from(dir);
        if !dir.join("src/MQTTClient.c").is_file() {
            fail(&format!(
                "PAHO_MQTT_C_SOURCE_DIR={} has no src/MQTTClient.c",
                dir.display()
            ));
        }
        return dir;
    }
    let mut candidates = Vec::new();
    if let Some(parent) = manifest_dir.parent() {
        candidates.push(parent.join(SYS_PACKAGE));
        candidates.push(parent.join("paho-mqtt-sys"));
    }
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(registry) = cargo_home.map(|h| h.join("registry/src")) {
        if let Ok(indexes) = fs::read_dir(&registry) {
            let mut indexes: Vec<_> = indexes.flatten().map(|e| e.path()).collect();
            indexes.sort();
            candidates.extend(indexes.into_iter().map(|i| i.join(SYS_PACKAGE)));
        }
    }
    for package in &candidates {
        let dir = package.join("paho.mqtt.c");
        if dir.join("src/MQTTClient.c").is_file() {
            println!("cargo:rerun-if-changed={}", dir.join("src").display());
            return dir;
        }
    }
    fail(&format!(
        "the Paho C sources of {SYS_PACKAGE} were not found (looked in {candidates:?}). \
         Set PAHO_MQTT_C_SOURCE_DIR to a paho.mqtt.c {BINDINGS_VERSION} directory, or \
         build without the `bundled` feature to link an installed Paho C."
    ))
}

/// The sources must be the release our fixes and bindings are made for.
fn check_version(dir: &Path) {
    let part = |name: &str| {
        fs::read_to_string(dir.join(name))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let found = [
        part("version.major"),
        part("version.minor"),
        part("version.patch"),
    ]
    .join(".");
    if found != BINDINGS_VERSION {
        fail(&format!(
            "{} holds Paho C {found}, the bundled build needs {BINDINGS_VERSION}",
            dir.display()
        ));
    }
}

/// Applies every `*.patch` in `fixes`, in name order, to the sources in `root`.
fn apply_fixes(fixes: &Path, root: &Path) {
    println!("cargo:rerun-if-changed={}", fixes.display());
    let mut patches: Vec<PathBuf> = read_dir(fixes)
        .into_iter()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "patch"))
        .collect();
    patches.sort();
    for path in patches {
        println!("cargo:rerun-if-changed={}", path.display());
        let diff =
            fs::read_to_string(&path).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
        let files =
            patch::parse(&diff).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
        for (file, hunks) in files {
            let target = root.join(&file);
            let text = fs::read_to_string(&target)
                .unwrap_or_else(|e| fail(&format!("{}: {file}: {e}", path.display())));
            let fixed = patch::apply(&text, &hunks)
                .unwrap_or_else(|e| fail(&format!("{}: {file}: {e}", path.display())));
            write(&target, &fixed);
        }
    }
}

fn read_dir(dir: &Path) -> Vec<fs::DirEntry> {
    fs::read_dir(dir)
        .and_then(|d| d.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())))
}

fn copy(from: &Path, to: &Path) {
    fs::copy(from, to).unwrap_or_else(|e| fail(&format!("{}: {e}", from.display())));
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
}
