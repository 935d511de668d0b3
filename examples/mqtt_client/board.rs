//! The board: the LED (sysfs LED class) and the temperature file (sysfs
//! thermal zone). Files are read and written directly; no shell.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// An LED command from the `led` topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedCommand {
    /// `0`: trigger `none`, brightness 0.
    Off,
    /// `1`: trigger `none`, brightness 1.
    On,
    /// `2`: trigger `heartbeat`.
    Heartbeat,
}

impl LedCommand {
    /// Parses a payload: `0`, `1` or `2`, with surrounding whitespace and
    /// trailing NULs (C senders that count the terminator) tolerated.
    pub fn parse(payload: &[u8]) -> Option<LedCommand> {
        let mut p = payload;
        while let [rest @ .., 0] = p {
            p = rest;
        }
        match trim(p) {
            b"0" => Some(LedCommand::Off),
            b"1" => Some(LedCommand::On),
            b"2" => Some(LedCommand::Heartbeat),
            _ => None,
        }
    }
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if !first.is_ascii_whitespace() {
            break;
        }
        b = rest;
    }
    while let [rest @ .., last] = b {
        if !last.is_ascii_whitespace() {
            break;
        }
        b = rest;
    }
    b
}

/// An LED class directory (`/sys/class/leds/<name>`).
pub struct Led {
    dir: PathBuf,
}

impl Led {
    pub fn new(dir: PathBuf) -> Led {
        Led { dir }
    }

    /// Writes the command's values; the error names the file.
    pub fn apply(&self, cmd: LedCommand) -> Result<(), String> {
        match cmd {
            LedCommand::Off => self
                .write("trigger", "none")
                .and_then(|()| self.write("brightness", "0")),
            LedCommand::On => self
                .write("trigger", "none")
                .and_then(|()| self.write("brightness", "1")),
            LedCommand::Heartbeat => self.write("trigger", "heartbeat"),
        }
    }

    /// One `write(2)` of `value` and a newline, as `echo value > file`
    /// does; sysfs attributes take the whole value in one write. The file
    /// must exist (sysfs files cannot be created).
    fn write(&self, attribute: &str, value: &str) -> Result<(), String> {
        let path = self.dir.join(attribute);
        OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{value}\n").as_bytes()))
            .map_err(|e| format!("cannot write {value:?} to {}: {e}", path.display()))
    }
}

/// Longest temperature file content accepted; a thermal zone gives a few digits.
const MAX_TEMP_LEN: u64 = 63;

/// Reads the temperature file: its content with surrounding whitespace
/// trimmed, e.g. `45678` (millidegrees Celsius).
pub fn read_temperature(path: &Path) -> Result<String, String> {
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|f| f.take(MAX_TEMP_LEN + 1).read_to_end(&mut buf))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if buf.len() as u64 > MAX_TEMP_LEN {
        return Err(format!(
            "{} holds more than {MAX_TEMP_LEN} bytes: not a temperature",
            path.display()
        ));
    }
    let text = std::str::from_utf8(trim(&buf))
        .map_err(|_| format!("{} does not hold text", path.display()))?;
    if text.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(text.to_owned())
}
