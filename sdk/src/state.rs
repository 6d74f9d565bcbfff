//! State: a small struct a policy keeps from one tick to the next, written
//! as `name=value` pairs separated by spaces (`empty_since=1795424400
//! streak=3`) so that it reads well in the group's tag and in logs.
//!
//! The host keeps at most [`MAX_STATE_BYTES`] and refuses a longer state as a
//! policy error on the tick. [`derive(State)`](derive@crate::State) moves that
//! failure to compile time: every field type knows its longest text, so the
//! struct knows its own, and a struct that could outgrow the limit does not
//! compile.

/// The most state the host keeps: an Auto Scaling group tag's value.
pub const MAX_STATE_BYTES: usize = 256;

/// A struct kept as the policy's state, from `#[derive(State)]`.
pub trait CompactState: Sized {
    /// The longest [`encode`](CompactState::encode) can return, in bytes.
    const MAX_LEN: usize;

    /// The state's text: `name=value` pairs, `None` fields left out.
    fn encode(&self) -> String;

    /// The state `text` stands for, or `None` if it is not one: garbage, or
    /// the state of another version of the policy (a field it lacks or does
    /// not know).
    fn decode(text: &str) -> Option<Self>;
}

/// A type a state field can be: its text is printable, has no spaces or `=`,
/// and a known longest length.
pub trait StateField: Sized {
    /// The longest text [`write`](StateField::write) appends, in bytes.
    const MAX_LEN: usize;

    /// Appends the value's text: printable, no spaces or `=`, at most
    /// `MAX_LEN` bytes (checked in debug builds, so in the policy's tests).
    fn write(&self, out: &mut String);

    /// The value `text` stands for, if any.
    fn read(text: &str) -> Option<Self>;

    /// The value of a field the text leaves out: none, unless the field is
    /// optional.
    fn absent() -> Option<Self> {
        None
    }

    /// Whether to leave the field out of the text.
    fn is_absent(&self) -> bool {
        false
    }
}

macro_rules! numbers {
    ($($t:ty: $max:literal $(, $exp:literal)?);*) => {$(
        impl StateField for $t {
            const MAX_LEN: usize = $max;
            fn write(&self, out: &mut String) {
                // `format!` is in every policy already; a `String` writer
                // (`write!`) would be compiled in for this one use.
                *out += &format!(concat!("{", $(":", $exp,)? "}"), self);
            }
            fn read(text: &str) -> Option<$t> {
                text.parse().ok()
            }
        }
    )*};
}

// The longest texts: i64::MIN ("-9223372036854775808") and so on; floats in
// scientific notation, which bounds their length ("-2.2250738585072014e-308").
numbers!(u8: 3; u16: 5; u32: 10; u64: 20; i8: 4; i16: 6; i32: 11; i64: 20; f32: 15, "e"; f64: 24, "e");

impl StateField for bool {
    const MAX_LEN: usize = 5;
    fn write(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
    fn read(text: &str) -> Option<bool> {
        text.parse().ok()
    }
}

/// Left out of the text when `None`.
impl<T: StateField> StateField for Option<T> {
    const MAX_LEN: usize = T::MAX_LEN;
    fn write(&self, out: &mut String) {
        if let Some(value) = self {
            value.write(out);
        }
    }
    fn read(text: &str) -> Option<Option<T>> {
        T::read(text).map(Some)
    }
    fn absent() -> Option<Option<T>> {
        Some(None)
    }
    fn is_absent(&self) -> bool {
        self.is_none()
    }
}

/// Appends `key=value` to `out`, after a space if `out` has pairs already.
/// For the derive's generated code.
#[doc(hidden)]
pub fn write_field<T: StateField>(out: &mut String, key: &str, value: &T) {
    if value.is_absent() {
        return;
    }
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(key);
    out.push('=');
    let start = out.len();
    value.write(out);
    // The host refuses control characters in a state; spaces and `=` would
    // not read back.
    debug_assert!(
        out.len() - start <= T::MAX_LEN
            && !out[start..].contains(|c: char| c == ' ' || c == '=' || c.is_control()),
        "the StateField impl of {} wrote {:?}: longer than its MAX_LEN ({}), or with a space, \
         `=` or a control character",
        std::any::type_name::<T>(),
        &out[start..],
        T::MAX_LEN,
    );
}

/// Splits `text` into the values of `keys`, in `values` (one per key): false
/// if a pair is not `key=value`, names a key not in `keys`, or names one
/// twice. For the derive's generated code; not generic, so one copy serves
/// every state.
#[doc(hidden)]
#[inline(never)]
pub fn split<'a>(text: &'a str, keys: &[&str], values: &mut [Option<&'a str>]) -> bool {
    // By bytes and `get`: spaces and `=` are ASCII, and this takes neither
    // `split`'s searcher nor the panics of `&text[..i]` into the policy.
    let mut rest = text;
    while !rest.is_empty() {
        let space = rest.bytes().position(|b| b == b' ').unwrap_or(rest.len());
        let pair = rest.get(..space).unwrap_or_default();
        rest = rest.get(space + 1..).unwrap_or_default();
        if pair.is_empty() {
            continue;
        }
        let Some(eq) = pair.bytes().position(|b| b == b'=') else {
            return false;
        };
        let (key, value) = (pair.get(..eq), pair.get(eq + 1..).unwrap_or_default());
        let slot = keys.iter().position(|k| Some(*k) == key);
        match slot.and_then(|i| values.get_mut(i)) {
            Some(slot) if slot.is_none() => *slot = Some(value),
            _ => return false,
        }
    }
    true
}

/// The value of a field from its text, or from its absence. For the derive's
/// generated code.
#[doc(hidden)]
pub fn field<T: StateField>(text: Option<&str>) -> Option<T> {
    match text {
        Some(text) => T::read(text),
        None => T::absent(),
    }
}

/// Fails the build of a state whose longest text is over [`MAX_STATE_BYTES`].
/// For the derive's generated code.
#[doc(hidden)]
pub const fn assert_fits(max_len: usize) {
    assert!(
        max_len <= MAX_STATE_BYTES,
        "this #[derive(State)] struct can take more than the 256 bytes the host keeps: \
         drop fields, or use smaller types"
    );
}

#[cfg(test)]
mod tests {
    use crate::{CompactState, State};

    #[derive(State, Debug, PartialEq)]
    struct Cooldown {
        empty_since: i64,
    }

    #[derive(State, Debug, PartialEq)]
    struct Streaks {
        idle: u32,
        busy: Option<u16>,
        warm: bool,
        rate: Option<f64>,
    }

    #[test]
    fn one_field_is_name_equals_value() {
        let state = Cooldown {
            empty_since: 1_795_424_400,
        };
        assert_eq!(state.encode(), "empty_since=1795424400");
        assert_eq!(Cooldown::decode("empty_since=1795424400"), Some(state));
        assert_eq!(Cooldown::MAX_LEN, "empty_since=".len() + 20);
    }

    #[test]
    fn fields_in_order_none_left_out() {
        let state = Streaks {
            idle: 3,
            busy: None,
            warm: true,
            rate: Some(0.25),
        };
        assert_eq!(state.encode(), "idle=3 warm=true rate=2.5e-1");
        assert_eq!(Streaks::decode(&state.encode()), Some(state));
        assert_eq!(
            Streaks::decode("warm=false idle=0"),
            Some(Streaks {
                idle: 0,
                busy: None,
                warm: false,
                rate: None
            }),
            "any order; optional fields may be missing"
        );
    }

    #[test]
    fn anything_else_is_not_a_state() {
        for bad in [
            "",
            "since yesterday",
            "empty_since=",
            "empty_since=soon",
            "empty_since=1 empty_since=2",
            "empty_since=1 other=2",
            "empty_since=99999999999999999999",
        ] {
            assert_eq!(Cooldown::decode(bad), None, "{bad:?}");
        }
        assert_eq!(Streaks::decode("idle=1"), None, "warm is required");
    }

    #[test]
    fn the_longest_state_is_within_its_max_len() {
        let longest = Streaks {
            idle: u32::MAX,
            busy: Some(u16::MAX),
            warm: false,
            rate: Some(-f64::MIN_POSITIVE),
        };
        assert_eq!(longest.encode().len(), Streaks::MAX_LEN);
        let min = Cooldown {
            empty_since: i64::MIN,
        };
        assert_eq!(min.encode().len(), Cooldown::MAX_LEN);
    }
}
