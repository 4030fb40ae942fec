"""The runner: spawns worker processes, enforces timeouts, turns crashes into records.

Cases that share CPUs, thread count and environment run in one worker, one after the
other. The worker's affinity and thread environment are set before its Python starts.
A worker that crashes (a signal, a hard abort, the OOM killer) or hangs past its case's
timeout is killed; its case is recorded as failed with the reason, and a fresh worker
takes the remaining cases. Each record is appended to the store the moment it arrives.

Temporary files: a worker killed with SIGKILL cannot remove what its case wrote to the
temporary directory (ONNX Runtime's optimized graphs, profiles). So every worker gets a
folder of its own as TMPDIR, inside one folder per run_cases call (harness-run-<pid>-*),
and the runner removes the worker's folder when the worker ends, however it ends, and its
own when it returns or raises. A runner killed with SIGKILL leaves its folder: the next
run_cases removes the folders of runners that are gone.
"""
from __future__ import annotations

import ctypes
import itertools
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.core import conditions, records, system
from harness.core.records import Record
from harness.core.store import RunStore, StoreError
from harness.core.suite import Case

# Seconds a worker may take to start Python and import the harness before its first case.
WORKER_START_TIMEOUT = 60.0
PR_SET_PDEATHSIG = 1
TEMP_PREFIX = "harness-run-"


def _preexec(cpus: list[int], memory_limit_gb: float | None):
    def setup():
        os.setsid()  # its own process group, so a kill takes any children with it
        try:  # die with the runner, so a killed run leaves no orphan burning a core
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except OSError:
            pass
        os.sched_setaffinity(0, cpus)
        if memory_limit_gb:
            limit = int(memory_limit_gb * 1e9)
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return setup


def _exit_reason(returncode: int | None) -> str:
    if returncode is None:
        return "worker stopped answering"
    if returncode < 0:
        sig = signal.Signals(-returncode).name
        if sig == "SIGKILL":
            return ("worker killed by SIGKILL (out of memory? the kernel's OOM killer sends SIGKILL)")
        return f"worker crashed: killed by {sig}"
    if returncode == 0:
        return "worker exited before finishing the case"
    return f"worker exited with code {returncode}"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _temp_folder(prefix: str, parent: Path | None = None) -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    except OSError as exc:
        raise StoreError(f"{parent or tempfile.gettempdir()}: cannot make a temporary folder for the workers "
                         f"({exc.strerror or exc}); the run stopped") from None


def remove_stale_temp_roots() -> None:
    """Removes the temporary folders of runners that are gone (killed with SIGKILL: no chance
    to clean up); the folder's name carries its runner's process id."""
    for path in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*-*"):
        pid = path.name[len(TEMP_PREFIX):].partition("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not system.process_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


class _Worker:
    """One worker process, the pipe it reports on and its temporary folder."""

    def __init__(self, cases: list[Case], log_path: Path, temp_root: Path):
        first = cases[0]
        # What the worker is asked, kept beside its log in the run folder (no temporary file
        # is left behind by a killed run).
        self.spec_path = str(log_path.with_suffix(".cases.json"))
        self.tmp = str(_temp_folder("worker-", temp_root))  # removed with temp_root if what follows fails
        try:
            with open(self.spec_path, "w") as spec:
                json.dump({"cases": [c.to_dict() for c in cases]}, spec)
            self.log = open(log_path, "ab")
        except OSError as exc:
            raise StoreError(f"{log_path.parent}: cannot write the worker's files ({exc.strerror or exc}); "
                             "the run stopped, the records written before stay readable") from None
        env = {**os.environ, **conditions.thread_env(first.threads), **first.env, "TMPDIR": self.tmp}
        read_fd, write_fd = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "harness.core.worker", self.spec_path, str(write_fd)],
                pass_fds=(write_fd,), env=env, stdin=subprocess.DEVNULL,
                stdout=self.log, stderr=subprocess.STDOUT,
                preexec_fn=_preexec(first.cpus, first.memory_limit_gb),
            )
        except BaseException:
            os.close(read_fd)
            self.log.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        finally:
            os.close(write_fd)
        self.fd = read_fd
        self.buffer = b""

    def next_event(self, deadline: float) -> dict | None:
        """The next event, or None on timeout or end of stream (check self.proc then)."""
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.close()

    def close(self) -> None:
        if self.log.closed:
            return
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.fd)
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)  # whatever the case left there, however it ended


def group_cases(cases: list[Case]) -> list[list[Case]]:
    """Cases that may share a worker, in order of first appearance. A case pooled over
    several processes, or one that needs a fresh process, is a group of its own."""
    groups: dict[tuple, list[Case]] = {}
    for case in cases:
        alone = case.processes > 1 or case.fresh_process
        key = ("alone", case.case_id) if alone else case.worker_key()
        groups.setdefault(key, []).append(case)
    return list(groups.values())


def _run_group(group: list[Case], store: RunStore, worker_ids: Iterator[int],
               on_start: Callable[[Case], None] | None, temp_root: Path) -> Iterator[Record]:
    """Runs a group in as few workers as crashes allow; yields each case's record (and, for a
    case profiled layer by layer, its layer records after it)."""
    pending = list(group)
    while pending:
        log_path = store.path / "logs" / f"worker-{next(worker_ids)}.log"
        worker = _Worker(pending, log_path, temp_root)
        current: Case | None = None
        layers_due = 0  # layer records the finished case still owes
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        try:
            while pending:
                event = worker.next_event(deadline)
                if event is None:
                    timed_out = time.monotonic() >= deadline and worker.proc.poll() is None
                    worker.kill()
                    if layers_due:  # the case's record is stored; the worker died sending its layers
                        pending.remove(current)
                        break
                    victim = current or pending[0]
                    if timed_out:
                        limit = victim.timeout if current else WORKER_START_TIMEOUT
                        reason = (f"timed out after {limit:g} s; the worker was killed" if current
                                  else f"worker did not start within {limit:g} s")
                    else:
                        reason = _exit_reason(worker.proc.returncode)
                    pending.remove(victim)
                    yield records.failed(victim.identity(), reason, log_tail=_tail(log_path), started_at=time.time())
                    break
                if event["event"] == "start":
                    current = next(c for c in pending if c.case_id == event["case_id"])
                    deadline = time.monotonic() + current.timeout
                    if on_start is not None:
                        on_start(current)
                elif event["event"] == "record":
                    record = Record.from_json(event["record"], f"worker record of {current.case_id}")
                    layers_due = event.get("layers", 0)
                    if not layers_due:
                        pending.remove(current)
                        current = None
                    yield record
                elif event["event"] == "layer":
                    yield Record.from_json(event["record"], f"worker layer record of {current.case_id}")
                    layers_due -= 1
                    if not layers_due:
                        pending.remove(current)
                        current = None
            else:
                worker.close()
        except BaseException:
            worker.kill()
            raise


def run_cases(cases: list[Case], store: RunStore,
              on_start: Callable[[Case], None] | None = None,
              on_record: Callable[[Record], None] | None = None,
              enrich: Callable[[Record], Record] | None = None) -> list[Record]:
    """Runs every case; returns the records in the order they finished."""
    done: list[Record] = []
    worker_ids = itertools.count(1)
    remove_stale_temp_roots()
    temp_root = _temp_folder(f"{TEMP_PREFIX}{os.getpid()}-")

    def finish(record: Record) -> None:
        if enrich is not None:
            try:
                record = enrich(record)
            except Exception as exc:  # analysis must never cost a measurement
                record.warnings.append(f"roofline placement failed: {exc!r}")
        record = store.append(record)
        done.append(record)
        if on_record is not None:
            on_record(record)

    try:
        for group in group_cases(cases):
            if group[0].processes > 1:  # each process of a pooled case starts fresh
                case = group[0]
                finish(records.pooled([record for _ in range(case.processes)
                                       for record in _run_group([case], store, worker_ids, on_start, temp_root)
                                       if record.case_id == case.case_id]))
                continue
            for record in _run_group(group, store, worker_ids, on_start, temp_root):
                finish(record)
    finally:
        shutil.rmtree(temp_root, ignore_errors=True)
    return done
