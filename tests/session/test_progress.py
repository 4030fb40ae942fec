"""Progress of long work: the case running now, elapsed time and an estimate of what is left,
one line per case in a log, a line rewritten in place (and kept ticking) on a terminal."""
import io
import re
import time

from support import record
from harness.core.suite import Case
from harness.core.timing import TimingPolicy
from harness.session.progress import Progress, estimate


class Terminal(io.StringIO):
    def isatty(self):
        return True


def case(case_id, budget=0.2):
    return Case(case_id, "diagnostic.empty", {}, 1, [0], 10.0, TimingPolicy(budget_s=budget, warmup_max_s=0.3))


def test_a_log_gets_one_line_per_case_with_elapsed_time_and_what_is_left():
    cases = [case("a"), case("b")]
    out = io.StringIO()
    progress = Progress(cases, "suite", stream=out)
    for c in cases:
        progress.start(c)
        progress.done(record("diagnostic.empty", case_id=c.case_id))
    progress.close()
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"\[1/2\] \d+s elapsed, ~\d+s left: a: ok", lines[0]), lines
    assert re.fullmatch(r"\[2/2\] \d+s elapsed: b: ok", lines[1]), lines  # nothing left to estimate


def test_a_terminal_line_keeps_ticking_while_a_long_case_runs():
    out = Terminal()
    progress = Progress([case("slow"), case("next")], "models", stream=out)
    progress.TICK_S = 0.05
    progress.start(case("slow"))
    time.sleep(0.3)  # a long case: a footprint, a model profiled layer by layer
    ticks = out.getvalue().count("slow (")
    progress.done(record("diagnostic.empty", case_id="slow"))
    progress.close()
    assert ticks >= 3  # rewritten while the case ran, not only when it began
    assert "models [0/2]" in out.getvalue() and "left: slow (0s)" in out.getvalue()
    assert out.getvalue().endswith("\r\033[K")  # the line is cleared at the end


def test_the_estimate_is_the_case_budgets_and_a_re_measurement_adds_one():
    cases = [case("a", budget=1.0), case("b", budget=2.0)]
    progress = Progress(cases, "suite", enabled=False)
    assert progress.left == estimate(cases[0]) + estimate(cases[1])
    assert estimate(cases[1]) > estimate(cases[0])
    progress.add(case("a-again", budget=1.0))
    assert progress.total == 3 and progress.left == estimate(cases[0]) * 2 + estimate(cases[1])
