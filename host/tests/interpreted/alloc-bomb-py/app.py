"""`alloc-bomb-py`: a Python policy whose `decide` allocates without bound.

It proves that the memory cap stops an interpreter: CPython's allocator asks
for more linear memory until the cap refuses it; whatever the interpreter
does then (a MemoryError, an abort), the decision ends as `out_of_memory`
and the host stays up. Every MiB is a fresh `bytearray` that is kept, so the
memory is really used.
"""

from wit_world import exports
from wit_world.imports.types import Decision, Observation


class Decider(exports.Decider):
    def decide(self, observation: Observation) -> Decision:
        hoard = []
        while True:
            hoard.append(bytearray(1 << 20))
