// `spin-js`: a JavaScript policy whose `decide` never returns.
//
// It proves that the deadline stops an interpreter as it stops compiled code:
// the loop runs inside SpiderMonkey, which the engine interrupts, and the
// decision ends as `deadline`.

export const decider = {
  decide(_observation) {
    let turns = 0;
    for (;;) {
      turns += 1;
    }
  },
};
