//! NumericDates (RFC 7519 §2): the clock, the range this crate accepts,
//! and reading a date claim with the rounding that is stricter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::error::{Error, TokenError};

/// NumericDates beyond ±this many seconds (year 9999) are out of range.
const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// A point in time in whole seconds since the Unix epoch, the unit of a
/// JWT NumericDate (`exp`, `iat`, `nbf`).
///
/// Used where a caller chooses the time instead of the clock (the
/// [`danger`](crate::danger) functions), so that a time cannot be confused
/// with a lifetime or any other number.
///
/// ```
/// use spiffile_svid::UnixTime;
/// let t = UnixTime::from_secs(2_051_222_400);
/// assert_eq!(t.as_secs(), 2_051_222_400);
/// assert_eq!(t.saturating_add(std::time::Duration::from_secs(60)).as_secs(), 2_051_222_460);
/// assert!(UnixTime::now()? < t);
/// # Ok::<(), spiffile_svid::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(i64);

impl UnixTime {
    /// The time `secs` seconds after the epoch (before it when negative).
    pub const fn from_secs(secs: i64) -> Self {
        UnixTime(secs)
    }

    /// Seconds since the epoch.
    pub const fn as_secs(self) -> i64 {
        self.0
    }

    /// The system clock, in whole seconds. Fails only on a clock set before
    /// 1970.
    pub fn now() -> Result<Self, Error> {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| Error::Clock)?;
        i64::try_from(d.as_secs())
            .map(UnixTime)
            .map_err(|_| Error::Clock)
    }

    /// This time `d` later (whole seconds, saturating).
    pub fn saturating_add(self, d: Duration) -> Self {
        UnixTime(
            self.0
                .saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        )
    }

    /// This time as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        secs_to_time(self.0)
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` (proleptic Gregorian calendar; H. Hinnant's
/// civil-from-days), the form error messages and tools show dates in.
///
/// ```
/// assert_eq!(spiffile_svid::UnixTime::from_secs(2_051_222_400).to_string(), "2035-01-01 00:00:00 UTC");
/// ```
impl std::fmt::Display for UnixTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.0;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        write!(
            f,
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
            sod / 3600,
            sod % 3600 / 60,
            sod % 60
        )
    }
}

/// Seconds since the Unix epoch as a [`SystemTime`] (before it when
/// negative).
pub(crate) fn secs_to_time(s: i64) -> SystemTime {
    if s >= 0 {
        UNIX_EPOCH + Duration::from_secs(s.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(s.unsigned_abs())
    }
}

/// Reads a NumericDate. Fractions round toward the stricter side: `exp`
/// down, `nbf`/`iat` up.
pub(crate) fn numeric_date(
    v: &Value,
    claim: &'static str,
    round_up: bool,
) -> Result<i64, TokenError> {
    let out_of_range = TokenError::InvalidClaim {
        claim,
        problem: "is out of range (beyond the year 9999)",
    };
    let Value::Number(n) = v else {
        return Err(TokenError::InvalidClaim {
            claim,
            problem: "is not a number (NumericDate)",
        });
    };
    let secs = if let Some(i) = n.as_i64() {
        i
    } else if n.is_u64() {
        return Err(out_of_range);
    } else {
        let f = n.as_f64().unwrap_or(f64::NAN);
        if !f.is_finite() || f.abs() > MAX_NUMERIC_DATE as f64 {
            return Err(out_of_range);
        }
        // In range, so the conversion is exact after rounding.
        (if round_up { f.ceil() } else { f.floor() }) as i64
    };
    if !(-MAX_NUMERIC_DATE..=MAX_NUMERIC_DATE).contains(&secs) {
        return Err(out_of_range);
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::UnixTime;

    #[test]
    fn dates() {
        let d = |s| UnixTime::from_secs(s).to_string();
        assert_eq!(d(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(d(1_750_000_000), "2025-06-15 15:06:40 UTC");
        assert_eq!(d(2_051_222_400), "2035-01-01 00:00:00 UTC");
        assert_eq!(d(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(d(-1), "1969-12-31 23:59:59 UTC");
        assert_eq!(d(253_402_300_799), "9999-12-31 23:59:59 UTC");
    }
}
