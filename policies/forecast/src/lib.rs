//! `forecast`: learn how many jobs each hour of the week usually brings, and
//! have capacity ready for them before they come.
//!
//! The policy remembers, for each of the week's 168 hours (in the pool's
//! time zone), the usual peak of jobs *waiting* at once in that hour — the
//! size of the hour's largest burst, which is what capacity kept ready must
//! cover (jobs already running have their instances): a higher peak is
//! taken at once, a lower one moves it a quarter of the way, so one quiet
//! week forgets little. From the hour now and the hour one `boot` plus a `buffer`
//! ahead (AWS predictive scaling's default buffer is 5 minutes), it takes
//! the larger as the *usual demand*, and
//!
//! - asks the group's warm pool to keep that many instances initialised
//!   and stopped, plus a `headroom` (cheap: a stopped instance bills only
//!   its volume), so a burst of the usual size starts in seconds instead of
//!   a full boot;
//! - keeps up to `hot` of them booted and idle ahead of it (they bill as
//!   running, and leave after the runner's idle timeout without a job, so
//!   `hot` is for pools whose bursts cannot wait for a warm start);
//! - and always serves the queue it sees: `desired` is never below
//!   `waiting + running`. The forecast only ever adds capacity; when the usual
//!   demand falls, desired falls back to the queue's, as the reactive rule
//!   would have it, never below.
//!
//! Until it has seen a week, the forecast is 0 and the policy is the queue
//! rule. The profile lives in the policy's state (168 characters, one per
//! hour, in the group's 256-byte tag), so it survives restarts and Lambda
//! cold starts; a state it cannot read starts the learning again, and the
//! reason says so. Like every example, it needs the contract's `warm`
//! (runner-scaler:policy@0.2.0) and a group with a warm pool for the warm
//! part; without a pool the host ignores `warm`.

use runner_scaler_policy::{
    export, Clock, Decision, Observation, Params, State, StateField, Weekday,
};
use std::time::Duration;

/// The params; an unknown one is refused.
#[derive(Params)]
pub struct Params {
    /// How long an instance takes from launch to its first job (the image's
    /// boot): how far ahead capacity must be asked for.
    #[param(default = "90s", example = "30s")]
    pub boot: Duration,
    /// Extra time ahead of the usual demand.
    #[param(default = "5m", example = "5m")]
    pub buffer: Duration,
    /// The most instances kept booted and idle ahead of the usual demand.
    #[param(default = "0", example = "2")]
    pub hot: u32,
    /// Warm instances beyond the usual burst, in percent of it: bursts vary
    /// from day to day, and a pool emptied by one refills only a boot later.
    #[param(default = "25", example = "25")]
    pub headroom: u32,
}

/// The highest peak one hour's entry can hold (one character of 64).
pub const MAX_LEVEL: u32 = 63;

/// The usual peak of waiting jobs in each hour of the week, Monday 00:00
/// first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile(pub [u8; 168]);

/// The characters of levels 0 to 63.
const DIGITS: &[u8; 64] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/";

impl StateField for Profile {
    const MAX_LEN: usize = 168;

    fn write(&self, out: &mut String) {
        out.extend(
            self.0
                .iter()
                .map(|&level| DIGITS[usize::from(level)] as char),
        );
    }

    fn read(text: &str) -> Option<Profile> {
        let mut profile = [0; 168];
        if text.len() != profile.len() {
            return None;
        }
        for (level, byte) in profile.iter_mut().zip(text.bytes()) {
            *level = DIGITS.iter().position(|&d| d == byte)? as u8;
        }
        Some(Profile(profile))
    }
}

/// What the policy keeps between ticks: the profile, and the hour it is in
/// with its peak so far (folded into the profile when the hour ends).
#[derive(State, Debug, Clone, PartialEq, Eq)]
pub struct Memory {
    pub hour: u8,
    pub peak: u8,
    pub profile: Profile,
}

impl Memory {
    /// Nothing learned yet, in `hour`.
    pub fn new(hour: u8) -> Memory {
        Memory {
            hour,
            peak: 0,
            profile: Profile([0; 168]),
        }
    }

    /// Take in `waiting` jobs seen in `hour`: a new hour folds the last
    /// one's peak into its entry, halfway from the old value (rounded
    /// towards the new).
    pub fn observe(&mut self, hour: u8, waiting: u32) {
        let waiting = waiting.min(MAX_LEVEL) as u8;
        if hour == self.hour {
            self.peak = self.peak.max(waiting);
            return;
        }
        let entry = &mut self.profile.0[usize::from(self.hour)];
        // Up at once to a higher peak; down a quarter of the way to a
        // lower one (rounded up), so one quiet week forgets little.
        *entry = if self.peak >= *entry {
            self.peak
        } else {
            *entry - (*entry - self.peak).div_ceil(4)
        };
        (self.hour, self.peak) = (hour, waiting);
    }

    /// The usual peak of `hour`.
    pub fn usual(&self, hour: u8) -> u32 {
        u32::from(self.profile.0[usize::from(hour)])
    }
}

/// The hour of the week of `clock` moved on by `ahead`, Monday 00:00 = 0.
pub fn hour_of_week(clock: &Clock, ahead: Duration) -> u8 {
    let day = match clock.weekday {
        Weekday::Monday => 0,
        Weekday::Tuesday => 1,
        Weekday::Wednesday => 2,
        Weekday::Thursday => 3,
        Weekday::Friday => 4,
        Weekday::Saturday => 5,
        Weekday::Sunday => 6,
    };
    let minute = day * 1440 + u64::from(clock.hour) * 60 + u64::from(clock.minute);
    ((minute + ahead.as_secs() / 60) % (7 * 1440) / 60) as u8
}

/// The rule.
pub fn decide(observation: &Observation) -> Result<Decision, String> {
    let Params {
        boot,
        buffer,
        hot,
        headroom,
    } = observation.params()?;
    let queue = &observation.queue;
    let jobs = queue.jobs();
    let now = hour_of_week(&observation.clock, Duration::ZERO);
    let mut reason = format!("{queue}");
    let mut memory = match observation.previous_state::<Memory>() {
        Ok(Some(memory)) => memory,
        Ok(None) => Memory::new(now),
        Err(_) => {
            reason += "; a state it cannot read: learning again";
            Memory::new(now)
        }
    };
    memory.observe(now, queue.waiting);
    let ahead = hour_of_week(&observation.clock, boot + buffer);
    let usual = memory.usual(now).max(memory.usual(ahead));
    let ready = hot.min(usual);
    let warm = usual.saturating_add((usual.saturating_mul(headroom)).div_ceil(100));
    reason += &format!("; usual burst {usual} by {}, {warm} warm", at(ahead));
    if ready > jobs {
        reason += &format!(", {ready} hot ahead of it");
    }
    // The forecast only adds: never below the queue.
    Ok(observation
        .decision(jobs.max(ready), reason)
        .with_warm(warm)
        .keep(&memory))
}

/// An hour of the week for people: `Tue 14:00`.
fn at(hour: u8) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    format!("{} {:02}:00", DAYS[usize::from(hour / 24)], hour % 24)
}

export!(decide);

#[cfg(test)]
mod tests {
    use super::*;
    use runner_scaler_policy::CompactState;

    /// Monday 2026-11-23 at `local` (UTC), with `waiting` jobs and a state.
    fn observation(local: &str, waiting: u32, state: Option<&str>) -> Observation {
        Observation::sample()
            .at(local)
            .with_queue(waiting, 0)
            .with_capacity(0, 0, 20)
            .with_warm_pool(0)
            .with_state(state)
    }

    #[test]
    fn the_state_round_trips() {
        // That it fits the host's 256 bytes, `derive(State)` checks when
        // this compiles.
        let mut memory = Memory::new(5);
        memory.profile.0[7] = 63;
        memory.profile.0[167] = 10;
        let text = memory.encode();
        assert!(text.len() <= 256 && text.is_ascii(), "{text}");
        assert_eq!(Memory::decode(&text), Some(memory));
        assert_eq!(Memory::decode("hour=1 peak=2 profile=short"), None);
    }

    #[test]
    fn a_higher_peak_is_taken_at_once_a_lower_one_a_quarter_of_the_way() {
        let mut memory = Memory::new(9);
        memory.observe(9, 4);
        memory.observe(9, 2);
        memory.observe(10, 1);
        assert_eq!((memory.usual(9), memory.hour, memory.peak), (4, 10, 1));
        // A week later, a quieter hour: down a quarter of the gap, rounded up.
        memory.hour = 9;
        memory.peak = 0;
        memory.observe(10, 0);
        assert_eq!(memory.usual(9), 3);
        // Quiet weeks decay it to nothing.
        for _ in 0..3 {
            memory.hour = 9;
            memory.peak = 0;
            memory.observe(10, 0);
        }
        assert_eq!(memory.usual(9), 0);
        // A flood is one character's worth.
        memory.observe(10, 1000);
        memory.observe(11, 0);
        assert_eq!(memory.usual(10), MAX_LEVEL);
    }

    #[test]
    fn hours_of_the_week_wrap_at_sunday_midnight() {
        let monday = observation("2026-11-23T09:30:00", 0, None).clock;
        assert_eq!(hour_of_week(&monday, Duration::ZERO), 9);
        assert_eq!(hour_of_week(&monday, Duration::from_secs(30 * 60)), 10);
        let sunday = observation("2026-11-29T23:59:00", 0, None).clock;
        assert_eq!(hour_of_week(&sunday, Duration::ZERO), 167);
        assert_eq!(hour_of_week(&sunday, Duration::from_secs(60)), 0);
    }

    /// A state that knows Monday 10:00 usually brings 6 jobs.
    fn knows_monday_ten() -> String {
        let mut memory = Memory::new(9);
        memory.profile.0[10] = 6;
        memory.encode()
    }

    #[test]
    fn decisions() {
        struct Case {
            name: &'static str,
            /// Local time on Monday 2026-11-23, UTC.
            at: &'static str,
            waiting: u32,
            params: &'static [(&'static str, &'static str)],
            /// Whether the policy knows that 10:00 usually has 6 waiting.
            knows: bool,
            desired: u32,
            warm: u32,
        }
        let known = knows_monday_ten();
        let cases = [
            Case {
                name: "nothing learned: the queue rule",
                at: "2026-11-23T09:00:00",
                waiting: 3,
                params: &[],
                knows: false,
                desired: 3,
                warm: 0,
            },
            Case {
                name: "6 usual at 10:00, 90 s + 5 min ahead, and 25% more",
                at: "2026-11-23T09:54:00",
                waiting: 0,
                params: &[],
                knows: true,
                desired: 0,
                warm: 8,
            },
            Case {
                name: "no headroom",
                at: "2026-11-23T09:54:00",
                waiting: 0,
                params: &[("headroom", "0")],
                knows: true,
                desired: 0,
                warm: 6,
            },
            Case {
                name: "too early to look at 10:00",
                at: "2026-11-23T09:40:00",
                waiting: 0,
                params: &[],
                knows: true,
                desired: 0,
                warm: 0,
            },
            Case {
                name: "hot ones ahead of it",
                at: "2026-11-23T09:54:00",
                waiting: 0,
                params: &[("hot", "2")],
                knows: true,
                desired: 2,
                warm: 8,
            },
            Case {
                name: "the queue above the forecast is served",
                at: "2026-11-23T10:00:00",
                waiting: 9,
                params: &[("hot", "2")],
                knows: true,
                desired: 9,
                warm: 8,
            },
            Case {
                name: "a longer boot looks further",
                at: "2026-11-23T09:40:00",
                waiting: 0,
                params: &[("boot", "20m")],
                knows: true,
                desired: 0,
                warm: 8,
            },
        ];
        for case in cases {
            let state = case.knows.then_some(known.as_str());
            let mut o = observation(case.at, case.waiting, state);
            for (param, value) in case.params {
                o = o.with_param(param, value);
            }
            let d = decide(&o).unwrap();
            assert_eq!(
                (d.desired, d.warm),
                (case.desired, Some(case.warm)),
                "{}: {}",
                case.name,
                d.reason
            );
            assert!(d.state.is_some(), "{}", case.name);
        }
    }

    #[test]
    fn an_unreadable_state_starts_over_and_says_so() {
        let d = decide(&observation("2026-11-23T09:00:00", 1, Some("garbage"))).unwrap();
        assert_eq!(d.desired, 1);
        assert!(d.reason.contains("learning again"), "{}", d.reason);
    }

    #[test]
    fn malformed_params_are_named() {
        let o = observation("2026-11-23T09:00:00", 0, None).with_param("hot", "many");
        assert!(decide(&o).unwrap_err().contains("param `hot`"));
    }
}
