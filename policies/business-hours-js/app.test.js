// Native unit tests of `decide`, run with the host's Node: `node --test`.
//
// The cases that matter to the host are in `../business-hours/cases.toml`,
// run through the component with `runner-scaler policy test`; these check the
// rule and the messages quickly, without building.

import { test } from "node:test";
import assert from "node:assert/strict";
import { decide, parseParams, ParamError } from "./app.js";

/** An observation in Europe/Berlin, a group of [0, 10] that runs 1. */
function observation(weekday, hour, { minute = 0, waiting = 0, running = 0, params = [] } = {}) {
  return {
    pool: "linux-large",
    queue: { waiting, running },
    capacity: { desired: 1, min: 0, max: 10, pending: 0, inService: 1, terminating: 0, protected: 0 },
    clock: {
      unixSeconds: 1_772_437_800n,
      year: 2026,
      month: 3,
      day: 2,
      hour,
      minute,
      weekday,
      utcOffsetSeconds: 3600,
      timeZone: "Europe/Berlin",
    },
    params,
    state: undefined,
  };
}

test("desired capacity", () => {
  const cases = [
    ["monday morning, empty queue: warm floor", "monday", 9, 0, [["warm", "3"]], 3],
    ["07:59 is before business hours", "monday", 7, 0, [["warm", "3"]], 0],
    ["18:00 closes business hours", "friday", 18, 0, [["warm", "3"]], 0],
    ["saturday with days=sat-sun", "saturday", 10, 0, [["days", "sat-sun"]], 1],
    ["sunday with days=sun-thu, past sunday", "sunday", 10, 0, [["days", "sun-thu"]], 1],
    ["wednesday with days=mon,wed,fri", "wednesday", 10, 0, [["days", "mon,wed,fri"]], 1],
    ["tuesday with days=mon,wed,fri", "tuesday", 10, 0, [["days", "mon,wed,fri"]], 0],
    ["23:00 with hours=00-24", "monday", 23, 0, [["hours", "00-24"]], 1],
    ["more jobs than the floor", "monday", 9, 6, [["warm", "3"]], 6],
    ["more jobs than max: clamped", "monday", 9, 20, [], 10],
  ];
  for (const [name, weekday, hour, waiting, params, want] of cases) {
    const decision = decide(observation(weekday, hour, { waiting, params }));
    assert.equal(decision.desired, want, name);
    assert.equal(decision.state, undefined, name);
  }
});

test("the reason says why", () => {
  const decision = decide(observation("monday", 8, { minute: 5, running: 1, params: [["warm", "2"]] }));
  assert.equal(
    decision.reason,
    "0 waiting + 1 running; mon 08:05 Europe/Berlin is within business hours, warm floor 2",
  );
});

test("bad params are refused with the Rust policy's words", () => {
  const cases = [
    [["warm", "lots"], 'param `warm`: expected a whole number, e.g. `2`, got "lots"'],
    [["warm", "-1"], 'param `warm`: expected a whole number, e.g. `2`, got "-1"'],
    [["warm", "4294967296"], "param `warm`"],
    [["warm", "a\tb\u0007"], 'got "a\\tb\\u{7}"'],
    [["days", "mon,"], 'param `days`: expected day names mon..sun in ranges or a comma list, e.g. `mon-fri` or `mon,wed,fri`, got "mon,"'],
    [["days", "monday"], "param `days`"],
    [["hours", "8"], 'param `hours`: expected `HH-HH` with hours 00 to 24 and the start before the end, e.g. `08-18` or `00-24`, got "8"'],
    [["hours", "22-06"], "param `hours`"],
    [["hours", "08-25"], "param `hours`"],
    [["wram", "2"], "param `wram`: unknown; this policy takes `warm`, `days` and `hours`"],
  ];
  for (const [param, want] of cases) {
    assert.throws(
      () => decide(observation("monday", 9, { params: [param] })),
      (err) => err instanceof ParamError && err.message.includes(want),
      `${param}`,
    );
  }
});

test("params are read as Rust reads them", () => {
  const params = parseParams([["days", "Mon - Wed, Fri"], ["hours", " 7-19"], ["warm", "+2"]]);
  assert.deepEqual(params.days, [true, true, true, false, true, false, false]);
  assert.deepEqual([params.start, params.end, params.warm], [7, 19, 2]);
});
