// `alloc-bomb-js`: a JavaScript policy whose `decide` allocates without bound.
//
// It proves that the memory cap stops an interpreter: SpiderMonkey's heap
// asks for more linear memory until the cap refuses it; whatever the engine
// does then (an out-of-memory error, an abort), the decision ends as
// `out_of_memory` and the host stays up. Every MiB is a fresh, filled array
// that is kept, so the memory is really used.

export const decider = {
  decide(_observation) {
    const hoard = [];
    for (;;) {
      hoard.push(new Uint8Array(1 << 20).fill(1));
    }
  },
};
