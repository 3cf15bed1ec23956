//! Durations written the way Go's `time.ParseDuration` reads them (`24h`,
//! `90s`, `1h30m`, `1.5h`), because `spec.rotationOverlap` is a
//! `metav1.Duration` upstream and manifests must mean the same thing here.

use std::time::Duration;

/// The pattern the CRD puts on `rotationOverlap`: the non-negative subset of
/// Go's duration syntax (a sign would only allow meaningless negative
/// overlaps).
pub const PATTERN: &str = r"^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$";

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Not Go duration syntax.
    #[error("{0:?} is not a duration (examples: 24h, 90m, 1h30m, 45s)")]
    Syntax(String),
    /// Larger than this operator supports (about 292 years, Go's limit).
    #[error("{0:?} is too long a duration")]
    Overflow(String),
}

/// Parses a non-negative Go duration (`"0"`, `"300ms"`, `"1h30m"`, `"1.5h"`).
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let syntax = || DurationError::Syntax(text.to_owned());
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(syntax());
    }
    let mut rest = text;
    let mut total: u128 = 0; // nanoseconds
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(syntax());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(syntax()),
        };
        let overflow = || DurationError::Overflow(text.to_owned());
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| overflow())?
        };
        let mut value = int.checked_mul(scale).ok_or_else(overflow)?;
        // The fraction, digit by digit, as Go does (exact for every unit).
        let mut place = scale;
        for digit in frac_part.bytes().take(30) {
            place /= 10;
            if place == 0 {
                break;
            }
            value += u128::from(digit - b'0') * place;
        }
        total = total.checked_add(value).ok_or_else(overflow)?;
        rest = after;
    }
    // Go's limit: an int64 of nanoseconds.
    if total > i64::MAX as u128 {
        return Err(DurationError::Overflow(text.to_owned()));
    }
    let secs = u64::try_from(total / 1_000_000_000)
        .map_err(|_| DurationError::Overflow(text.to_owned()))?;
    let nanos = u32::try_from(total % 1_000_000_000)
        .map_err(|_| DurationError::Overflow(text.to_owned()))?;
    Ok(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_examples() {
        let h = 3600;
        assert_eq!(parse("24h").unwrap(), Duration::from_secs(24 * h));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(h + 1800));
        assert_eq!(parse("1.5h").unwrap(), Duration::from_secs(h + 1800));
        assert_eq!(parse(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("5.s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse("2µs").unwrap(), Duration::from_micros(2));
        assert_eq!(parse("2us").unwrap(), Duration::from_micros(2));
        assert_eq!(parse("7ns").unwrap(), Duration::from_nanos(7));
        assert_eq!(parse("0").unwrap(), Duration::ZERO);
        assert_eq!(parse("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse("1m1s1ms").unwrap(), Duration::from_millis(61_001));
    }

    #[test]
    fn refusals() {
        for bad in [
            "", "24", "h", "1d", "-1h", "+1h", "1.2.3s", ".s", "1 h", "1H",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(matches!(parse("3000000h"), Err(DurationError::Overflow(_))));
        assert!(matches!(
            parse("99999999999999999999999999999999999999999h"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn errors_name_the_value() {
        assert_eq!(
            parse("1d").unwrap_err().to_string(),
            "\"1d\" is not a duration (examples: 24h, 90m, 1h30m, 45s)"
        );
    }
}
