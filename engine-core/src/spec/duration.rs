//! Human durations in specs: `500ms`, `2s`, `1m30s`, `1h`.

use std::time::Duration;

/// The longest duration a spec, config or flag may give: a year. Deadlines are computed
/// as `Instant::now() + duration` and JWT expiries as seconds in an `i64`; a bound far
/// below where those overflow keeps every such sum safe, and no test waits a year.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why a text is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration")]
    Empty,
    #[error("`{0}` has a number without a unit (ms, s, m, h)")]
    NoUnit(String),
    #[error("`{0}` is not a duration like 500ms, 2s, 1m30s")]
    NotADuration(String),
    #[error("`{0}` has a bad number")]
    BadNumber(String),
    #[error("`{0}` has an unknown unit; use ms, s, m or h")]
    UnknownUnit(String),
    #[error("`{0}` is too long: durations go up to 8760h (a year)")]
    TooLong(String),
}

/// A duration in a spec is the spec's problem.
impl From<DurationError> for crate::diagnostic::Diagnostic {
    fn from(e: DurationError) -> Self {
        Self::new(e.to_string())
    }
}

/// Parse a duration written with units. A leading `-` is refused here; callers that
/// accept negative offsets (JWT expiry) strip it themselves. Durations over
/// [`MAX_DURATION`] are errors.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| DurationError::NoUnit(text.to_string()))?;
        if digits == 0 {
            return Err(DurationError::NotADuration(text.to_string()));
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError::BadNumber(text.to_string()))?;
        rest = &rest[digits..];
        let (unit_len, seconds) = if rest.starts_with("ms") {
            (2, 0.001)
        } else if rest.starts_with('s') {
            (1, 1.0)
        } else if rest.starts_with('m') {
            (1, 60.0)
        } else if rest.starts_with('h') {
            (1, 3600.0)
        } else {
            return Err(DurationError::UnknownUnit(text.to_string()));
        };
        rest = &rest[unit_len..];
        total = Duration::try_from_secs_f64(number * seconds)
            .ok()
            .and_then(|part| total.checked_add(part))
            .filter(|sum| *sum <= MAX_DURATION)
            .ok_or_else(|| DurationError::TooLong(text.to_string()))?;
    }
    Ok(total)
}

/// serde adapter: a `Duration` written as `2s`.
pub mod serde_duration {
    use super::*;
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use super::*;
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => parse_duration(&text)
                    .map(Some)
                    .map_err(serde::de::Error::custom),
            }
        }
    }
}

/// Short human form for reports: `850ms`, `2.31s`.
pub fn format_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.2}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(
            parse_duration("5").unwrap_err(),
            DurationError::NoUnit("5".into())
        );
        assert!(parse_duration("5")
            .unwrap_err()
            .to_string()
            .contains("without a unit"));
        assert_eq!(
            parse_duration("5x").unwrap_err(),
            DurationError::UnknownUnit("5x".into())
        );
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn overflowing_durations_are_errors_not_panics() {
        let huge = format!("{}s", "9".repeat(400));
        for text in [
            "99999999999999999999999h",
            "18446744073709551616s",
            "8761h",
            "8760h1ms",
            "5000000000000000000h5000000000000000000h",
            &huge,
        ] {
            let err = parse_duration(text).unwrap_err();
            assert_eq!(err, DurationError::TooLong(text.to_string()), "{text}");
            assert!(err.to_string().contains("too long"), "{text}: {err}");
        }
        assert_eq!(parse_duration("8760h").unwrap(), MAX_DURATION);
    }
}
