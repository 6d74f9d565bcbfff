"""`wasi-probe-py`: a Python policy that reaches for the outside world and
reports, as its reason (JSON), what it got.

It proves that the WASI an interpreter imports to start opens no hole: no
environment, no arguments, no files, no sockets, no input, and the
observation's time as the only clock. Every module is imported here, at
build time: at decision time there is no file system to import from.
"""

import json
import os
import socket
import sys
import time

from wit_world import exports
from wit_world.imports.types import Decision, Observation


def attempt(action):
    """What `action` returned, or the name of the error it raised."""
    try:
        return action()
    except Exception as err:  # the point is to see whatever happens
        return type(err).__name__


def connect():
    """A TCP connection to an address, no name to look up."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.connect(("127.0.0.1", 9))
        return "connected"


class Decider(exports.Decider):
    def decide(self, observation: Observation) -> Decision:
        seen = {
            "env": dict(os.environ),
            "argv": sys.argv,
            "time": time.time(),
            "root": attempt(lambda: os.listdir("/")),
            "passwd": attempt(lambda: open("/etc/passwd").read()),
            "cwd": attempt(lambda: os.listdir(".")),
            "socket": attempt(connect),
            "stdin": attempt(sys.stdin.read),
        }
        return Decision(desired=0, reason=json.dumps(seen, sort_keys=True), state=None, warm=None)
