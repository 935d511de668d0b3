//! A tiny `log::Log`: one line per record on stderr,
//! `YYYY-MM-DDTHH:MM:SS.mmmZ LEVEL message`, in UTC.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};

struct StderrLogger;

static LOGGER: StderrLogger = StderrLogger;

/// Installs the logger: info and up; with `verbose` debug (1) or everything
/// (2+), plus the C library's trace.
pub fn init(verbose: u8) {
    // Fails only if a logger is already set; then that one is used.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(match verbose {
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    });
    paho_mqtt_sync::set_trace_level(match verbose {
        0 => None,
        1 => Some(paho_mqtt_sync::TraceLevel::Protocol),
        _ => Some(paho_mqtt_sync::TraceLevel::Maximum),
    });
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // One record, one line: the C trace has messages with line breaks.
        let text = record.args().to_string();
        let text = text.trim_end().replace('\n', "\\n");
        // The demo's own records show no target; the libraries' do.
        let target = record.target();
        let now = timestamp(SystemTime::now());
        let line = if target.starts_with("mqtt_client") {
            format!("{now} {:<5} {text}\n", record.level())
        } else {
            format!("{now} {:<5} [{target}] {text}\n", record.level())
        };
        // One write per line, so lines from different threads never mix;
        // a failed write to stderr has nowhere to be reported.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// `2024-05-01T12:34:56.789Z`.
fn timestamp(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date of a day counted from 1970-01-01, by the usual
/// era arithmetic: shift the year to start in March (so the leap day ends
/// it), split into 400-year eras of 146,097 days, then years, then months of
/// the 153-day five-month pattern.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days from 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year
    let mp = (5 * doy + 2) / 153; // March = 0
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
