//! `scheduled`: cron-like windows with a replica floor, in a time zone, evaluated
//! from snapshot time (never a wall clock, so replay and simulation are exact).
//!
//! Params (JSON):
//! ```json
//! {
//!   "timezone": "America/New_York",
//!   "default_replicas": 1,
//!   "windows": [
//!     {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "20:00", "min_replicas": 6},
//!     {"days": ["sat"], "start": "22:00", "end": "02:00", "min_replicas": 3}
//!   ],
//!   "follow_current": false
//! }
//! ```
//! - A window is active from `start` (inclusive) to `end` (exclusive) local time
//!   on the listed days (all days when `days` is omitted). A window whose end is
//!   before its start runs past midnight and belongs to the day it starts.
//! - Desired is the largest floor among active windows, or `default_replicas`.
//!   With `follow_current`, it never goes below the current count (a pure floor
//!   to combine with reactive scaling).

use chrono::{Datelike, NaiveTime, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;
use wasmscale_sdk::{Decision, Policy, Snapshot, parse_params};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    #[serde(default = "utc")]
    timezone: String,
    #[serde(default)]
    default_replicas: u32,
    windows: Vec<RawWindow>,
    #[serde(default)]
    follow_current: bool,
}

fn utc() -> String {
    "UTC".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    #[serde(default)]
    days: Option<Vec<String>>,
    start: String,
    end: String,
    min_replicas: u32,
}

#[derive(Debug, Clone)]
struct Window {
    days: [bool; 7],
    start_min: u32,
    end_min: u32,
    floor: u32,
}

#[derive(Debug, Clone)]
struct Params {
    tz: Tz,
    default_replicas: u32,
    windows: Vec<Window>,
    follow_current: bool,
}

fn parse_time(s: &str, at: &str) -> Result<u32, String> {
    let t = NaiveTime::parse_from_str(s, "%H:%M")
        .map_err(|_| format!("{at}: {s:?} is not a HH:MM time"))?;
    Ok(t.hour() * 60 + t.minute())
}

fn parse_day(s: &str, at: &str) -> Result<usize, String> {
    let d: Weekday = s
        .parse()
        .map_err(|_| format!("{at}: {s:?} is not a weekday (mon..sun)"))?;
    Ok(d.num_days_from_monday() as usize)
}

impl Window {
    /// Is the window active at local `minute` of weekday `day` (0 = Monday)?
    fn active(&self, day: usize, minute: u32) -> bool {
        if self.start_min <= self.end_min {
            self.days[day] && self.start_min <= minute && minute < self.end_min
        } else {
            // Past midnight: the tail belongs to the previous day's window.
            (self.days[day] && minute >= self.start_min)
                || (self.days[(day + 6) % 7] && minute < self.end_min)
        }
    }
}

/// Scheduled floors.
#[derive(Debug, Default)]
pub struct Scheduled {
    params: Option<Params>,
}

impl Policy for Scheduled {
    fn configure(&mut self, params: &str) -> Result<(), String> {
        let raw: RawParams = parse_params(params)?;
        let tz: Tz = raw.timezone.parse().map_err(|_| {
            format!(
                "params.timezone: unknown time zone {:?} (use an IANA name like Europe/Berlin)",
                raw.timezone
            )
        })?;
        let mut windows = Vec::with_capacity(raw.windows.len());
        for (i, w) in raw.windows.iter().enumerate() {
            let at = format!("params.windows[{i}]");
            let mut days = [w.days.is_none(); 7];
            for d in w.days.iter().flatten() {
                days[parse_day(d, &at)?] = true;
            }
            let (start_min, end_min) = (parse_time(&w.start, &at)?, parse_time(&w.end, &at)?);
            if start_min == end_min {
                return Err(format!(
                    "{at}: start and end are equal; the window would be empty"
                ));
            }
            windows.push(Window {
                days,
                start_min,
                end_min,
                floor: w.min_replicas,
            });
        }
        self.params = Some(Params {
            tz,
            default_replicas: raw.default_replicas,
            windows,
            follow_current: raw.follow_current,
        });
        Ok(())
    }

    fn evaluate(&mut self, s: &Snapshot) -> Result<Decision, String> {
        let p = wasmscale_sdk::configured!(self.params, "scheduled")?;
        let ms = i64::try_from(s.time_ms).map_err(|_| "snapshot time out of range")?;
        let local =
            p.tz.timestamp_millis_opt(ms)
                .single()
                .ok_or("snapshot time out of range")?;
        let day = local.weekday().num_days_from_monday() as usize;
        let minute = local.hour() * 60 + local.minute();
        let floor = p
            .windows
            .iter()
            .filter(|w| w.active(day, minute))
            .map(|w| w.floor)
            .max();
        let mut desired = floor.unwrap_or(p.default_replicas);
        if p.follow_current {
            desired = desired.max(s.replicas.current);
        }
        let when = local.format("%a %H:%M %Z");
        let reason = match floor {
            Some(f) => format!("{when}: window floor {f} -> {desired}"),
            None => format!("{when}: no window -> {desired}"),
        };
        Ok(Decision::new(f64::from(desired), reason))
    }
}

use wasmscale_sdk::v2::Declares;

/// Under 0.2 (`wasmscale_sdk::export_policy_as_v2!`): what it reads.
impl Declares for Scheduled {
    /// Time and the replica counts only: no signal.
    fn declares(&self) -> Vec<String> {
        Vec::new()
    }

    /// No replica count beyond `current`.
    fn declares_counts(&self) -> &'static [&'static str] {
        &[]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_local_time_and_dst() {
        let mut p = Scheduled::default();
        p.configure(
            r#"{"timezone":"America/New_York","default_replicas":1,
                "windows":[{"days":["mon","tue","wed","thu","fri"],"start":"08:00","end":"20:00","min_replicas":6},
                           {"days":["fri"],"start":"22:00","end":"02:00","min_replicas":3}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut at = |iso: &str| {
            let t = chrono::DateTime::parse_from_rfc3339(iso)
                .map(|t| t.timestamp_millis() as u64)
                .unwrap_or(0);
            p.evaluate(&Snapshot::new(t, 2))
                .map(|d| d.desired)
                .unwrap_or(-1.0)
        };
        // Wed 2026-07-15 12:30 UTC = 08:30 EDT (UTC-4): inside.
        assert_eq!(at("2026-07-15T12:30:00Z"), 6.0);
        // Wed 2026-01-14 12:30 UTC = 07:30 EST (UTC-5): outside.
        assert_eq!(at("2026-01-14T12:30:00Z"), 1.0);
        // Sat 2026-07-18 05:30 UTC = 01:30 EDT Saturday: Friday's window past midnight.
        assert_eq!(at("2026-07-18T05:30:00Z"), 3.0);
        assert_eq!(at("2026-07-18T06:30:00Z"), 1.0);
    }

    #[test]
    fn bad_params_are_explained() {
        let mut p = Scheduled::default();
        let e = p.configure(r#"{"timezone":"Mars/Olympus","windows":[]}"#);
        assert!(e.is_err_and(|m| m.contains("time zone")));
        let e = p.configure(r#"{"windows":[{"start":"25:00","end":"01:00","min_replicas":1}]}"#);
        assert!(e.is_err_and(|m| m.contains("HH:MM")));
    }
}
