//! [`Window`]: the time span a participant trains on, `since..until`.
//!
//! A SOC keeps weeks of rotated logs but trains on one period, so rows are
//! kept by their own timestamp (Zeek `ts`, Suricata `timestamp`), not by
//! the file they sit in: a log rotated at 01:00 still holds flows that
//! started at 00:59. Bounds are RFC 3339 strings as participant.toml gives
//! them; `since` is inclusive and `until` exclusive, so consecutive windows
//! never count a row twice.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A half-open time window; an unset bound is open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Window {
    since: Option<Bound>,
    until: Option<Bound>,
}

/// One bound: as written, and in nanoseconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Bound {
    text: String,
    nanos: i128,
}

impl Window {
    /// The window `since..until`. Each bound must be RFC 3339, e.g.
    /// "2026-12-01T00:00:00Z"; `since` must come before `until`. The error
    /// names the bound (`since` or `until`) and the expected form.
    pub fn parse(since: Option<&str>, until: Option<&str>) -> Result<Window, String> {
        let bound = |name: &str, text: Option<&str>| -> Result<Option<Bound>, String> {
            let Some(text) = text else { return Ok(None) };
            let at = OffsetDateTime::parse(text.trim(), &Rfc3339).map_err(|e| {
                format!(
                    "`{name}` = {text:?} is not an RFC 3339 time ({e}); \
                     write it like \"2026-12-01T00:00:00Z\" or \"2026-12-01T01:00:00+01:00\""
                )
            })?;
            Ok(Some(Bound {
                text: text.trim().to_string(),
                nanos: at.unix_timestamp_nanos(),
            }))
        };
        let window = Window {
            since: bound("since", since)?,
            until: bound("until", until)?,
        };
        if let (Some(s), Some(u)) = (&window.since, &window.until)
            && s.nanos >= u.nanos
        {
            return Err(format!(
                "`since` ({}) is not before `until` ({}), so no row can fall in the window; \
                 swap or widen them",
                s.text, u.text
            ));
        }
        Ok(window)
    }

    /// Whether either bound is set, so rows need a timestamp.
    pub fn is_set(&self) -> bool {
        self.since.is_some() || self.until.is_some()
    }

    /// Whether a row stamped `nanos` (since the epoch) falls in the window.
    pub fn contains(&self, nanos: i128) -> bool {
        self.since.as_ref().is_none_or(|s| nanos >= s.nanos)
            && self.until.as_ref().is_none_or(|u| nanos < u.nanos)
    }
}

impl std::fmt::Display for Window {
    /// `since..until` as written, an open end left empty.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |b: &Option<Bound>| b.as_ref().map_or("", |b| b.text.as_str()).to_string();
        write!(f, "{}..{}", text(&self.since), text(&self.until))
    }
}

/// Nanoseconds since the epoch of Zeek's TSV `ts`: epoch seconds with a
/// decimal fraction (`1796083200.123456`), read digit by digit so nothing
/// is lost to floating point. `None` if it is not such a number.
pub(crate) fn epoch_seconds_text(text: &str) -> Option<i128> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let (negative, digits) = match whole.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, whole),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if digits.is_empty() || digits.len() > 12 || !all_digits(digits) || !all_digits(fraction) {
        return None;
    }
    let seconds: i128 = digits.parse().ok()?;
    let nanos: i128 = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(9)
        .fold(0, |acc, b| acc * 10 + i128::from(b - b'0'));
    let total = seconds * 1_000_000_000 + nanos;
    Some(if negative { -total } else { total })
}

/// Nanoseconds since the epoch of a JSON `ts` number (epoch seconds),
/// rounded to the microsecond Zeek logs. `None` if it is not finite or
/// absurdly far from now.
pub(crate) fn epoch_seconds_f64(seconds: f64) -> Option<i128> {
    if !seconds.is_finite() || seconds.abs() > 1e12 {
        return None;
    }
    Some((seconds * 1e6).round() as i128 * 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_half_open_and_printed_as_written() {
        let w = Window::parse(
            Some("2026-12-01T00:00:00Z"),
            Some("2026-12-01T02:00:00+01:00"),
        )
        .unwrap();
        let start = 1_796_083_200i128 * 1_000_000_000; // 2026-12-01T00:00:00Z
        assert!(w.contains(start));
        assert!(!w.contains(start - 1));
        assert!(w.contains(start + 3_600 * 1_000_000_000 - 1));
        assert!(!w.contains(start + 3_600 * 1_000_000_000));
        assert_eq!(
            w.to_string(),
            "2026-12-01T00:00:00Z..2026-12-01T02:00:00+01:00"
        );
        let open = Window::parse(None, Some("2026-12-01T00:00:00Z")).unwrap();
        assert!(open.is_set() && open.contains(0) && !open.contains(start));
        assert!(!Window::default().is_set());
    }

    #[test]
    fn bad_bounds_name_the_field_and_the_form() {
        let e = Window::parse(Some("yesterday"), None).unwrap_err();
        assert!(
            e.contains("`since`") && e.contains("2026-12-01T00:00:00Z"),
            "{e}"
        );
        let e =
            Window::parse(Some("2026-12-02T00:00:00Z"), Some("2026-12-01T00:00:00Z")).unwrap_err();
        assert!(e.contains("not before `until`"), "{e}");
    }

    #[test]
    fn zeek_seconds_keep_microseconds() {
        assert_eq!(
            epoch_seconds_text("1796083200.000001"),
            Some(1_796_083_200_000_001_000)
        );
        assert_eq!(
            epoch_seconds_text("1796083200"),
            Some(1_796_083_200_000_000_000)
        );
        assert_eq!(epoch_seconds_text("17x"), None);
        assert_eq!(epoch_seconds_text("-"), None);
        assert_eq!(
            epoch_seconds_f64(1_796_083_200.000_001),
            Some(1_796_083_200_000_001_000)
        );
        assert_eq!(epoch_seconds_f64(f64::NAN), None);
    }
}
