//! Time for token lifecycles: whole-second UTC [`Timestamp`]s written as RFC 3339, an
//! injectable [`Clock`] (tests move time instead of sleeping), and the `30d` / `10m` /
//! `1h30m` duration syntax of `--expires` and `--grace`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC instant with one-second resolution (Unix seconds). Displayed as RFC 3339
/// (`2026-11-22T03:40:24Z`). At most 9999-12-31T23:59:59Z, the last instant RFC 3339 can
/// write: later values are clamped to it, so whatever is written parses again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

/// Unix seconds of 9999-12-31T23:59:59Z.
const MAX_UNIX: u64 = 253_402_300_799;

impl Timestamp {
    /// From Unix seconds (clamped to 9999-12-31T23:59:59Z).
    pub fn from_unix(secs: u64) -> Timestamp {
        Timestamp(secs.min(MAX_UNIX))
    }

    /// Unix seconds.
    pub fn unix(self) -> u64 {
        self.0
    }

    /// The system time now.
    pub fn now() -> Timestamp {
        Timestamp::from_unix(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    }

    /// `self + d`, saturating at the largest timestamp.
    pub fn after(self, d: Duration) -> Timestamp {
        Timestamp::from_unix(self.0.saturating_add(d.as_secs()))
    }

    /// Parses RFC 3339 (`2026-11-22T03:40:24Z`, `...+02:00`, fractional seconds ignored)
    /// or a plain number of Unix seconds.
    pub fn parse(s: &str) -> Option<Timestamp> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().ok().map(Timestamp::from_unix);
        }
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        if b[13] != b':' || b[16] != b':' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u64> {
            let part = s.get(r)?;
            if part.bytes().all(|c| c.is_ascii_digit()) { part.parse().ok() } else { None }
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        if hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let mut rest = &s[19..];
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return None;
            }
            rest = &frac[digits..];
        }
        let offset: i64 = match rest {
            "Z" | "z" => 0,
            _ => {
                let rb = rest.as_bytes();
                if rb.len() != 6 || !matches!(rb[0], b'+' | b'-') || rb[3] != b':' {
                    return None;
                }
                let h: i64 = rest.get(1..3)?.parse().ok()?;
                let m: i64 = rest.get(4..6)?.parse().ok()?;
                if h > 23 || m > 59 {
                    return None;
                }
                let o = h * 3600 + m * 60;
                if rb[0] == b'-' { -o } else { o }
            }
        };
        let days = days_from_civil(i64::try_from(year).ok()?, month, day);
        let secs = days * 86_400 + i64::try_from(hour * 3600 + minute * 60 + second.min(59)).ok()? - offset;
        u64::try_from(secs).ok().map(Timestamp::from_unix)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = i64::try_from(self.0 / 86_400).unwrap_or(i64::MAX / 2);
        let rem = self.0 % 86_400;
        let (y, m, d) = civil_from_days(days);
        write!(f, "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
    }
}

fn is_leap(y: u64) -> bool {
    (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400)
}

fn days_in_month(y: u64, m: u64) -> u64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days (public domain algorithms).
fn days_from_civil(y: i64, m: u64, d: u64) -> i64 {
    let (m, d) = (m as i64, d as i64);
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Where "now" comes from. The gateway uses [`SystemClock`]; tests use [`ManualClock`]
/// to step past an expiry instead of sleeping.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: Timestamp) -> ManualClock {
        ManualClock(Arc::new(AtomicU64::new(start.unix())))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_secs(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix(self.0.load(Ordering::SeqCst))
    }
}

/// The longest duration accepted (ten years): anything longer is surely a typo.
pub const MAX_DURATION: Duration = Duration::from_secs(3650 * 86_400);

/// Why a duration does not parse. Carries only the user's (non-secret) text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration `{input}`: {reason} (expected e.g. 45s, 10m, 1h, 30d, 2w or 1h30m)")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

impl DurationError {
    /// What is wrong, without the input (for messages that must not echo a value).
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

/// Parses `45s`, `10m`, `1h`, `30d`, `2w` and concatenations such as `1h30m`; `0` and `0s`
/// mean no time at all. At most ten years.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError { input: input.chars().take(40).collect(), reason };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err("each part must start with a number"));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| err("the number is too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(char::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "s" | "sec" | "secs" => 1,
            "m" | "min" | "mins" => 60,
            "h" | "hr" | "hrs" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 7 * 86_400,
            "" => return Err(err("a unit is missing after the number")),
            _ => return Err(err("unknown unit; use s, m, h, d or w")),
        };
        rest = &rest[unit_len..];
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(|| err("too long"))?;
    }
    let d = Duration::from_secs(total);
    if d > MAX_DURATION {
        return Err(err("longer than ten years"));
    }
    Ok(d)
}

/// `90` → `1m30s`, `86400` → `1d`: the short form [`parse_duration`] accepts.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, name) in [(86_400, "d"), (3600, "h"), (60, "m"), (1, "s")] {
        if secs >= unit {
            out.push_str(&format!("{}{name}", secs / unit));
            secs %= unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(Timestamp::from_unix(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp::from_unix(1_795_318_824).to_string(), "2026-11-22T03:40:24Z");
        assert_eq!(Timestamp::parse("2026-11-22T03:40:24Z"), Some(Timestamp::from_unix(1_795_318_824)));
        assert_eq!(
            Timestamp::parse("2026-11-22T05:40:24.123+02:00"),
            Some(Timestamp::from_unix(1_795_318_824))
        );
        assert_eq!(Timestamp::parse("1795318824"), Some(Timestamp::from_unix(1_795_318_824)));
        assert_eq!(Timestamp::parse("2024-02-29T00:00:00Z").map(Timestamp::unix), Some(1_709_164_800));
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-11-22",
            "yesterday",
            "2026-11-22T03:40:24",
            "2026-11-22T03:40:2€Z",
            "2026-11-22T03:40:24.€Z",
            "2026-11-22T03:40:24+0€:0",
            "€€€€€€€€€€€€€€€€€€€€",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "10", "m", "10x", "-5m", "1.5h", "99999999999999999999s", "4000d"] {
            let e = parse_duration(bad).unwrap_err().to_string();
            assert!(e.contains("expected e.g."), "{bad}: {e}");
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp::from_unix(100));
        let shared = c.clone();
        c.advance(Duration::from_secs(30));
        assert_eq!(shared.now(), Timestamp::from_unix(130));
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(secs in 0u64..253_402_300_799) {
            let t = Timestamp::from_unix(secs);
            prop_assert_eq!(Timestamp::parse(&t.to_string()), Some(t));
        }

        #[test]
        fn arbitrary_input_never_panics(s in "\\PC{0,40}") {
            let _ = Timestamp::parse(&s);
            let _ = parse_duration(&s);
        }

        #[test]
        fn duration_round_trip(secs in 0u64..(3650 * 86_400)) {
            let d = Duration::from_secs(secs);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
