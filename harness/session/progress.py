"""Progress of long work: the case running now, elapsed time and an estimate of what is left.

The estimate of a case is what its policy allows it (sampling budget + warm-up cap) plus a
start-up allowance per worker, scaled by how the cases done so far compared with their own
estimates; it is an estimate and says so ("~"). On a terminal one line is rewritten in
place; in a log, one line per finished case.
"""
from __future__ import annotations

import sys
import time

from harness.core.records import Record
from harness.core.suite import Case
from harness.core.text import fmt_duration

# Seconds a case costs beyond its sampling budget and warm-up cap: worker start, imports,
# the factory's allocation and check, the clock reads around it.
CASE_OVERHEAD_S = 1.0


def estimate(case: Case) -> float:
    return (case.policy.budget_s + case.policy.warmup_max_s / 3 + CASE_OVERHEAD_S) * case.processes


class Progress:
    """Call start(case) and done(record); close() at the end."""

    def __init__(self, cases: list[Case], label: str, stream=None, enabled: bool = True):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and self.stream.isatty()
        self.label = label
        self.total = len(cases)
        self.estimates = {c.case_id: estimate(c) for c in cases}
        self.left = sum(self.estimates.values())
        self.spent_estimate = 0.0
        self.started = time.monotonic()
        self.count = 0
        self.current: str | None = None

    def _eta(self) -> str:
        elapsed = time.monotonic() - self.started
        pace = elapsed / self.spent_estimate if self.spent_estimate > 0 else 1.0
        return fmt_duration(self.left * pace)

    def _line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text[: 160])
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, case: Case) -> None:
        self.current = case.case_id
        if self.tty:
            elapsed = fmt_duration(time.monotonic() - self.started)
            self._line(f"{self.label} [{self.count}/{self.total}] {elapsed} elapsed, ~{self._eta()} left: "
                       f"{case.case_id}")

    def done(self, record: Record) -> None:
        if record.kind.startswith("layer."):
            return  # a case's layers are part of it
        self.count += 1
        spent = self.estimates.pop(record.case_id, 0.0)
        self.left -= spent
        self.spent_estimate += spent
        if not self.enabled:
            return
        elapsed = fmt_duration(time.monotonic() - self.started)
        status = record.status + (f" (re-measured: attempt {record.attempt})" if record.attempt > 1 else "")
        if self.tty:
            self._line(f"{self.label} [{self.count}/{self.total}] {elapsed} elapsed, ~{self._eta()} left: "
                       f"{record.case_id} {status}")
        else:
            self._line(f"[{self.count}/{self.total}] {elapsed} {record.case_id}: {status}")

    def add(self, case: Case) -> None:
        """One more case to run (a re-measurement)."""
        self.total += 1
        self.estimates[case.case_id] = estimate(case)
        self.left += self.estimates[case.case_id]

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K")
            self.stream.flush()
