//! What every rule does with an observation: count the jobs, read its params
//! and state, and turn a wanted capacity into a decision within the pool's
//! bounds.

use crate::{Capacity, CompactState, Decision, FromParams, Observation, Queue};
use std::fmt;

impl Queue {
    /// The jobs that need an instance each, `waiting + running`, saturating at
    /// `u32::MAX` rather than wrapping.
    pub fn jobs(&self) -> u32 {
        self.waiting.saturating_add(self.running)
    }
}

/// The queue as a reason says it: `3 waiting + 2 running`.
impl fmt::Display for Queue {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} waiting + {} running", self.waiting, self.running)
    }
}

impl Capacity {
    /// `wanted`, raised to `min` and lowered to `max`: what the host would
    /// apply. It never panics, even on bounds the wrong way round.
    pub fn clamp(&self, wanted: u32) -> u32 {
        wanted.max(self.min).min(self.max)
    }
}

impl Observation {
    /// The pool's params, parsed into `P`: `let params: Params =
    /// observation.params()?;`. The error names the param at fault.
    pub fn params<P: FromParams>(&self) -> Result<P, String> {
        P::from_params(&self.params)
    }

    /// The state the policy kept on the previous tick: `Ok(None)` when there is
    /// none (the first tick, or after it was cleared), `Err(text)` when the
    /// text is not an `S` (another version of the policy wrote it, or
    /// something else did). A policy should start over on `Err`, and say so in
    /// its reason, rather than fail.
    pub fn previous_state<S: CompactState>(&self) -> Result<Option<S>, &str> {
        match self.state.as_deref() {
            None => Ok(None),
            Some(text) => S::decode(text).map(Some).ok_or(text),
        }
    }

    /// The decision for `wanted` instances: `desired` is `wanted` within the
    /// pool's `[min, max]`, and when that changed it the reason says so
    /// (`; 20 clamped to [0, 10]`). It keeps no state: see
    /// [`Decision::keep`].
    pub fn decision(&self, wanted: u32, mut reason: String) -> Decision {
        let capacity = &self.capacity;
        let desired = capacity.clamp(wanted);
        if desired != wanted {
            reason += &format!("; {wanted} clamped to [{}, {}]", capacity.min, capacity.max);
        }
        Decision {
            desired,
            reason,
            state: None,
            warm: None,
        }
    }
}

impl Decision {
    /// The decision, keeping `state` for the next tick.
    pub fn keep<S: CompactState>(mut self, state: &S) -> Decision {
        self.state = Some(state.encode());
        self
    }

    /// The decision, asking the group's warm pool to keep `warm` instances
    /// ready (the host clamps it to the pool's `warm_max`, and ignores it
    /// for a group without a warm pool).
    pub fn with_warm(mut self, warm: u32) -> Decision {
        self.warm = Some(warm);
        self
    }
}

#[cfg(test)]
mod tests {
    use crate::{Observation, State};

    #[test]
    fn jobs_saturate() {
        let o = Observation::sample().with_queue(u32::MAX, 2);
        assert_eq!(o.queue.jobs(), u32::MAX);
        assert_eq!(
            format!("{}", o.with_queue(3, 2).queue),
            "3 waiting + 2 running"
        );
    }

    #[test]
    fn decisions_are_clamped_and_say_so() {
        let o = Observation::sample().with_capacity(1, 2, 10);
        let d = o.decision(5, "five".into());
        assert_eq!((d.desired, d.reason.as_str(), d.state), (5, "five", None));
        assert_eq!(d.warm, None);
        assert_eq!(o.decision(1, "r".into()).with_warm(3).warm, Some(3));
        assert_eq!(
            o.decision(20, "r".into()).reason,
            "r; 20 clamped to [2, 10]"
        );
        assert_eq!(o.decision(0, "r".into()).desired, 2);
        let upside_down = Observation::sample().with_capacity(0, 5, 3);
        assert_eq!(upside_down.decision(4, "r".into()).desired, 3, "no panic");
    }

    #[derive(State, Debug, PartialEq)]
    struct Since {
        since: i64,
    }

    #[test]
    fn state_round_trips_through_a_decision() {
        let o = Observation::sample();
        assert_eq!(o.previous_state::<Since>(), Ok(None));
        let d = o.decision(1, "r".into()).keep(&Since { since: 42 });
        assert_eq!(d.state.as_deref(), Some("since=42"));
        let next = o.with_state(d.state.as_deref());
        assert_eq!(next.previous_state(), Ok(Some(Since { since: 42 })));
        let garbage = next.with_state("since yesterday");
        assert_eq!(garbage.previous_state::<Since>(), Err("since yesterday"));
    }
}
