"""`business-hours`, in Python: a warm floor of instances during business
hours, plus one instance for every job.

The same rule, params and messages as the Rust example in
`policies/business-hours/src/lib.rs`, and tested by its `cases.toml`:

    desired = max(warm if within business hours else 0, waiting + running)

clamped to `[min, max]`. The hours are read from the tick's `clock`, which is
already in the pool's time zone, so they follow daylight saving.

Params (all optional): `warm` (default `1`), `days` (default `mon-fri`, day
names `mon` .. `sun` in ranges and comma lists; a range may run past Sunday),
`hours` (default `08-18`, from the first hour up to, not including, the
second; `00-24` is all day; hours across midnight are refused). An unknown
param is refused, so that a typo (`wram`) is not silently ignored.

The rule is the plain function `decide`; `Decider` only binds it to the WIT
export, so `test_app.py` can run it natively.
"""

import re
from dataclasses import dataclass
from typing import List, Tuple

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports.types import Decision, Observation

# Day names, Monday first (the WIT `weekday` enum's order).
DAY_NAMES = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

# What Rust's `str::trim` removes (Unicode White_Space); Python's own `strip()`
# removes four separator controls more, and the messages must not differ.
WHITESPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)

# A whole number as Rust parses one: an optional `+`, ASCII digits only.
WHOLE_NUMBER = re.compile(r"\+?[0-9]+")


@dataclass
class Params:
    warm: int
    days: List[bool]
    start: int
    end: int


class Decider(exports.Decider):
    def decide(self, observation: Observation) -> Decision:
        try:
            return decide(observation)
        except ValueError as err:
            raise Err(str(err))


def decide(observation: Observation) -> Decision:
    """The decision for one observation; raises ValueError naming a bad param."""
    params = parse_params(observation.params)
    queue = observation.queue
    capacity = observation.capacity
    clock = observation.clock

    day = clock.weekday.value
    is_open = params.days[day] and params.start <= clock.hour < params.end
    floor = params.warm if is_open else 0
    jobs = min(queue.waiting + queue.running, 2**32 - 1)  # Rust's saturating_add
    wanted = max(floor, jobs)
    desired = min(max(wanted, capacity.min), capacity.max)

    if is_open:
        verdict = f"within business hours, warm floor {params.warm}"
    else:
        verdict = "outside business hours, no warm floor"
    reason = (
        f"{queue.waiting} waiting + {queue.running} running; "
        f"{DAY_NAMES[day]} {clock.hour:02}:{clock.minute:02} {clock.time_zone} is {verdict}"
    )
    if desired != wanted:
        reason += f"; {wanted} clamped to [{capacity.min}, {capacity.max}]"
    return Decision(desired=desired, reason=reason, state=None, warm=None)


def parse_params(params: List[Tuple[str, str]]) -> Params:
    """`warm`, `days` and `hours`, with their defaults."""
    parsed = Params(warm=1, days=[True] * 5 + [False] * 2, start=8, end=18)
    for name, value in params:
        if name == "warm":
            warm = parse_whole(value, 2**32 - 1)
            if warm is None:
                raise ValueError(
                    f"param `{name}`: expected a whole number, e.g. `2`, got {quote(value)}"
                )
            parsed.warm = warm
        elif name == "days":
            parsed.days = parse_days(value)
        elif name == "hours":
            parsed.start, parsed.end = parse_hours(value)
        else:
            raise ValueError(
                f"param `{name}`: unknown; this policy takes `warm`, `days` and `hours`"
            )
    return parsed


def parse_days(value: str) -> List[bool]:
    """A comma list of days and day ranges, e.g. `mon-wed,fri`."""
    days = [False] * 7
    for item in value.split(","):
        first, dash, last = item.partition("-")
        first, last = day_index(first), day_index(last if dash else first)
        if first is None or last is None:
            raise ValueError(
                "param `days`: expected day names mon..sun in ranges or a comma list, "
                f"e.g. `mon-fri` or `mon,wed,fri`, got {quote(value)}"
            )
        # Walk from the first day to the last, past Sunday if need be.
        day = first
        days[day] = True
        while day != last:
            day = (day + 1) % 7
            days[day] = True
    return days


def parse_hours(value: str) -> Tuple[int, int]:
    """`HH-HH`: a start hour 0..=23 and an end hour up to 24 after it."""
    start, dash, end = value.partition("-")
    start, end = parse_whole(start, 255), parse_whole(end, 255)
    if dash and start is not None and end is not None and start < end <= 24:
        return start, end
    raise ValueError(
        "param `hours`: expected `HH-HH` with hours 00 to 24 and the start before the end, "
        f"e.g. `08-18` or `00-24`, got {quote(value)}"
    )


def day_index(name: str):
    """Monday is 0, Sunday 6; None for anything else."""
    name = name.strip(WHITESPACE)
    if not name.isascii():
        return None
    try:
        return DAY_NAMES.index(name.lower())
    except ValueError:
        return None


def parse_whole(value: str, largest: int):
    """`value`, trimmed, as a whole number up to `largest`, or None."""
    value = value.strip(WHITESPACE)
    if not WHOLE_NUMBER.fullmatch(value):
        return None
    number = int(value)
    return number if number <= largest else None


def quote(value: str) -> str:
    """`value` quoted and escaped as Rust's `{:?}` does, so the messages match
    the Rust policy's: `"lots"`, `"a\\tb"`, `"\\u{7}"`."""
    escaped = []
    for char in value:
        if char in ESCAPES:
            escaped.append(ESCAPES[char])
        elif char.isprintable():
            escaped.append(char)
        else:
            escaped.append(f"\\u{{{ord(char):x}}}")
    return '"' + "".join(escaped) + '"'


ESCAPES = {"\0": "\\0", "\t": "\\t", "\r": "\\r", "\n": "\\n", '"': '\\"', "\\": "\\\\"}
