// `business-hours`, in JavaScript: a warm floor of instances during business
// hours, plus one instance for every job.
//
// The same rule, params and messages as the Rust example in
// `policies/business-hours/src/lib.rs`, and tested by its `cases.toml`:
//
//     desired = max(warm if within business hours else 0, waiting + running)
//
// clamped to `[min, max]`. The hours are read from the tick's `clock`, which
// is already in the pool's time zone, so they follow daylight saving.
//
// Params (all optional): `warm` (default `1`), `days` (default `mon-fri`, day
// names `mon` .. `sun` in ranges and comma lists; a range may run past
// Sunday), `hours` (default `08-18`, from the first hour up to, not including,
// the second; `00-24` is all day; hours across midnight are refused). An
// unknown param is refused, so that a typo (`wram`) is not silently ignored.
//
// The rule is the plain function `decide`; the `decider` export only binds it
// to the WIT interface, so `app.test.js` can run it natively with `node --test`.

/** Day names, Monday first (the WIT `weekday` enum's order). */
const DAY_NAMES = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];

/** The largest u32: WIT counts are u32, and Rust's `saturating_add` stops there. */
const U32_MAX = 2 ** 32 - 1;

/**
 * What Rust's `str::trim` removes (Unicode White_Space); JavaScript's own
 * `trim()` removes U+FEFF too, and the messages must not differ.
 */
const EDGE_SPACE =
  /^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;

/** A whole number as Rust parses one: an optional `+`, ASCII digits only. */
const WHOLE_NUMBER = /^\+?[0-9]+$/;

/** The WIT export `runner-scaler:policy/decider`. A thrown string is the `err`. */
export const decider = {
  decide(observation) {
    try {
      return decide(observation);
    } catch (err) {
      if (err instanceof ParamError) throw err.message;
      throw err;
    }
  },
};

/** A malformed or unknown param. */
export class ParamError extends Error {}

/** The decision for one observation; throws a ParamError naming a bad param. */
export function decide(observation) {
  const params = parseParams(observation.params);
  const { queue, capacity, clock } = observation;

  const day = WEEKDAYS.indexOf(clock.weekday);
  const open = params.days[day] && params.start <= clock.hour && clock.hour < params.end;
  const floor = open ? params.warm : 0;
  const jobs = Math.min(queue.waiting + queue.running, U32_MAX);
  const wanted = Math.max(floor, jobs);
  const desired = Math.min(Math.max(wanted, capacity.min), capacity.max);

  const verdict = open
    ? `within business hours, warm floor ${params.warm}`
    : "outside business hours, no warm floor";
  let reason =
    `${queue.waiting} waiting + ${queue.running} running; ` +
    `${DAY_NAMES[day]} ${twoDigits(clock.hour)}:${twoDigits(clock.minute)} ${clock.timeZone} is ${verdict}`;
  if (desired !== wanted) {
    reason += `; ${wanted} clamped to [${capacity.min}, ${capacity.max}]`;
  }
  return { desired, reason, state: undefined };
}

/** `warm`, `days` and `hours`, with their defaults. */
export function parseParams(params) {
  const parsed = {
    warm: 1,
    days: [true, true, true, true, true, false, false],
    start: 8,
    end: 18,
  };
  for (const [name, value] of params) {
    if (name === "warm") {
      const warm = parseWhole(value, U32_MAX);
      if (warm === undefined) {
        throw new ParamError(
          `param \`${name}\`: expected a whole number, e.g. \`2\`, got ${quote(value)}`,
        );
      }
      parsed.warm = warm;
    } else if (name === "days") {
      parsed.days = parseDays(value);
    } else if (name === "hours") {
      [parsed.start, parsed.end] = parseHours(value);
    } else {
      throw new ParamError(
        `param \`${name}\`: unknown; this policy takes \`warm\`, \`days\` and \`hours\``,
      );
    }
  }
  return parsed;
}

/** A comma list of days and day ranges, e.g. `mon-wed,fri`. */
function parseDays(value) {
  const days = [false, false, false, false, false, false, false];
  for (const item of value.split(",")) {
    const [first, last] = splitOnce(item, "-") ?? [item, item];
    const from = dayIndex(first);
    const to = dayIndex(last);
    if (from === undefined || to === undefined) {
      throw new ParamError(
        "param `days`: expected day names mon..sun in ranges or a comma list, " +
          `e.g. \`mon-fri\` or \`mon,wed,fri\`, got ${quote(value)}`,
      );
    }
    // Walk from the first day to the last, past Sunday if need be.
    let day = from;
    days[day] = true;
    while (day !== to) {
      day = (day + 1) % 7;
      days[day] = true;
    }
  }
  return days;
}

/** `HH-HH`: a start hour 0..=23 and an end hour up to 24 after it. */
function parseHours(value) {
  const [start, end] = (splitOnce(value, "-") ?? []).map((hour) => parseWhole(hour, 255));
  if (start !== undefined && end !== undefined && start < end && end <= 24) {
    return [start, end];
  }
  throw new ParamError(
    "param `hours`: expected `HH-HH` with hours 00 to 24 and the start before the end, " +
      `e.g. \`08-18\` or \`00-24\`, got ${quote(value)}`,
  );
}

/** Monday is 0, Sunday 6; undefined for anything else. */
function dayIndex(name) {
  const trimmed = trim(name);
  // ASCII letters only compare without case, as Rust's eq_ignore_ascii_case.
  const lower = trimmed.replace(/[A-Z]/g, (c) => c.toLowerCase());
  const index = DAY_NAMES.indexOf(lower);
  return index < 0 ? undefined : index;
}

/** `value`, trimmed, as a whole number up to `largest`, or undefined. */
function parseWhole(value, largest) {
  const trimmed = trim(value);
  if (!WHOLE_NUMBER.test(trimmed)) return undefined;
  const number = Number(trimmed);
  return number <= largest ? number : undefined;
}

/** `[before, after]` the first `separator`, or undefined without one. */
function splitOnce(text, separator) {
  const at = text.indexOf(separator);
  return at < 0 ? undefined : [text.slice(0, at), text.slice(at + separator.length)];
}

function trim(text) {
  return text.replace(EDGE_SPACE, "");
}

function twoDigits(number) {
  return String(number).padStart(2, "0");
}

const ESCAPES = { "\0": "\\0", "\t": "\\t", "\r": "\\r", "\n": "\\n", '"': '\\"', "\\": "\\\\" };

/**
 * Characters Rust's `{:?}` writes as `\u{...}`: controls, spaces other than
 * ` `, line and paragraph separators, and the common invisible formatting
 * characters. (The engine has no Unicode property tables, so `\p{...}` is
 * not available; rarer unprintable characters are left as they are.)
 */
const UNPRINTABLE =
  /[\u0000-\u001f\u007f-\u009f\u00a0\u00ad\u061c\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u3000\ufeff\ufff9-\ufffb\ud800-\udfff]/;

/**
 * `value` quoted and escaped as Rust's `{:?}` does, so the messages match the
 * Rust policy's: `"lots"`, `"a\tb"`, `"\u{7}"`.
 */
function quote(value) {
  let quoted = '"';
  for (const char of value) {
    if (char in ESCAPES) quoted += ESCAPES[char];
    else if (UNPRINTABLE.test(char)) quoted += `\\u{${char.codePointAt(0).toString(16)}}`;
    else quoted += char;
  }
  return quoted + '"';
}
