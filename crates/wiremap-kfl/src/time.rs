//! Times are nanoseconds in an `i64`: timestamps span 1677-09-21 to 2262-04-11 and durations
//! about ±292 years. Outside that a time is an error naming the range, never a wrapped value
//! (a wrapped `timestamp("9999-…")` would select the wrong entries).

use wiremap_model::Timestamp;

/// The timestamps a filter can name (whole seconds inside the `i64` nanosecond range).
pub(crate) const TIME_RANGE: &str = "1677-09-21T00:12:44Z to 2262-04-11T23:47:16Z";

/// The durations a filter can name.
pub(crate) const DURATION_RANGE: &str = "-2562047h47m16s to 2562047h47m16s (about 292 years)";

/// Why a duration does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DurationError {
    /// Not a duration.
    Syntax,
    /// A duration, but longer than [`DURATION_RANGE`].
    Range,
}

/// Parses a Go/CEL duration: `5m`, `1h30m`, `1.5s`, `100ms`, `-3us`, to nanoseconds.
pub(crate) fn duration(s: &str) -> Result<i64, DurationError> {
    use DurationError::Syntax;
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(Syntax);
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n == 0 {
            return Err(Syntax);
        }
        let v: f64 = rest[..n].parse().map_err(|_| Syntax)?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return Err(Syntax),
        };
        total += v * scale;
        rest = &rest[u..];
    }
    // `i64::MAX as f64` rounds up to 2^63, itself out of range.
    if total >= i64::MAX as f64 {
        return Err(DurationError::Range);
    }
    // In range, so the cast is exact to the float's precision and cannot saturate.
    Ok(if neg { -(total as i64) } else { total as i64 })
}

/// Parses a duration, `None` if it is not one or is out of range.
pub(crate) fn parse_duration(s: &str) -> Option<i64> {
    duration(s).ok()
}

/// Whether `s` is a well-formed RFC 3339 time outside [`TIME_RANGE`]: it does not parse, but
/// would with its year in range (the year is the only field that can take a time out).
pub(crate) fn timestamp_out_of_range(s: &str) -> bool {
    let year_digits = s
        .as_bytes()
        .get(..4)
        .is_some_and(|y| y.iter().all(u8::is_ascii_digit));
    year_digits
        && Timestamp::parse_rfc3339(s).is_none()
        && s.get(4..)
            .is_some_and(|rest| Timestamp::parse_rfc3339(&format!("2000{rest}")).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_and_out_of_range() {
        assert_eq!(duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(duration("-1.5s"), Ok(-1_500_000_000));
        assert_eq!(duration("2562047h"), Ok(2_562_047 * 3_600_000_000_000));
        assert_eq!(duration("2562048h"), Err(DurationError::Range));
        assert_eq!(duration("-2562048h"), Err(DurationError::Range));
        assert_eq!(duration("1e400h"), Err(DurationError::Syntax));
        assert_eq!(
            duration(&format!("{}h", "9".repeat(400))),
            Err(DurationError::Range)
        );
        assert_eq!(duration("5 minutes"), Err(DurationError::Syntax));
    }

    #[test]
    fn timestamps_out_of_range_are_told_apart_from_garbage() {
        assert!(timestamp_out_of_range("9999-12-31T23:59:59Z"));
        assert!(timestamp_out_of_range("1000-01-01T00:00:00Z"));
        assert!(timestamp_out_of_range("2262-04-11T23:47:17Z"));
        assert!(!timestamp_out_of_range("2262-04-11T23:47:16Z"));
        assert!(!timestamp_out_of_range("1677-09-21T00:12:44Z"));
        assert!(!timestamp_out_of_range("yesterday"));
        assert!(!timestamp_out_of_range("9999-12-31"));
        assert!(!timestamp_out_of_range("9999-13-31T23:59:59Z"));
    }
}
