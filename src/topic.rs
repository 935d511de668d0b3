//! Topic names and filters: the checks made before anything is sent, and
//! MQTT's matching rules (`+`, `#`, `$`).

use crate::error::{Error, Result};

/// Longest topic name or filter MQTT can encode (a 16-bit length prefix).
pub const MAX_TOPIC_LEN: usize = 65_535;

/// Checks a topic name for publishing (also used for will topics): not empty,
/// at most 65,535 bytes, no NUL, no wildcard.
pub fn validate_topic(topic: &str) -> Result<()> {
    let reason = if topic.is_empty() {
        "empty"
    } else if topic.len() > MAX_TOPIC_LEN {
        "longer than 65535 bytes"
    } else {
        // One pass: this runs on every publish.
        match topic.bytes().find(|b| matches!(b, 0 | b'+' | b'#')) {
            None => return Ok(()),
            Some(0) => "contains a NUL byte",
            Some(_) => "wildcards (+, #) are only allowed in subscription filters",
        }
    };
    Err(Error::InvalidTopic {
        topic: topic.to_owned(),
        reason,
    })
}

/// Checks a topic filter for subscribing: not empty, at most 65,535 bytes, no
/// NUL, `+` only as a whole level, `#` only as the whole last level.
pub fn validate_filter(filter: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidFilter {
            filter: filter.to_owned(),
            reason,
        })
    };
    if filter.is_empty() {
        return bad("empty");
    }
    if filter.len() > MAX_TOPIC_LEN {
        return bad("longer than 65535 bytes");
    }
    if filter.bytes().any(|b| b == 0) {
        return bad("contains a NUL byte");
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return bad("'#' must be the whole last level");
        }
        if level.contains('+') && level != "+" {
            return bad("'+' must be a whole level");
        }
    }
    Ok(())
}

/// Does `topic` match subscription `filter` under MQTT's rules?
///
/// `+` matches exactly one level, `#` the parent level and any number of
/// levels below it, and a filter starting with a wildcard does not match topic
/// names starting with `$` (such as `$SYS/...`). An invalid filter or topic
/// name never matches.
///
/// ```
/// use paho_mqtt_sync::topic_matches;
/// assert!(topic_matches("home/+/temp", "home/kitchen/temp"));
/// assert!(topic_matches("home/#", "home"));
/// assert!(!topic_matches("#", "$SYS/broker/uptime"));
/// assert!(topic_matches("$SYS/#", "$SYS/broker/uptime"));
/// ```
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if validate_filter(filter).is_err() || validate_topic(topic).is_err() {
        return false;
    }
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        assert!(validate_topic("a/b").is_ok());
        assert!(validate_topic("/").is_ok());
        assert!(validate_topic("$SYS/x").is_ok());
        for bad in ["", "a/+", "a/#", "#", "a\0b"] {
            assert!(
                matches!(validate_topic(bad), Err(Error::InvalidTopic { .. })),
                "{bad:?}"
            );
        }
        assert!(validate_topic(&"a".repeat(MAX_TOPIC_LEN)).is_ok());
        assert!(validate_topic(&"a".repeat(MAX_TOPIC_LEN + 1)).is_err());
    }

    #[test]
    fn filters() {
        for good in [
            "a", "a/b", "+", "#", "a/#", "+/+/#", "/+", "a//b", "$SYS/#", "+/",
        ] {
            assert!(validate_filter(good).is_ok(), "{good:?}");
        }
        for bad in ["", "a/#/b", "a+/b", "a/b#", "##", "a/++", "#/", "a\0"] {
            assert!(
                matches!(validate_filter(bad), Err(Error::InvalidFilter { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn matching() {
        let yes = [
            ("a/b", "a/b"),
            ("a/+", "a/b"),
            ("+/b", "a/b"),
            ("a/#", "a"),
            ("a/#", "a/b/c"),
            ("#", "a/b"),
            ("+", "a"),
            ("+/+", "/a"),
            ("/+", "/a"),
            ("a//b", "a//b"),
            ("a/+/b", "a//b"),
            ("$SYS/#", "$SYS/broker"),
            ("$SYS/+", "$SYS/x"),
            ("dt_mqtt/led", "dt_mqtt/led"),
        ];
        for (f, t) in yes {
            assert!(topic_matches(f, t), "{f} should match {t}");
        }
        let no = [
            ("a/b", "a/c"),
            ("a/+", "a/b/c"),
            ("a/+", "a"),
            ("+", "/a"),
            ("a/b", "a/b/"),
            ("#", "$SYS/broker"),
            ("+/broker", "$SYS/broker"),
            ("a/#/b", "a/x/b"),
            ("a/b", "a/+"),
            ("", "a"),
            ("a", ""),
        ];
        for (f, t) in no {
            assert!(!topic_matches(f, t), "{f} should not match {t}");
        }
    }
}
