//! Passing Rust strings to C without a heap allocation on hot paths.

use std::ffi::CString;
use std::os::raw::c_char;

use crate::error::{Error, Result};

/// Strings shorter than this are made NUL-terminated on the stack.
const STACK: usize = 256;

/// Calls `f` with a NUL-terminated copy of `s`. Short strings (almost every
/// MQTT topic) are copied into a stack buffer, longer ones into a `CString`.
/// `what` names the argument in the [`Error::NulByte`] for an interior NUL.
pub(crate) fn with_cstr<R>(
    s: &str,
    what: &'static str,
    f: impl FnOnce(*const c_char) -> R,
) -> Result<R> {
    let bytes = s.as_bytes();
    if bytes.contains(&0) {
        return Err(Error::NulByte(what));
    }
    if bytes.len() < STACK {
        let mut buf = [0u8; STACK];
        buf[..bytes.len()].copy_from_slice(bytes);
        Ok(f(buf.as_ptr().cast()))
    } else {
        let owned = CString::new(bytes).map_err(|_| Error::NulByte(what))?;
        Ok(f(owned.as_ptr()))
    }
}

/// An owned C string for an option, or [`Error::NulByte`].
pub(crate) fn cstring(s: &str, what: &'static str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::NulByte(what))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn short_and_long() {
        for s in [
            "",
            "a/b",
            &"x".repeat(255),
            &"y".repeat(256),
            &"z".repeat(10_000),
        ] {
            let back = with_cstr(s, "t", |p| {
                // SAFETY: with_cstr passes a valid NUL-terminated string.
                unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
            });
            assert_eq!(back.unwrap(), s);
        }
        assert_eq!(
            with_cstr("a\0b", "topic", |_| ()),
            Err(Error::NulByte("topic"))
        );
        assert_eq!(
            cstring("a\0", "user name"),
            Err(Error::NulByte("user name"))
        );
    }
}
