//! A time zone by its IANA name, reading only that zone: the system's
//! zoneinfo file of that name when there is one. jiff's `TimeZone::get`
//! first lists every zone the system has, by walking the whole zoneinfo
//! tree (some 600 files and directories), to look a name up
//! case-insensitively; here that database is consulted only for a name no
//! file answers (another case, a zone the system lacks, no system database
//! at all: jiff then uses the copy compiled in), so the answer is jiff's
//! in every case.

use jiff::tz::TimeZone;
use std::path::{Component, Path, PathBuf};

/// Where jiff looks for the system's zoneinfo when `TZDIR` names none, in
/// its order.
const ZONEINFO_DIRECTORIES: [&str; 3] = [
    "/usr/share/zoneinfo",
    "/usr/share/lib/zoneinfo",
    "/etc/zoneinfo",
];

/// The time zone named `name` (`Europe/Berlin`, `UTC`), as
/// `jiff::tz::TimeZone::get` finds it.
pub fn named(name: &str) -> Result<TimeZone, jiff::Error> {
    // jiff's own special case, before any database.
    if name.eq_ignore_ascii_case("UTC") {
        return Ok(TimeZone::UTC);
    }
    if let Some(zone) = zoneinfo_dir().and_then(|dir| from_dir(&dir, name)) {
        return Ok(zone);
    }
    TimeZone::get(name)
}

/// The directory jiff reads: `TZDIR`, else the first of the usual places
/// that exists.
fn zoneinfo_dir() -> Option<PathBuf> {
    std::env::var_os("TZDIR")
        .map(PathBuf::from)
        .into_iter()
        .chain(ZONEINFO_DIRECTORIES.iter().map(PathBuf::from))
        .find(|dir| dir.is_dir())
}

/// The zone `name` from its file in `dir`, if the name is a zone's path
/// there and the file is a zone (TZif).
fn from_dir(dir: &Path, name: &str) -> Option<TimeZone> {
    let file = dir.join(zone_path(name)?);
    let data = crate::input_file::read(&file, crate::input_file::MAX_TIME_ZONE_BYTES).ok()?;
    TimeZone::tzif(name, &data).ok()
}

/// `name` as a path below a zoneinfo directory: plain names only (no root,
/// no `.` or `..`), and not in the `posix/` or `right/` trees, which jiff
/// does not offer either.
fn zone_path(name: &str) -> Option<&Path> {
    let path = Path::new(name);
    let mut components = path.components();
    let first = components.next()?;
    let plain = |c: Component| matches!(c, Component::Normal(_));
    if !plain(first)
        || matches!(first, Component::Normal(n) if n == "posix" || n == "right")
        || !components.all(plain)
        || name.ends_with('/')
    {
        return None;
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TZif file (version 1) of one fixed zone, UTC+01:30, "TST".
    fn tzif() -> Vec<u8> {
        let mut data = b"TZif".to_vec();
        data.extend([0u8; 16]); // version 1, reserved
                                // isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt
        for count in [0u32, 0, 0, 0, 1, 4] {
            data.extend(count.to_be_bytes());
        }
        data.extend(5400i32.to_be_bytes()); // utoff
        data.extend([0, 0]); // isdst, desigidx
        data.extend(b"TST\0");
        data
    }

    #[test]
    fn a_zone_is_read_from_its_own_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("Test")).unwrap();
        std::fs::write(dir.path().join("Test/Nowhere"), tzif()).unwrap();
        // No database has this zone: the answer can only be the file's.
        let zone = from_dir(dir.path(), "Test/Nowhere").unwrap();
        assert_eq!(zone.iana_name(), Some("Test/Nowhere"));
        assert_eq!(zone.to_offset(jiff::Timestamp::UNIX_EPOCH).seconds(), 5400);
        // Not a zone file, or not there.
        std::fs::write(dir.path().join("Test/zone.tab"), "# not a zone").unwrap();
        assert!(from_dir(dir.path(), "Test/zone.tab").is_none());
        assert!(from_dir(dir.path(), "Test/Elsewhere").is_none());
        assert!(from_dir(dir.path(), "Test").is_none());
    }

    #[test]
    fn only_plain_names_become_paths() {
        assert_eq!(
            zone_path("America/Argentina/Salta"),
            Some(Path::new("America/Argentina/Salta"))
        );
        for name in [
            "",
            "/etc/passwd",
            "../etc/passwd",
            "Europe/../../etc/passwd",
            "./Europe/Berlin",
            "Europe/Berlin/",
            "posix/Europe/Berlin",
            "right/Europe/Berlin",
        ] {
            assert_eq!(zone_path(name), None, "{name:?}");
        }
    }

    #[test]
    fn every_name_gets_the_zone_jiff_gives() {
        let instants: Vec<jiff::Timestamp> = [
            "2026-01-15T12:00:00Z",
            "2026-03-29T01:30:00Z",
            "2026-07-01T00:00:00Z",
            "2026-10-25T00:59:00Z",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        for name in [
            "UTC",
            "utc",
            "Europe/Berlin",
            "europe/BERLIN",
            "America/New_York",
            "US/Pacific",
            "Asia/Kolkata",
            "Etc/GMT+5",
        ] {
            let ours = named(name).unwrap();
            let jiffs = TimeZone::get(name).unwrap();
            assert_eq!(ours.iana_name(), jiffs.iana_name(), "{name}");
            for at in &instants {
                assert_eq!(ours.to_offset(*at), jiffs.to_offset(*at), "{name} at {at}");
            }
        }
        for name in ["Mars/Olympus", "", "../etc/passwd", "posix/Europe/Berlin"] {
            assert_eq!(named(name).is_ok(), TimeZone::get(name).is_ok(), "{name:?}");
        }
        assert!(named("Mars/Olympus").is_err());
    }
}
