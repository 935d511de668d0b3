//! Helpers shared by the benchmark clients: the command line, the payloads,
//! message counting and the JSON line every run prints.
//!
//! Every client program (Rust and C alike) is called as
//!
//! ```text
//! PROGRAM MODE HOST PORT QOS COUNT SIZE RUN TOPIC [CLIENT_ID]
//! ```
//!
//! * `pub`: publish COUNT messages of SIZE bytes to TOPIC, one in flight,
//!   waiting for each acknowledgement at QoS 1/2;
//! * `pubw`: the same at QoS 1/2 with up to `BENCH_WINDOW` (environment
//!   variable, see [`window`]) messages unacknowledged at any time, until the
//!   last acknowledgement is in (not `c_sync`);
//! * `recv`: connect with a persistent session CLIENT_ID (prepared and filled
//!   beforehand by the orchestrator) and count COUNT messages of run RUN;
//! * `recvcb` (this crate only): the same through a message-arrived callback;
//! * `lat`: subscribe to TOPIC, then COUNT times publish a QoS 1 message to it
//!   and wait for it to come back (and for its acknowledgement);
//! * `reconnect`: connect (clean session), then COUNT rounds of disconnect
//!   followed by connect with the same options, on the same client; each
//!   disconnect and each connect is timed alone (QOS, SIZE and TOPIC unused).
//!
//! Payloads are `RUN:SEQ:` padded with `x` to SIZE bytes, so receivers can
//! check that every message of the run arrived, once.
//!
//! Each run prints one JSON line on stdout.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// What a client program is asked to do.
#[derive(Debug, Clone)]
pub struct Args {
    pub mode: String,
    pub host: String,
    pub port: u16,
    pub qos: u8,
    pub count: usize,
    pub size: usize,
    pub run: String,
    pub topic: String,
    pub client_id: String,
}

impl Args {
    /// Parses the command line or exits with a usage message.
    pub fn parse(program: &str) -> Args {
        let v: Vec<String> = std::env::args().skip(1).collect();
        if v.len() < 8 {
            die(&format!(
                "usage: {program} MODE HOST PORT QOS COUNT SIZE RUN TOPIC [CLIENT_ID]"
            ));
        }
        let num = |s: &str, what: &str| -> usize {
            s.parse()
                .unwrap_or_else(|_| die(&format!("bad {what}: {s}")))
        };
        let qos = num(&v[3], "qos");
        if qos > 2 {
            die("qos must be 0, 1 or 2");
        }
        Args {
            mode: v[0].clone(),
            host: v[1].clone(),
            port: u16::try_from(num(&v[2], "port")).unwrap_or_else(|_| die("bad port")),
            qos: qos as u8,
            count: num(&v[4], "count"),
            size: num(&v[5], "size"),
            run: v[6].clone(),
            topic: v[7].clone(),
            client_id: v
                .get(8)
                .cloned()
                .unwrap_or_else(|| format!("{program}-{}-{}", v[0], v[6])),
        }
    }

    /// `tcp://host:port`.
    pub fn uri(&self) -> String {
        format!("tcp://{}:{}", self.host, self.port)
    }
}

/// The in-flight window of mode `pubw`: the environment variable
/// `BENCH_WINDOW` (a number from 1 to 65535), or exit.
pub fn window() -> usize {
    let v = std::env::var("BENCH_WINDOW").unwrap_or_else(|_| die("pubw needs BENCH_WINDOW"));
    match v.parse::<usize>() {
        Ok(n) if (1..=65535).contains(&n) => n,
        _ => die(&format!("bad BENCH_WINDOW {v:?}")),
    }
}

/// Prints an error and exits with status 1.
pub fn die(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1)
}

/// A reusable payload buffer: `RUN:SEQ:` then `x` up to the size.
pub struct Payload {
    buf: Vec<u8>,
    prefix: usize,
}

impl Payload {
    pub fn new(run: &str, size: usize) -> Payload {
        let prefix = run.len() + 1;
        // `RUN:` + 10 digits + `:`; longer than SIZE only for tiny sizes.
        let mut buf = vec![b'x'; size.max(prefix + 11)];
        buf[..run.len()].copy_from_slice(run.as_bytes());
        buf[run.len()] = b':';
        Payload { buf, prefix }
    }

    /// Writes `seq:` after the run id (fixed width, 10 digits) and returns the
    /// payload.
    pub fn fill(&mut self, seq: usize) -> &[u8] {
        let mut n = seq;
        for i in (0..10).rev() {
            self.buf[self.prefix + i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        self.buf[self.prefix + 10] = b':';
        &self.buf
    }
}

/// Counts the distinct messages of one run that arrived.
pub struct Seen {
    run: Vec<u8>,
    seen: Vec<bool>,
    /// Distinct messages of the run.
    pub distinct: usize,
    /// Messages of the run that came again.
    pub duplicates: usize,
    /// Messages that are not of the run (left over from something else).
    pub foreign: usize,
}

impl Seen {
    pub fn new(run: &str, count: usize) -> Seen {
        Seen {
            run: run.as_bytes().to_vec(),
            seen: vec![false; count],
            distinct: 0,
            duplicates: 0,
            foreign: 0,
        }
    }

    /// Records a payload; returns true for a new message of the run.
    pub fn record(&mut self, payload: &[u8]) -> bool {
        let r = self.run.len();
        if payload.len() < r + 12 || &payload[..r] != self.run.as_slice() || payload[r] != b':' {
            self.foreign += 1;
            return false;
        }
        let mut seq = 0usize;
        for &d in &payload[r + 1..r + 11] {
            if !d.is_ascii_digit() {
                self.foreign += 1;
                return false;
            }
            seq = seq * 10 + usize::from(d - b'0');
        }
        match self.seen.get_mut(seq) {
            Some(s) if !*s => {
                *s = true;
                self.distinct += 1;
                true
            }
            Some(_) => {
                self.duplicates += 1;
                false
            }
            None => {
                self.foreign += 1;
                false
            }
        }
    }

    pub fn complete(&self) -> bool {
        self.distinct == self.seen.len()
    }
}

/// Seconds of a duration as f64.
pub fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Milliseconds between two instants.
pub fn ms(from: Instant, to: Instant) -> f64 {
    to.duration_since(from).as_secs_f64() * 1e3
}

/// Peak resident set size of this process so far (`VmHWM`), in KiB.
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Percentile (0..=100) of sorted nanosecond samples, in microseconds.
pub fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1e3
}

/// The JSON line a run prints, built field by field.
pub struct Report {
    out: String,
}

impl Report {
    pub fn new(client: &str, args: &Args) -> Report {
        let mut r = Report {
            out: String::from("{"),
        };
        r.str("client", client);
        r.str("mode", &args.mode);
        r.int("qos", args.qos as u64);
        r.int("count", args.count as u64);
        r.int("size", args.size as u64);
        r.str("run", &args.run);
        r
    }

    fn key(&mut self, k: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        let _ = write!(self.out, "\"{k}\":");
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        self.out.push('"');
        for c in v.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.out, "\\u{:04x}", c as u32);
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
        self
    }

    pub fn int(&mut self, k: &str, v: u64) -> &mut Self {
        self.key(k);
        let _ = write!(self.out, "{v}");
        self
    }

    pub fn num(&mut self, k: &str, v: f64) -> &mut Self {
        self.key(k);
        if v.is_finite() {
            let _ = write!(self.out, "{v:.6}");
        } else {
            self.out.push_str("null");
        }
        self
    }

    /// A list of numbers (milliseconds and the like).
    pub fn list(&mut self, k: &str, v: &[f64]) -> &mut Self {
        self.key(k);
        self.out.push('[');
        for (i, x) in v.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            if x.is_finite() {
                let _ = write!(self.out, "{x:.6}");
            } else {
                self.out.push_str("null");
            }
        }
        self.out.push(']');
        self
    }

    /// Adds the peak RSS and prints the line.
    pub fn print(&mut self) {
        let rss = peak_rss_kib();
        self.int("peak_rss_kib", rss);
        self.out.push('}');
        println!("{}", self.out);
    }
}

/// Common fields of a throughput run.
pub fn throughput(r: &mut Report, messages: usize, elapsed: Duration) {
    r.int("messages", messages as u64);
    r.num("elapsed_s", secs(elapsed));
    r.num("rate", messages as f64 / secs(elapsed).max(1e-9));
}

/// Common fields of a receive run: distinct count and the rate between the
/// first and the last message.
pub fn receive_report(r: &mut Report, seen: &Seen, first: Option<Instant>, last: Option<Instant>) {
    r.int("received", seen.distinct as u64);
    r.int("duplicates", seen.duplicates as u64);
    r.int("foreign", seen.foreign as u64);
    let span = match (first, last) {
        (Some(f), Some(l)) => l.duration_since(f),
        _ => Duration::ZERO,
    };
    r.num("elapsed_s", secs(span));
    let n = seen.distinct.saturating_sub(1) as f64;
    r.num("rate", if span.is_zero() { 0.0 } else { n / secs(span) });
}

/// Fields of a `reconnect` run: the rounds done and, per round, how long the
/// disconnect and the following connect took (milliseconds).
pub fn rounds_report(r: &mut Report, connects: &[f64], disconnects: &[f64]) {
    r.int("rounds", connects.len().min(disconnects.len()) as u64);
    r.list("round_connect_ms", connects);
    r.list("round_disconnect_ms", disconnects);
}

/// Latency fields from raw nanosecond samples.
pub fn latency_report(r: &mut Report, mut samples: Vec<u64>) {
    samples.sort_unstable();
    r.int("samples", samples.len() as u64);
    r.num("p50_us", percentile_us(&samples, 50.0));
    r.num("p99_us", percentile_us(&samples, 99.0));
    let mean = samples.iter().map(|&s| s as f64).sum::<f64>() / samples.len().max(1) as f64;
    r.num("mean_us", mean / 1e3);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let mut p = Payload::new("r7", 64);
        let mut s = Seen::new("r7", 3);
        assert_eq!(p.fill(0).len(), 64);
        assert!(s.record(p.fill(2)));
        assert!(!s.record(p.fill(2)));
        assert!(s.record(p.fill(0)));
        assert!(!s.complete());
        assert!(s.record(p.fill(1)));
        assert!(s.complete());
        assert_eq!(s.duplicates, 1);
        let mut other = Payload::new("r8", 16);
        assert!(!s.record(other.fill(1)));
        assert!(!s.record(Payload::new("r7", 64).fill(3)));
        assert_eq!(s.foreign, 2);
        assert_eq!(Payload::new("abc", 16384).fill(5).len(), 16384);
    }

    #[test]
    fn lists() {
        let a = Args {
            mode: "reconnect".into(),
            host: "h".into(),
            port: 1,
            qos: 0,
            count: 2,
            size: 0,
            run: "r".into(),
            topic: "t".into(),
            client_id: "c".into(),
        };
        let mut r = Report::new("x", &a);
        rounds_report(&mut r, &[1.0, 2.5], &[0.25, f64::NAN]);
        assert!(r.out.ends_with(
            r#""rounds":2,"round_connect_ms":[1.000000,2.500000],"round_disconnect_ms":[0.250000,null]"#
        ));
    }

    #[test]
    fn percentiles() {
        let v: Vec<u64> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_us(&v, 50.0), 50.0);
        assert_eq!(percentile_us(&v, 99.0), 99.0);
        assert_eq!(percentile_us(&v, 100.0), 100.0);
    }
}
