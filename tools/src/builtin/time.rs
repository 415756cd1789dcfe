//! `current_time`: the date and time, in UTC.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::tool::{Tool, ToolFuture, ToolSpec};
use crate::Result;

/// `current_time()`: `{"utc": "2026-12-01T09:30:00Z", "unix": 1796117400, "weekday": "Tuesday"}`.
pub struct CurrentTime {
    spec: ToolSpec,
}

impl CurrentTime {
    /// The tool.
    pub fn new() -> Result<Self> {
        Ok(CurrentTime {
            spec: ToolSpec::new(
                "current_time",
                "The current date and time in UTC (ISO 8601), the Unix time and the weekday.",
                json!({"type": "object", "properties": {}, "additionalProperties": false}),
            )?,
        })
    }
}

impl Tool for CurrentTime {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, _args: Value) -> ToolFuture<'_> {
        Box::pin(async move {
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            Ok(time_json(secs))
        })
    }
}

/// The tool's answer for a Unix time.
pub(crate) fn time_json(secs: i64) -> Value {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = [
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
        "Monday",
        "Tuesday",
        "Wednesday",
    ];
    json!({
        "utc": format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60),
        "unix": secs,
        "weekday": WEEKDAYS[days.rem_euclid(7) as usize],
    })
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Hinnant's algorithm).
/// The engine's template code has the same ten lines for `strftime_now`; this crate must not
/// depend on the engine (and through it on candle), so the few lines are kept here too.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(time_json(0)["utc"], "1970-01-01T00:00:00Z");
        assert_eq!(time_json(0)["weekday"], "Thursday");
        // 2000-02-29 12:34:56 UTC, a Tuesday.
        assert_eq!(time_json(951_827_696)["utc"], "2000-02-29T12:34:56Z");
        assert_eq!(time_json(951_827_696)["weekday"], "Tuesday");
        // 2026-12-01 00:00:00 UTC, a Tuesday.
        assert_eq!(time_json(1_796_083_200)["utc"], "2026-12-01T00:00:00Z");
        assert_eq!(time_json(1_796_083_200)["weekday"], "Tuesday");
        assert_eq!(time_json(-1)["utc"], "1969-12-31T23:59:59Z");
    }
}
