//! Applies our fixes to the Paho C sources at build time: unified diffs
//! (`diff -u` output, paths `a/src/X.c`), applied strictly. Every hunk's old
//! lines (context and removed lines) must be found verbatim; when they occur
//! more than once, the occurrence nearest the hunk's line number is taken, as
//! `patch` does. There is no fuzz: a fix that no longer fits the sources
//! stops the build instead of being applied somewhere else.

use std::collections::BTreeMap;

/// One `@@ -old +new @@` block.
pub struct Hunk {
    /// 1-based line number of the first old line, as the diff says.
    old_start: usize,
    old: Vec<String>,
    new: Vec<String>,
}

/// The hunks of one diff, by file (the path after `a/` or `b/`).
pub fn parse(diff: &str) -> Result<BTreeMap<String, Vec<Hunk>>, String> {
    let mut files: BTreeMap<String, Vec<Hunk>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut lines = diff.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(path) = line.strip_prefix("+++ ") {
            let path = path.split('\t').next().unwrap_or(path).trim();
            let path = path.split_once('/').map_or(path, |(_, rest)| rest);
            current = Some(path.to_owned());
            files.entry(path.to_owned()).or_default();
        } else if let Some(header) = line.strip_prefix("@@ ") {
            let file = current.clone().ok_or("hunk before a +++ line")?;
            let (old_start, old_len) = range(header, '-')?;
            let (_, new_len) = range(header, '+')?;
            let mut hunk = Hunk {
                old_start,
                old: Vec::new(),
                new: Vec::new(),
            };
            while hunk.old.len() < old_len || hunk.new.len() < new_len {
                let body = lines.next().ok_or("diff ends inside a hunk")?;
                match body.split_at(body.len().min(1)) {
                    (" ", text) | ("", text) => {
                        hunk.old.push(text.to_owned());
                        hunk.new.push(text.to_owned());
                    }
                    ("-", text) => hunk.old.push(text.to_owned()),
                    ("+", text) => hunk.new.push(text.to_owned()),
                    ("\\", _) => {} // "\ No newline at end of file"
                    _ => return Err(format!("bad hunk line {body:?}")),
                }
            }
            files.entry(file).or_default().push(hunk);
        }
    }
    if files.is_empty() {
        return Err("no file in the diff".into());
    }
    Ok(files)
}

/// `-start,len` or `+start,len` in a hunk header (`len` defaults to 1).
fn range(header: &str, sign: char) -> Result<(usize, usize), String> {
    let field = header
        .split_whitespace()
        .find_map(|f| f.strip_prefix(sign))
        .ok_or_else(|| format!("bad hunk header {header:?}"))?;
    let (start, len) = field.split_once(',').unwrap_or((field, "1"));
    let num = |s: &str| {
        s.parse::<usize>()
            .map_err(|_| format!("bad hunk header {header:?}"))
    };
    Ok((num(start)?, num(len)?))
}

/// Applies the hunks of one file to its text, in order.
pub fn apply(text: &str, hunks: &[Hunk]) -> Result<String, String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // Lines added minus lines removed by the hunks applied so far.
    let mut shift: isize = 0;
    for (n, hunk) in hunks.iter().enumerate() {
        let expected = (hunk.old_start.max(1) - 1) as isize + shift;
        let at = (0..=lines.len().saturating_sub(hunk.old.len()))
            .filter(|&i| lines[i..].starts_with(&hunk.old))
            .min_by_key(|&i| (i as isize - expected).unsigned_abs())
            .ok_or_else(|| {
                format!(
                    "hunk {} (line {}) does not match: {:?}",
                    n + 1,
                    hunk.old_start,
                    hunk.old.first()
                )
            })?;
        lines.splice(at..at + hunk.old.len(), hunk.new.iter().cloned());
        shift += hunk.new.len() as isize - hunk.old.len() as isize;
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}
