//! Building the crate's examples from a test, for the target, profile and
//! features the test itself was built with.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{ensure, Context as _};

/// Builds the examples `names` with `cargo build` into this test's own target
/// directory and returns the directory the binaries are in. Call it once per
/// test process (through a `OnceLock`): cargo is fast when nothing changed,
/// but not free.
pub fn build_examples(names: &[&str]) -> anyhow::Result<PathBuf> {
    // This binary is <target>[/<triple>]/<profile dir>/deps/<test>-<hash>.
    let exe = std::env::current_exe()?;
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test binary outside a cargo target dir")?
        .to_path_buf();
    let mut target_dir = profile_dir.parent().context("no target dir")?.to_path_buf();
    // A `--target` build: <target>/<triple>/<profile dir>, the triple being
    // the one this test was compiled for (set by build.rs).
    let mut triple = None;
    let built_for = option_env!("PAHO_MQTT_SYNC_TARGET").unwrap_or_default();
    if !built_for.is_empty() && target_dir.file_name() == Some(std::ffi::OsStr::new(built_for)) {
        triple = Some(built_for);
        target_dir = target_dir.parent().context("no target dir")?.to_path_buf();
    }
    let profile = match profile_dir.file_name().and_then(|p| p.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(other) => other.to_owned(),
    };
    let features: Vec<&str> = [
        (cfg!(feature = "bundled"), "bundled"),
        (cfg!(feature = "ssl"), "ssl"),
        (cfg!(feature = "build_bindgen"), "build_bindgen"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--profile", &profile])
        .arg("--manifest-path")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .args(["--no-default-features", "--features", &features.join(",")]);
    for name in names {
        cmd.args(["--example", name]);
    }
    if let Some(t) = triple {
        cmd.arg("--target").arg(t);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .context("running cargo build")?;
    ensure!(
        out.status.success(),
        "cargo build of the examples {names:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = profile_dir.join("examples");
    for name in names {
        let bin = dir.join(name);
        ensure!(bin.is_file(), "{} missing after the build", bin.display());
    }
    Ok(dir)
}
