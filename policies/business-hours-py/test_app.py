"""Native unit tests of `app.decide`, run with the host's Python:

    componentize-py -d ../../wit -w policy bindings bindings
    PYTHONPATH=bindings python3 -m unittest

The cases that matter to the host are in `../business-hours/cases.toml`,
run through the component with `runner-scaler policy test`; these check the
rule and the messages quickly, without building.
"""

import unittest

from wit_world.imports.types import Capacity, Clock, Observation, Queue, Weekday

import app


def observation(weekday, hour, minute=0, waiting=0, running=0, params=()):
    """An observation in Europe/Berlin, a group of [0, 10] that runs 1."""
    return Observation(
        pool="linux-large",
        queue=Queue(waiting=waiting, running=running, blocked=None),
        capacity=Capacity(
            desired=1, min=0, max=10, pending=0, in_service=1, terminating=0, protected=0,
            warm_pool=None,
        ),
        clock=Clock(
            unix_seconds=1_772_437_800,
            year=2026,
            month=3,
            day=2,
            hour=hour,
            minute=minute,
            weekday=weekday,
            utc_offset_seconds=3600,
            time_zone="Europe/Berlin",
        ),
        params=list(params),
        state=None,
    )


class DecideTest(unittest.TestCase):
    def test_desired_capacity(self):
        cases = [
            ("monday morning, empty queue: warm floor", Weekday.MONDAY, 9, 0, [("warm", "3")], 3),
            ("07:59 is before business hours", Weekday.MONDAY, 7, 0, [("warm", "3")], 0),
            ("18:00 closes business hours", Weekday.FRIDAY, 18, 0, [("warm", "3")], 0),
            ("saturday with days=sat-sun", Weekday.SATURDAY, 10, 0, [("days", "sat-sun")], 1),
            ("sunday with days=sun-thu, past sunday", Weekday.SUNDAY, 10, 0, [("days", "sun-thu")], 1),
            ("wednesday with days=mon,wed,fri", Weekday.WEDNESDAY, 10, 0, [("days", "mon,wed,fri")], 1),
            ("tuesday with days=mon,wed,fri", Weekday.TUESDAY, 10, 0, [("days", "mon,wed,fri")], 0),
            ("23:00 with hours=00-24", Weekday.MONDAY, 23, 0, [("hours", "00-24")], 1),
            ("more jobs than the floor", Weekday.MONDAY, 9, 6, [("warm", "3")], 6),
            ("more jobs than max: clamped", Weekday.MONDAY, 9, 20, [], 10),
        ]
        for name, weekday, hour, waiting, params, want in cases:
            with self.subTest(name):
                decision = app.decide(observation(weekday, hour, waiting=waiting, params=params))
                self.assertEqual(decision.desired, want)
                self.assertIsNone(decision.state)

    def test_reason_says_why(self):
        decision = app.decide(observation(Weekday.MONDAY, 8, 5, running=1, params=[("warm", "2")]))
        self.assertEqual(
            decision.reason,
            "0 waiting + 1 running; mon 08:05 Europe/Berlin is within business hours, warm floor 2",
        )

    def test_bad_params_are_refused_with_the_rust_policys_words(self):
        cases = [
            (("warm", "lots"), 'param `warm`: expected a whole number, e.g. `2`, got "lots"'),
            (("warm", "-1"), 'param `warm`: expected a whole number, e.g. `2`, got "-1"'),
            (("warm", "4294967296"), "param `warm`"),
            (("warm", "a\tb\x07"), 'got "a\\tb\\u{7}"'),
            (("days", "mon,"), 'param `days`: expected day names mon..sun in ranges or a comma list, e.g. `mon-fri` or `mon,wed,fri`, got "mon,"'),
            (("days", "monday"), "param `days`"),
            (("hours", "8"), 'param `hours`: expected `HH-HH` with hours 00 to 24 and the start before the end, e.g. `08-18` or `00-24`, got "8"'),
            (("hours", "22-06"), "param `hours`"),
            (("hours", "08-25"), "param `hours`"),
            (("wram", "2"), "param `wram`: unknown; this policy takes `warm`, `days` and `hours`"),
        ]
        for param, want in cases:
            with self.subTest(param):
                with self.assertRaises(ValueError) as raised:
                    app.decide(observation(Weekday.MONDAY, 9, params=[param]))
                self.assertIn(want, str(raised.exception))

    def test_params_read_as_rust_reads_them(self):
        params = app.parse_params([("days", "Mon - Wed, Fri"), ("hours", " 7-19"), ("warm", "+2")])
        self.assertEqual(params.days, [True, True, True, False, True, False, False])
        self.assertEqual((params.start, params.end, params.warm), (7, 19, 2))


if __name__ == "__main__":
    unittest.main()
