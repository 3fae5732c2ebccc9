//! Time for token lifecycles: whole-second UTC [`Timestamp`]s written as RFC 3339, an
//! injectable [`Clock`] (tests move time instead of sleeping), and the `30d` / `10m` /
//! `1h30m` duration syntax of `--expires` and `--grace`.
//!
//! The calendar, RFC 3339 and the duration grammar are jiff's. What is picoclaw's own is
//! policy: one-second resolution, the clamp at the last instant of year 9999, and which
//! durations a token lifetime may have (whole seconds of `s`, `m`, `h`, `d`, `w`; at most
//! ten years).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jiff::civil::DateTime;
use jiff::fmt::friendly::{Spacing, SpanPrinter};
use jiff::fmt::temporal::Pieces;
use jiff::{SignedDuration, Span, SpanRelativeTo, SpanRound, Unit};

/// A UTC instant with one-second resolution (Unix seconds). Displayed as RFC 3339
/// (`2026-11-22T03:40:24Z`). At most 9999-12-31T23:59:59Z, the last instant RFC 3339 can
/// write: later values are clamped to it, so whatever is written parses again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

/// Unix seconds of 9999-12-31T23:59:59Z.
const MAX_UNIX: u64 = 253_402_300_799;

/// The Unix epoch as a civil time in UTC. Civil times, not `jiff::Timestamp`, carry the
/// arithmetic: jiff's timestamps end about a day before 9999-12-31T23:59:59Z (so that any
/// offset can be applied to them), its civil times end exactly there.
const EPOCH: DateTime = DateTime::constant(1970, 1, 1, 0, 0, 0, 0);

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

    /// Parses RFC 3339 (`2026-11-22T03:40:24Z`, `...+02:00`, fractional seconds ignored, a
    /// leap second read as :59) or a plain number of Unix seconds. A time needs a date, a
    /// time of day and an offset; instants before 1970 are refused.
    pub fn parse(s: &str) -> Option<Timestamp> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().ok().map(Timestamp::from_unix);
        }
        let pieces = Pieces::parse(s).ok()?;
        if pieces.time_zone_annotation().is_some() {
            // `[Europe/Paris]` is RFC 9557, not RFC 3339: the offset alone decides.
            return None;
        }
        let offset = pieces.offset()?.to_numeric_offset();
        let local = DateTime::from_parts(pieces.date(), pieces.time()?);
        let secs = local.duration_since(EPOCH).as_secs().checked_sub(i64::from(offset.seconds()))?;
        u64::try_from(secs).ok().map(Timestamp::from_unix)
    }

    fn civil(self) -> DateTime {
        // Every value is within 1970..=9999-12-31T23:59:59 (the clamp), which jiff's civil
        // times cover; the fallback is never taken.
        let secs = i64::try_from(self.0).unwrap_or(i64::MAX);
        EPOCH.checked_add(SignedDuration::from_secs(secs)).unwrap_or(DateTime::MAX)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Whole seconds: jiff prints no fraction.
        write!(f, "{}Z", self.civil())
    }
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

/// Parses `45s`, `10m`, `1h`, `30d`, `2w` and combinations such as `1h30m` or `1h 30m`
/// (jiff's "friendly" syntax, also `sec`, `mins`, `hours`, `days`, `weeks`); `0` and `0s`
/// mean no time at all. Whole, positive numbers of seconds up to weeks only; at most ten
/// years.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = |reason| DurationError { input: input.chars().take(40).collect(), reason };
    let s = input.trim();
    if s.is_empty() {
        return Err(err("it is empty"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    // Refused before jiff sees them: a sign or `ago` (jiff reads negative spans), ISO 8601
    // (`PT1H`) and fractions (`1.5h`), which the documented syntax does not have.
    if !s.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(err("each part must start with a number"));
    }
    if s.contains(['.', ',']) {
        return Err(err("use whole numbers, e.g. 1h30m rather than 1.5h"));
    }
    let span: Span =
        s.parse().map_err(|_| err("unknown unit, missing unit or number too large; use s, m, h, d or w"))?;
    if span.is_negative() {
        return Err(err("a duration cannot be negative"));
    }
    if span.get_years() != 0 || span.get_months() != 0 {
        return Err(err("months and years vary in length; use d or w"));
    }
    if span.get_milliseconds() != 0 || span.get_microseconds() != 0 || span.get_nanoseconds() != 0 {
        return Err(err("unknown unit; use s, m, h, d or w (whole seconds)"));
    }
    let d = span
        .to_duration(SpanRelativeTo::days_are_24_hours())
        .ok()
        .and_then(|d| Duration::try_from(d).ok())
        .ok_or_else(|| err("too long"))?;
    if d > MAX_DURATION {
        return Err(err("longer than ten years"));
    }
    Ok(d)
}

/// `90` → `1m30s`, `86400` → `1d`: the short form [`parse_duration`] accepts.
pub fn format_duration(d: Duration) -> String {
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let balanced = Span::new()
        .try_seconds(secs)
        .and_then(|span| span.round(SpanRound::new().largest(Unit::Day).days_are_24_hours()));
    match balanced {
        Ok(span) => SpanPrinter::new().spacing(Spacing::None).span_to_string(&span),
        // Beyond jiff's span range (about 20,000 years): nothing picoclaw accepts.
        Err(_) => format!("{secs}s"),
    }
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
    fn edges_of_the_jiff_backed_syntax() {
        let last = Timestamp::from_unix(MAX_UNIX);
        assert_eq!(last.to_string(), "9999-12-31T23:59:59Z", "past jiff::Timestamp::MAX");
        assert_eq!(Timestamp::parse("9999-12-31T23:59:59Z"), Some(last));
        assert_eq!(Timestamp::parse("2026-11-22T03:40:60Z"), Timestamp::parse("2026-11-22T03:40:59Z"));
        for bad in [
            "1969-12-31T23:59:59Z",
            "-002026-11-22T03:40:24Z",
            "2026-11-22T03:40:24Z[UTC]",
            "2026-11-22T03:40:24Zx",
        ] {
            assert_eq!(Timestamp::parse(bad), None, "{bad}");
        }
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2weeks"), Ok(Duration::from_secs(14 * 86_400)));
        for bad in ["5m ago", "500ms", "1y", "2mo", "PT1H", "1d1d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_secs(86_400 + 61)), "1d1m1s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
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
