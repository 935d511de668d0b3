//! [`DirStore`]: a [`ClientPersistence`] for boards that lose power, one
//! file per key, each written to a temporary file, `fsync`ed and renamed over
//! the old one, with the directory `fsync`ed after every change.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::persistence::{ClientPersistence, PersistenceResult};

/// A power-cut-safe store for [`Persistence::User`](crate::Persistence::User):
/// one file per key in a directory of its own per client id and server URI,
/// below a base directory (std only; in every build, bundled or not).
///
/// * `put` writes `.tmp-<key>`, `fsync`s it, renames it to `<key>` and
///   `fsync`s the directory: when `put` returns, the entry is on the storage,
///   and after a power cut at any moment a key holds either its old or its
///   new content in full, never a part. A `.tmp-` file left by a cut is
///   ignored and removed by the next `open`.
/// * `remove` and `clear` `fsync` the directory too, so an acknowledged
///   message does not come back after a power cut (a QoS 2 message that came
///   back would be delivered twice).
/// * Reads check nothing: the crate checks each entry's framing before the
///   library parses it, and drops a damaged one with a warning in the log.
///
/// This relies on the file system keeping `fsync` and `rename` promises
/// (ext4, f2fs, UBIFS, JFFS2 do; FAT on an SD card may lose the directory
/// entry of a renamed file; storage that acknowledges writes before it made
/// them durable defeats any store). Each `put` costs two `fsync`s and each
/// `remove` one (three per QoS 1 message, six per QoS 2 message): that bounds
/// the QoS 1/2 publish rate (see BENCHMARKS.md).
#[derive(Debug)]
pub struct DirStore {
    base: PathBuf,
    dir: Option<PathBuf>,
}

impl DirStore {
    /// A store below `base`, which must exist when the client is created (the
    /// per-client directory is made then).
    pub fn new(base: impl Into<PathBuf>) -> DirStore {
        DirStore {
            base: base.into(),
            dir: None,
        }
    }

    /// The directory `open` uses for this client id and server URI:
    /// `<base>/<client id>@<host:port>`, with every byte other than ASCII
    /// letters, digits, `-` and `_` written as `%XX`. The scheme
    /// (`tcp://`...) is left out, as the library leaves it out of the URI it
    /// passes to `open`.
    pub fn client_dir(&self, client_id: &str, server_uri: &str) -> PathBuf {
        let address = server_uri
            .split_once("://")
            .map_or(server_uri, |(_, rest)| rest);
        self.base
            .join(format!("{}@{}", escape(client_id), escape(address)))
    }

    fn dir(&self) -> PersistenceResult<&Path> {
        self.dir
            .as_deref()
            .ok_or_else(|| "the store is not open".into())
    }

    fn path(&self, key: &str) -> PersistenceResult<PathBuf> {
        let ok = !key.is_empty()
            && !key.starts_with('.')
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!("key {key:?} is not a plain file name").into());
        }
        Ok(self.dir()?.join(key))
    }
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `fsync` of a directory, so the entries created, renamed or removed in it
/// are durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl ClientPersistence for DirStore {
    fn open(&mut self, client_id: &str, server_uri: &str) -> PersistenceResult<()> {
        let dir = self.client_dir(client_id, server_uri);
        if !self.base.is_dir() {
            return Err(format!("{} is not an existing directory", self.base.display()).into());
        }
        if !dir.is_dir() {
            fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            sync_dir(&self.base)?;
        }
        // Leftovers of a put cut short by a crash or a power cut.
        let mut removed = false;
        for entry in fs::read_dir(&dir).map_err(|e| format!("reading {}: {e}", dir.display()))? {
            let entry = entry?;
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                fs::remove_file(entry.path())?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&dir)?;
        }
        self.dir = Some(dir);
        Ok(())
    }

    fn close(&mut self) -> PersistenceResult<()> {
        self.dir = None;
        Ok(())
    }

    fn put(&mut self, key: &str, buffers: &[&[u8]]) -> PersistenceResult<()> {
        let path = self.path(key)?;
        let dir = self.dir()?;
        let tmp = dir.join(format!(".tmp-{key}"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        for b in buffers {
            f.write_all(b)?;
        }
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &path)?;
        sync_dir(dir)?;
        Ok(())
    }

    fn get(&mut self, key: &str) -> PersistenceResult<Vec<u8>> {
        Ok(fs::read(self.path(key)?)?)
    }

    fn remove(&mut self, key: &str) -> PersistenceResult<()> {
        match fs::remove_file(self.path(key)?) {
            Ok(()) => Ok(sync_dir(self.dir()?)?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn keys(&mut self) -> PersistenceResult<Vec<String>> {
        let mut keys = Vec::new();
        for entry in fs::read_dir(self.dir()?)? {
            let entry = entry?;
            let name = entry.file_name();
            match name.to_str() {
                Some(n) if n.starts_with('.') => {}
                // Only files this store could have written: a stray
                // directory or an odd name would make every restore fail.
                Some(n) if entry.file_type()?.is_file() && self.path(n).is_ok() => {
                    keys.push(n.to_owned())
                }
                _ => log::warn!("paho-mqtt-sync: DirStore: ignoring {name:?}"),
            }
        }
        Ok(keys)
    }

    fn clear(&mut self) -> PersistenceResult<()> {
        let dir = self.dir()?;
        let mut removed = false;
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                fs::remove_file(entry.path())?;
                removed = true;
            }
        }
        if removed {
            sync_dir(dir)?;
        }
        Ok(())
    }

    fn contains_key(&mut self, key: &str) -> PersistenceResult<bool> {
        Ok(self.path(key)?.is_file())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_keys_remove_clear() -> PersistenceResult<()> {
        let base = std::env::temp_dir().join(format!("paho-sync-dirstore-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir(&base)?;
        let mut s = DirStore::new(&base);
        assert!(s.put("s-1", &[b"x"]).is_err(), "not open yet");
        let dir = s.client_dir("id/1", "tcp://h:1");
        assert_eq!(dir, base.join("id%2F1@h%3A1"));
        fs::create_dir(&dir)?;
        fs::write(dir.join(".tmp-s-9"), b"cut short")?;
        s.open("id/1", "h:1")?;
        assert!(!dir.join(".tmp-s-9").exists(), "leftover removed by open");
        s.put("s-1", &[b"ab", b"", b"cd"])?;
        s.put("s-1", &[b"new"])?;
        s.put("sc-2", &[b"z"])?;
        assert_eq!(s.get("s-1")?, b"new");
        let mut keys = s.keys()?;
        keys.sort();
        assert_eq!(keys, ["s-1", "sc-2"]);
        assert!(s.contains_key("sc-2")? && !s.contains_key("r-3")?);
        assert!(s.put("../x", &[b"x"]).is_err() && s.put(".tmp-x", &[b"x"]).is_err());
        s.remove("s-1")?;
        s.remove("s-1")?; // already gone: fine
        assert_eq!(s.keys()?, ["sc-2"]);
        s.clear()?;
        assert!(s.keys()?.is_empty());
        s.close()?;
        fs::remove_dir_all(&base)?;
        Ok(())
    }
}
