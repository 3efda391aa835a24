//! Dates from milliseconds since the Unix epoch, without a date crate.

/// Formats `ms` since the Unix epoch (UTC) as `YYYY-MM-DD`.
pub fn format_date(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01.
///
/// Howard Hinnant's `civil_from_days`: shift the epoch to 0000-03-01 so that
/// leap days fall at the end of each 400-year era, then count eras, years of
/// the era and days of the year.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_known_dates() {
        assert_eq!(format_date(0), "1970-01-01");
        assert_eq!(format_date(86_399_999), "1970-01-01");
        assert_eq!(format_date(86_400_000), "1970-01-02");
        assert_eq!(format_date(-1), "1969-12-31");
        // 2000-02-29T12:00:00Z, a leap day in a year divisible by 400.
        assert_eq!(format_date(951_825_600_000), "2000-02-29");
        // 2024-12-31T23:59:59Z
        assert_eq!(format_date(1_735_689_599_000), "2024-12-31");
        assert_eq!(format_date(1_735_689_600_000), "2025-01-01");
    }

    #[test]
    fn round_trips_every_day_of_a_few_centuries() {
        // Walk day by day from 1899-12-31 and check the calendar advances properly.
        let mut prev = civil_from_days(-25_568);
        assert_eq!(prev, (1899, 12, 31));
        for days in -25_567..80_000 {
            let next = civil_from_days(days);
            let (py, pm, pd) = prev;
            let expected = if next.2 == 1 {
                if pm == 12 {
                    (py + 1, 1, 1)
                } else {
                    (py, pm + 1, 1)
                }
            } else {
                (py, pm, pd + 1)
            };
            assert_eq!(next, expected, "day {days}");
            prev = next;
        }
    }

    #[test]
    fn month_lengths() {
        // 1900 is not a leap year, 2000 is.
        assert_eq!(civil_from_days(-25_508), (1900, 3, 1));
        assert_eq!(civil_from_days(-25_509), (1900, 2, 28));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
