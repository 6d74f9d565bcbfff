// `wasi-probe-js`: a JavaScript policy that reaches for the outside world
// and reports, as its reason (JSON), what it got.
//
// It proves what a JavaScript policy gets (it is built as `policy build`
// builds it, without the engine's `http` and `random` features): the
// observation's time as `Date.now()` (not the time the component was built),
// the same `Math.random()` numbers on every decision, no `process`. (`fetch`
// exists but traps when called: `wasi:http` is stubbed out at build time.)

export const decider = {
  decide(_observation) {
    const seen = {
      now: Date.now(),
      random: [Math.random(), Math.random()],
      process: typeof process,
    };
    return { desired: 0, reason: JSON.stringify(seen), state: undefined };
  },
};
