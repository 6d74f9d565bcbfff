"""`spin-py`: a Python policy whose `decide` never returns.

It proves that the deadline stops an interpreter as it stops compiled code:
the Python loop runs inside the interpreter's own loop, which the engine
interrupts, and the decision ends as `deadline`.
"""

from wit_world import exports
from wit_world.imports.types import Decision, Observation


class Decider(exports.Decider):
    def decide(self, observation: Observation) -> Decision:
        turns = 0
        while True:
            turns += 1
