//! TLS settings (`MQTTClient_SSLOptions`), with the `ssl` feature.
//!
//! The C initializer checks the server's certificate chain but not that the
//! certificate belongs to the host connected to (`verify = 0`). [`SslOptions::new`]
//! checks both; turning either off is an explicit call.

use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use crate::diagnose::TlsErrors;
use crate::error::{Error, Result};
use crate::ffi;

/// The TLS protocol version (`sslVersion`).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[cfg_attr(docsrs, doc(cfg(feature = "ssl")))]
pub enum SslVersion {
    /// `MQTT_SSL_VERSION_DEFAULT`: the highest version both sides support.
    #[default]
    Default,
    /// `MQTT_SSL_VERSION_TLS_1_0`.
    Tls1_0,
    /// `MQTT_SSL_VERSION_TLS_1_1`.
    Tls1_1,
    /// `MQTT_SSL_VERSION_TLS_1_2`.
    Tls1_2,
}

/// TLS settings for `ssl://` / `mqtts://` connections
/// (`MQTTClient_SSLOptions`), set with [`ConnectOptions::ssl`](crate::ConnectOptions::ssl).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(docsrs, doc(cfg(feature = "ssl")))]
pub struct SslOptions {
    trust_store: Option<PathBuf>,
    ca_path: Option<PathBuf>,
    key_store: Option<PathBuf>,
    private_key: Option<PathBuf>,
    private_key_password: Option<String>,
    cipher_suites: Option<String>,
    server_cert_auth: bool,
    verify_host: bool,
    version: SslVersion,
    default_trust_store: bool,
    alpn: Vec<u8>,
}

impl Default for SslOptions {
    fn default() -> Self {
        SslOptions {
            trust_store: None,
            ca_path: None,
            key_store: None,
            private_key: None,
            private_key_password: None,
            cipher_suites: None,
            server_cert_auth: true,
            verify_host: true,
            version: SslVersion::Default,
            default_trust_store: true,
            alpn: Vec::new(),
        }
    }
}

impl SslOptions {
    /// Verifies the server: its certificate chain (`enableServerCertAuth = 1`)
    /// and its host name (`verify = 1`, unlike the C initializer), against the
    /// system's trust store unless [`SslOptions::trust_store`] says otherwise.
    pub fn new() -> Self {
        Self::default()
    }

    /// A PEM file of trusted CA certificates (`trustStore`).
    pub fn trust_store(mut self, path: impl Into<PathBuf>) -> Self {
        self.trust_store = Some(path.into());
        self
    }

    /// A directory of trusted CA certificates in OpenSSL's hashed layout (`CApath`).
    pub fn ca_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_path = Some(path.into());
        self
    }

    /// The client's certificate chain, PEM, possibly with its key (`keyStore`).
    pub fn key_store(mut self, path: impl Into<PathBuf>) -> Self {
        self.key_store = Some(path.into());
        self
    }

    /// The client's private key, PEM, when not in the key store (`privateKey`).
    pub fn private_key(mut self, path: impl Into<PathBuf>) -> Self {
        self.private_key = Some(path.into());
        self
    }

    /// The password of an encrypted private key (`privateKeyPassword`).
    pub fn private_key_password(mut self, password: &str) -> Self {
        self.private_key_password = Some(password.to_owned());
        self
    }

    /// OpenSSL cipher list (`enabledCipherSuites`), e.g. `"HIGH:!aNULL"`.
    pub fn enabled_cipher_suites(mut self, ciphers: &str) -> Self {
        self.cipher_suites = Some(ciphers.to_owned());
        self
    }

    /// Whether the server's certificate chain is checked (`enableServerCertAuth`).
    /// Turning it off accepts any server: only for tests.
    pub fn enable_server_cert_auth(mut self, on: bool) -> Self {
        self.server_cert_auth = on;
        self
    }

    /// Whether the server's certificate must name the host connected to (`verify`).
    pub fn verify(mut self, on: bool) -> Self {
        self.verify_host = on;
        self
    }

    /// The TLS version (`sslVersion`).
    pub fn ssl_version(mut self, version: SslVersion) -> Self {
        self.version = version;
        self
    }

    /// Whether OpenSSL's default CA locations are trusted too
    /// (`disableDefaultTrustStore` is the opposite).
    pub fn default_trust_store(mut self, on: bool) -> Self {
        self.default_trust_store = on;
        self
    }

    /// ALPN protocol names offered to the server (`protos`, `protos_len`), for
    /// example `["mqtt"]` (names of 1 to 255 bytes).
    pub fn alpn_protocols(mut self, protocols: &[&str]) -> Self {
        self.alpn.clear();
        for p in protocols {
            self.alpn.push(p.len().min(255) as u8);
            self.alpn
                .extend_from_slice(&p.as_bytes()[..p.len().min(255)]);
        }
        self
    }

    /// Checks the files and builds the C strings.
    pub(crate) fn raw(&self) -> Result<RawSslOptions<'_>> {
        let file =
            |p: &Option<PathBuf>, what: &'static str, dir: bool| -> Result<Option<CString>> {
                let Some(p) = p else { return Ok(None) };
                let ok = if dir { p.is_dir() } else { p.is_file() };
                if !ok {
                    return Err(Error::InvalidArgument(format!(
                        "{what} {} does not exist",
                        p.display()
                    )));
                }
                path_cstring(p, what).map(Some)
            };
        let text = |s: &Option<String>, what: &'static str| -> Result<Option<CString>> {
            s.as_deref()
                .map(|s| CString::new(s).map_err(|_| Error::NulByte(what)))
                .transpose()
        };
        if self.alpn.len() > u32::MAX as usize {
            return Err(Error::InvalidArgument("ALPN list too long".into()));
        }
        Ok(RawSslOptions {
            opts: self,
            trust_store: file(&self.trust_store, "trust store", false)?,
            ca_path: file(&self.ca_path, "CA path", true)?,
            key_store: file(&self.key_store, "key store", false)?,
            private_key: file(&self.private_key, "private key", false)?,
            private_key_password: text(&self.private_key_password, "private key password")?,
            cipher_suites: text(&self.cipher_suites, "cipher suites")?,
        })
    }
}

fn path_cstring(p: &Path, what: &'static str) -> Result<CString> {
    CString::new(std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()))
        .map_err(|_| Error::NulByte(what))
}

/// Checked TLS options owning the C strings the C struct points into.
pub(crate) struct RawSslOptions<'a> {
    opts: &'a SslOptions,
    trust_store: Option<CString>,
    ca_path: Option<CString>,
    key_store: Option<CString>,
    private_key: Option<CString>,
    private_key_password: Option<CString>,
    cipher_suites: Option<CString>,
}

/// `ssl_error_cb`: OpenSSL's error text, kept with the client for the
/// connect's error ([`crate::ConnectError`]) and logged at debug level.
unsafe extern "C" fn ssl_error(text: *const c_char, len: usize, context: *mut c_void) -> c_int {
    if !text.is_null() && !context.is_null() {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: OpenSSL passes `len` readable bytes.
            let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len) };
            let text = String::from_utf8_lossy(bytes);
            log::debug!(target: crate::trace::TRACE_TARGET, "TLS: {}", text.trim_end());
            // SAFETY: `context` is the `TlsErrors` of the client's Context
            // (`c_struct`), which outlives the C client.
            unsafe { &*context.cast::<TlsErrors>() }.push(&text);
        }));
    }
    0
}

impl RawSslOptions<'_> {
    /// The C struct; it points into `self`, and OpenSSL's error texts go to
    /// `errors`, which must outlive the C client (the library keeps the pointer).
    pub(crate) fn c_struct(&self, errors: &TlsErrors) -> ffi::MQTTClient_SSLOptions {
        let ptr = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
        let o = self.opts;
        ffi::MQTTClient_SSLOptions {
            trustStore: ptr(&self.trust_store),
            keyStore: ptr(&self.key_store),
            privateKey: ptr(&self.private_key),
            privateKeyPassword: ptr(&self.private_key_password),
            enabledCipherSuites: ptr(&self.cipher_suites),
            CApath: ptr(&self.ca_path),
            enableServerCertAuth: c_int::from(o.server_cert_auth),
            verify: c_int::from(o.verify_host),
            sslVersion: match o.version {
                SslVersion::Default => ffi::MQTT_SSL_VERSION_DEFAULT,
                SslVersion::Tls1_0 => ffi::MQTT_SSL_VERSION_TLS_1_0,
                SslVersion::Tls1_1 => ffi::MQTT_SSL_VERSION_TLS_1_1,
                SslVersion::Tls1_2 => ffi::MQTT_SSL_VERSION_TLS_1_2,
            },
            disableDefaultTrustStore: c_int::from(!o.default_trust_store),
            ssl_error_cb: Some(ssl_error),
            ssl_error_context: std::ptr::from_ref(errors).cast_mut().cast(),
            protos: if o.alpn.is_empty() {
                std::ptr::null()
            } else {
                o.alpn.as_ptr()
            },
            protos_len: o.alpn.len() as u32,
            ..ffi::MQTTClient_SSLOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_defaults() {
        let o = SslOptions::new();
        let raw = o.raw().unwrap();
        let errors = TlsErrors::default();
        let c = raw.c_struct(&errors);
        assert_eq!(
            (c.enableServerCertAuth, c.verify, c.disableDefaultTrustStore),
            (1, 1, 0)
        );
        assert!(c.trustStore.is_null() && c.protos.is_null());
    }

    #[test]
    fn missing_files_are_errors() {
        let o = SslOptions::new().trust_store("/nonexistent/ca.pem");
        assert!(
            matches!(o.raw(), Err(Error::InvalidArgument(m)) if m.contains("/nonexistent/ca.pem"))
        );
        assert!(SslOptions::new().ca_path("/nonexistent").raw().is_err());
        assert!(matches!(
            SslOptions::new().private_key_password("a\0").raw(),
            Err(Error::NulByte(_))
        ));
    }

    #[test]
    fn alpn_wire_format() {
        let o = SslOptions::new().alpn_protocols(&["mqtt", "x"]);
        assert_eq!(o.alpn, b"\x04mqtt\x01x");
    }
}
