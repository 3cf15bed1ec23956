//! NumericDates (RFC 7519 §2): the clock, the range this crate accepts,
//! and reading a date claim with the rounding that is stricter.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::error::{Error, TokenError};

/// NumericDates beyond ±this many seconds (year 9999) are out of range.
const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// The current time in whole seconds since the Unix epoch.
pub fn unix_now() -> Result<i64, Error> {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::Clock)?;
    i64::try_from(d.as_secs()).map_err(|_| Error::Clock)
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
