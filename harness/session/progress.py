"""Progress of long work: the case running now, elapsed time and an estimate of what is left.

The estimate of a case is what its policy allows it (sampling budget + warm-up cap) plus a
start-up allowance per worker, scaled by how the cases done so far compared with their own
estimates; it is an estimate and says so ("~"). On a terminal one line is rewritten in
place; in a log, one line per finished case.
"""
from __future__ import annotations

import sys
import threading
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
    """Call start(case) and done(record); close() at the end. On a terminal a ticker rewrites
    the line twice a second while a case runs, so long cases (a model profiled layer by
    layer, a footprint, a compile) show their own elapsed time."""

    TICK_S = 0.5

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
        self.case_started = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def _eta(self) -> str:
        elapsed = time.monotonic() - self.started
        pace = elapsed / self.spent_estimate if self.spent_estimate > 0 else 1.0
        return fmt_duration(self.left * pace)

    def _line(self, text: str) -> None:
        with self._lock:
            if self.tty:
                self.stream.write("\r\033[K" + text[: 160])
            else:
                self.stream.write(text + "\n")
            self.stream.flush()

    def _running_line(self) -> str:
        now = time.monotonic()
        return (f"{self.label} [{self.count}/{self.total}] {fmt_duration(now - self.started)} elapsed, "
                f"~{self._eta()} left: {self.current} ({fmt_duration(now - self.case_started)})")

    def _tick(self) -> None:
        while not self._stop.wait(self.TICK_S):
            if self.current is not None:
                self._line(self._running_line())

    def start(self, case: Case) -> None:
        self.current = case.case_id
        self.case_started = time.monotonic()
        if self.tty:
            self._line(self._running_line())
            if self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
                self._ticker.start()

    def done(self, record: Record) -> None:
        if record.kind.startswith("layer."):
            return  # a case's layers are part of it
        self.count += 1
        self.current = None
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
            left = f", ~{self._eta()} left" if self.count < self.total else ""
            self._line(f"[{self.count}/{self.total}] {elapsed} elapsed{left}: {record.case_id}: {status}")

    def add(self, case: Case) -> None:
        """One more case to run (a re-measurement)."""
        self.total += 1
        self.estimates[case.case_id] = estimate(case)
        self.left += self.estimates[case.case_id]

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self.tty:
            with self._lock:
                self.stream.write("\r\033[K")
                self.stream.flush()
