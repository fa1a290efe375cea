use std::fmt;

/// Nanoseconds since the Unix epoch, UTC, as carried by a packet record.
///
/// Every pure stage takes time from these, never from the wall clock, so the same capture
/// always gives the same output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Builds a timestamp from seconds and nanoseconds.
    pub fn from_parts(secs: i64, nanos: u32) -> Self {
        Timestamp(
            secs.saturating_mul(1_000_000_000)
                .saturating_add(i64::from(nanos)),
        )
    }

    /// Whole nanoseconds since the epoch.
    pub fn nanos(self) -> i64 {
        self.0
    }

    /// Microseconds from `self` to `later` (0 when `later` is earlier).
    pub fn micros_until(self, later: Timestamp) -> i64 {
        (later.0.saturating_sub(self.0) / 1_000).max(0)
    }

    /// The timestamp `secs` seconds later.
    pub fn plus_secs(self, secs: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(secs.saturating_mul(1_000_000_000)))
    }

    /// Parses RFC 3339 (`2026-03-14T22:00:00Z`, `…T22:00:00.123456+01:00`).
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let b = s.as_bytes();
        if b.len() < 20 {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<i64> {
            let t = s.get(r)?;
            if !t.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            t.parse().ok()
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return None;
        }
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return None;
        }
        let mut i = 19;
        let mut nanos: i64 = 0;
        if b.get(i) == Some(&b'.') {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let digits = &s[start..i];
            if digits.is_empty() {
                return None;
            }
            for (k, c) in digits.bytes().take(9).enumerate() {
                nanos += i64::from(c - b'0') * 10i64.pow(8 - k as u32);
            }
        }
        let offset = match b.get(i) {
            Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
            Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                let o = oh * 3600 + om * 60;
                if sign == b'+' {
                    o
                } else {
                    -o
                }
            }
            _ => return None,
        };
        let days = days_from_civil(y, mo, d);
        let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset;
        // Nanoseconds in an i64 span 1677-09-21 to 2262-04-11: outside that, no timestamp
        // (a wrapped one would select the wrong data).
        secs.checked_mul(1_000_000_000)
            .and_then(|n| n.checked_add(nanos))
            .map(Timestamp)
    }
}

// Howard Hinnant's civil-calendar algorithms.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

impl From<std::time::SystemTime> for Timestamp {
    /// A wall-clock reading, for front ends (the pipeline itself reads only packet time).
    fn from(t: std::time::SystemTime) -> Self {
        let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp::from_parts(d.as_secs() as i64, d.subsec_nanos())
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with microseconds: `2026-03-14T22:00:00.123456Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000_000);
        let nanos = self.0.rem_euclid(1_000_000_000);
        let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            y,
            m,
            d,
            sod / 3600,
            (sod / 60) % 60,
            sod % 60,
            nanos / 1000
        )
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_outside_i64_nanoseconds_do_not_parse() {
        assert_eq!(Timestamp::parse_rfc3339("9999-12-31T23:59:59Z"), None);
        assert_eq!(Timestamp::parse_rfc3339("1000-01-01T00:00:00Z"), None);
        assert!(Timestamp::parse_rfc3339("2262-04-11T23:47:16Z").is_some());
        assert!(Timestamp::parse_rfc3339("1677-09-21T00:12:44Z").is_some());
    }

    #[test]
    fn formats_and_parses_round_trip() {
        let t = Timestamp::from_parts(1_773_525_600, 123_456_000);
        let s = t.to_string();
        assert_eq!(s, "2026-03-14T22:00:00.123456Z");
        assert_eq!(Timestamp::parse_rfc3339(&s), Some(t));
        assert_eq!(
            Timestamp::parse_rfc3339("2026-03-14T23:00:00+01:00"),
            Some(Timestamp::from_parts(1_773_525_600, 0))
        );
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "",
            "2026-03-14",
            "2026-13-14T22:00:00Z",
            "2026-03-14T22:00:00",
            "x026-03-14T22:00:00Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(s), None, "{s}");
        }
    }

    #[test]
    fn pre_epoch_formats() {
        assert_eq!(Timestamp(-1_000).to_string(), "1969-12-31T23:59:59.999999Z");
    }
}
