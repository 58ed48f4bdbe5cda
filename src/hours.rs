//! Business hours per department: a weekly schedule in the department's own time zone, plus
//! holidays. Outside them a new chat gets the offline reply at once and is never queued.
//!
//! `jiff` resolves IANA zones from the system database (`/usr/share/zoneinfo`), with daylight
//! saving handled, so "09:00 in Berlin" means the right instant all year.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

use crate::model::Millis;

/// Opening hours in the department's own IANA time zone; each day a list of `HH:MM-HH:MM`
/// spans (24:00 allowed as an end); holidays are whole days closed.
#[derive(Clone, Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Hours {
    /// IANA zone, e.g. `Europe/Berlin`.
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    #[serde(default)]
    #[schema(example = json!(["09:00-12:00", "13:00-17:00"]))]
    pub monday: Vec<String>,
    #[serde(default)]
    pub tuesday: Vec<String>,
    #[serde(default)]
    pub wednesday: Vec<String>,
    #[serde(default)]
    pub thursday: Vec<String>,
    #[serde(default)]
    pub friday: Vec<String>,
    #[serde(default)]
    pub saturday: Vec<String>,
    #[serde(default)]
    pub sunday: Vec<String>,
    /// Whole days closed, `YYYY-MM-DD` in the department's zone.
    #[serde(default)]
    #[schema(value_type = Vec<String>, format = Date)]
    pub holidays: Vec<String>,
}

type Span = (Time, Time);

fn parse_span(s: &str) -> Result<Span, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("`{s}`: expected HH:MM-HH:MM"))?;
    let a: Time = a.trim().parse().map_err(|e| format!("`{s}`: {e}"))?;
    let b: Time = if b.trim() == "24:00" {
        Time::MAX
    } else {
        b.trim().parse().map_err(|e| format!("`{s}`: {e}"))?
    };
    if a >= b {
        return Err(format!("`{s}`: the end must come after the start"));
    }
    Ok((a, b))
}

impl Hours {
    fn day(&self, w: Weekday) -> (&'static str, &[String]) {
        match w {
            Weekday::Monday => ("monday", &self.monday),
            Weekday::Tuesday => ("tuesday", &self.tuesday),
            Weekday::Wednesday => ("wednesday", &self.wednesday),
            Weekday::Thursday => ("thursday", &self.thursday),
            Weekday::Friday => ("friday", &self.friday),
            Weekday::Saturday => ("saturday", &self.saturday),
            Weekday::Sunday => ("sunday", &self.sunday),
        }
    }

    /// Checks every field; returns the field's name and the problem.
    pub fn validate(&self) -> Result<(), (String, String)> {
        TimeZone::get(&self.timezone)
            .map_err(|e| ("timezone".to_owned(), format!("unknown time zone: {e}")))?;
        for w in [
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
            Weekday::Saturday,
            Weekday::Sunday,
        ] {
            let (name, spans) = self.day(w);
            for (i, s) in spans.iter().enumerate() {
                parse_span(s).map_err(|p| (format!("{name}[{i}]"), p))?;
            }
        }
        for (i, h) in self.holidays.iter().enumerate() {
            h.parse::<Date>().map_err(|e| {
                (
                    format!("holidays[{i}]"),
                    format!("expected YYYY-MM-DD: {e}"),
                )
            })?;
        }
        Ok(())
    }

    /// Whether the department is open at an instant. An unparseable entry (impossible after
    /// validation) counts as closed.
    pub fn is_open(&self, at: Millis) -> bool {
        let Ok(tz) = TimeZone::get(&self.timezone) else {
            return false;
        };
        let Ok(ts) = jiff::Timestamp::from_millisecond(at) else {
            return false;
        };
        let local = ts.to_zoned_datetime(tz);
        let date = local.date();
        if self
            .holidays
            .iter()
            .any(|h| h.parse::<Date>().is_ok_and(|d| d == date))
        {
            return false;
        }
        let time = local.time();
        self.day(local.weekday())
            .1
            .iter()
            .filter_map(|s| parse_span(s).ok())
            .any(|(from, to)| time >= from && time < to)
    }
}

impl Hours {
    /// When the department next opens after `at`, if it is closed at `at` and opens within two
    /// weeks (holidays skipped): what a visitor is told ("back Monday 09:00").
    pub fn next_open(&self, at: Millis) -> Option<Millis> {
        if self.is_open(at) {
            return None;
        }
        let tz = TimeZone::get(&self.timezone).ok()?;
        let today = jiff::Timestamp::from_millisecond(at)
            .ok()?
            .to_zoned_datetime(tz.clone())
            .date();
        let holidays: Vec<Date> = self
            .holidays
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect();
        let mut date = today;
        for _ in 0..=14 {
            if !holidays.contains(&date) {
                let mut starts: Vec<Time> = self
                    .day(date.weekday())
                    .1
                    .iter()
                    .filter_map(|s| parse_span(s).ok())
                    .map(|(from, _)| from)
                    .collect();
                starts.sort();
                for from in starts {
                    // A start inside a DST gap opens at the first instant after it.
                    let Ok(open) = date.to_datetime(from).to_zoned_datetime(tz.clone()) else {
                        continue;
                    };
                    let ms = open.timestamp().as_millisecond();
                    if ms > at {
                        return Some(ms);
                    }
                }
            }
            date = date.tomorrow().ok()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> Hours {
        Hours {
            timezone: "Europe/Berlin".into(),
            monday: vec!["09:00-17:00".into()],
            tuesday: vec!["09:00-12:00".into(), "13:00-17:00".into()],
            wednesday: vec![],
            thursday: vec![],
            friday: vec!["09:00-24:00".into()],
            saturday: vec![],
            sunday: vec![],
            holidays: vec!["2026-12-21".into()],
        }
    }

    fn at(s: &str) -> Millis {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    /// The schedule applies in the department's zone, across DST, with lunch breaks.
    #[test]
    fn schedule_in_local_time() {
        let h = berlin();
        // Monday 2026-11-23: 08:30 UTC is 09:30 in Berlin (UTC+1 in winter).
        assert!(h.is_open(at("2026-11-23T08:30:00Z")));
        assert!(!h.is_open(at("2026-11-23T07:59:00Z")));
        assert!(!h.is_open(at("2026-11-23T16:00:00Z")));
        // Summer: 2026-06-22 is a Monday; 07:30 UTC is 09:30 in Berlin (UTC+2).
        assert!(h.is_open(at("2026-06-22T07:30:00Z")));
        // Tuesday lunch break.
        assert!(!h.is_open(at("2026-11-24T11:30:00Z")));
        assert!(h.is_open(at("2026-11-24T12:30:00Z")));
        // Friday until midnight; Saturday closed.
        assert!(h.is_open(at("2026-11-27T22:59:00Z")));
        assert!(!h.is_open(at("2026-11-27T23:00:00Z")));
    }

    /// A holiday closes the whole local day, even inside the weekly schedule.
    #[test]
    fn holidays_close() {
        let h = berlin();
        assert!(!h.is_open(at("2026-12-21T10:00:00Z")));
        assert!(h.is_open(at("2026-12-28T10:00:00Z")));
    }

    /// Closed: the next opening, in the department's zone, past breaks, weekends and holidays;
    /// open: none.
    #[test]
    fn next_opening() {
        let h = berlin();
        // Open now: nothing to wait for.
        assert_eq!(h.next_open(at("2026-11-23T08:30:00Z")), None);
        // Monday before 09:00 Berlin: today at 09:00 (08:00 UTC).
        assert_eq!(
            h.next_open(at("2026-11-23T07:00:00Z")),
            Some(at("2026-11-23T08:00:00Z"))
        );
        // Tuesday's lunch break: 13:00 Berlin.
        assert_eq!(
            h.next_open(at("2026-11-24T11:30:00Z")),
            Some(at("2026-11-24T12:00:00Z"))
        );
        // Saturday: Monday 09:00.
        assert_eq!(
            h.next_open(at("2026-11-28T10:00:00Z")),
            Some(at("2026-11-30T08:00:00Z"))
        );
        // Sunday before the Monday holiday (2026-12-21): Tuesday 09:00.
        assert_eq!(
            h.next_open(at("2026-12-20T10:00:00Z")),
            Some(at("2026-12-22T08:00:00Z"))
        );
        // Never open: nothing within two weeks.
        let never = Hours {
            monday: vec![],
            tuesday: vec![],
            friday: vec![],
            ..berlin()
        };
        assert_eq!(never.next_open(at("2026-11-23T07:00:00Z")), None);
    }

    /// Bad entries are reported with their field.
    #[test]
    fn validation_names_the_field() {
        let mut h = berlin();
        h.tuesday[1] = "17:00-13:00".into();
        assert_eq!(h.validate().unwrap_err().0, "tuesday[1]");
        let mut h = berlin();
        h.timezone = "Mars/Olympus".into();
        assert_eq!(h.validate().unwrap_err().0, "timezone");
    }
}
