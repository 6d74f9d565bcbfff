//! A pool's bounds: what the scaler may set its group to. The
//! configuration writes them, the planner ([`crate::plan`]) keeps every
//! decision within them.

/// The pool's side of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// The least desired capacity the scaler sets.
    pub min: u32,
    /// The most desired capacity the scaler sets (the group's own `MaxSize`
    /// is widened to it when it must be).
    pub max: u32,
    /// Lower desired capacity even when instances that are not protected
    /// from scale-in could be terminated (one of them may run a job).
    pub allow_unprotected_scale_in: bool,
    /// The most instances the policy may keep in the group's warm pool.
    pub warm_max: u32,
}
