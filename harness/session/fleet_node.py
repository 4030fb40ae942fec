"""What a fleet node does for `harness fleet run`: check that the project is there, run the
suite in a fresh `harness run` process, and stream back what that run writes.

This module runs inside a Ray task on the node, and Ray ships its code by value (see
harness.session.fleet: cloudpickle's register_pickle_by_value), so it must import nothing
but the standard library: on a node without the project, the task still starts and says so
in one line instead of failing to unpickle. Everything it needs from the harness (the
version, the environment keys to drop) comes in the spec from the driver.

The stream is a sequence of plain dicts, each with an "event":
  node      where it runs (hostname, pid, python, the project path and version)
  error     a reason the run could not start (no project, another version); the last event
  manifest  the node run's manifest.json, each time it changes (first, then at the end)
  snapshot  the run's frozen profile snapshot (RUN/profile.json), each time it changes
  record    one line of records.jsonl, as soon as it is complete
  logs      the workers' logs at the end ({name: text}, each cut to LOG_CAP characters)
  exit      the harness process's exit code (stopped_after_run: it was stopped once its run had
            ended, before writing its own report), the tail of its stderr, its duration
"""
from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

POLL_S = 0.2
STOP_GRACE_S = 10.0
LOG_CAP = 200_000
PR_SET_PDEATHSIG = 1
TEMP_PREFIX = "harness-fleet-"
FINAL = ("complete", "interrupted", "stopped")  # a run manifest's statuses once nothing more is recorded


def project_version(package: str = "harness") -> tuple[Path | None, str | None]:
    """(the folder of `package`, its __version__) as this Python finds it, read from the
    package's __init__.py without importing it; (None, None) where it finds none."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        return None, None
    init = Path(spec.origin)
    found = re.search(r'__version__\s*=\s*["\']([^"\']+)["\']', init.read_text(errors="replace"))
    return init.parent, found.group(1) if found else "unknown"


def check_project(version: str, package: str = "harness") -> tuple[Path | None, str | None]:
    """(the project folder holding `package`, None), or (None, the reason in one line) when
    this Python cannot find the package or finds another version of it."""
    folder, there = project_version(package)
    if folder is None:
        return None, (f"the project is not installed on {socket.gethostname()}: {sys.executable} cannot import "
                      f"{package} (install it there, e.g. pip install -e '.[fleet]' in the Python that runs "
                      "`ray start`)")
    if there != version:
        return None, (f"{socket.gethostname()} has {package} {there} at {folder}, the driver {version}: "
                      "install the same version on every node")
    return folder.parent, None


def clean_env(drop: list[str]) -> dict[str, str]:
    """This process's environment without the keys Ray sets for its tasks (OMP_NUM_THREADS
    and the other thread counts), so the harness's own settings per case win."""
    return {k: v for k, v in os.environ.items() if k not in set(drop)}


def _die_with_parent():
    os.setsid()  # its own process group: a stop reaches the harness's workers too
    try:  # a Ray worker killed outright (a forced cancel, its node gone) takes the run with it
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def remove_stale_folders() -> None:
    """Folders of node runs whose Ray worker was killed outright (a forced cancel, a lost
    node) before it could remove its own: named for their worker's pid, removed once it is gone."""
    for path in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}*-*"):
        pid = path.name[len(TEMP_PREFIX):].split("-")[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass


def write_files(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


class Tail:
    """The run folder the harness process writes, read as it grows: complete record lines,
    and the JSON files each time their content changes."""

    def __init__(self, results: Path):
        self.results = results
        self.run: Path | None = None
        self.offset = 0
        self.partial = b""
        self.seen: dict[str, bytes] = {}
        self.status: str | None = None  # the run's, as its manifest says

    def find_run(self) -> Path | None:
        if self.run is None:
            runs = sorted(p.parent for p in self.results.glob("*/*/manifest.json"))
            self.run = runs[0] if runs else None
        return self.run

    def json_if_changed(self, name: str):
        try:
            data = (self.run / name).read_bytes()
        except OSError:
            return None
        if data == self.seen.get(name):
            return None
        try:
            parsed = json.loads(data)
        except ValueError:  # caught mid-replace: read it next time
            return None
        self.seen[name] = data
        return parsed

    def new_lines(self) -> list[str]:
        try:
            with open(self.run / "records.jsonl", "rb") as fh:
                fh.seek(self.offset)
                chunk = fh.read()
        except OSError:
            return []
        self.offset += len(chunk)
        data = self.partial + chunk
        *lines, self.partial = data.split(b"\n")
        return [line.decode("utf-8", errors="replace") for line in lines if line.strip()]

    def events(self):
        if self.find_run() is None:
            return
        manifest = self.json_if_changed("manifest.json")
        if manifest is not None:
            self.status = manifest.get("status")
            yield {"event": "manifest", "data": manifest}
        snapshot = self.json_if_changed("profile.json")
        if snapshot is not None:
            yield {"event": "snapshot", "data": snapshot}
        for line in self.new_lines():
            yield {"event": "record", "line": line}

    def logs(self) -> dict[str, str]:
        out = {}
        if self.run is None:
            return out
        for path in sorted((self.run / "logs").glob("*"))[:200]:
            if path.is_file():
                text = path.read_text(errors="replace")
                out[path.name] = text if len(text) <= LOG_CAP else text[:LOG_CAP] + "\n[cut]\n"
        return out


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the harness marks its run interrupted), then SIGKILL after a grace."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(STOP_GRACE_S)
    except (OSError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()


def _tail_text(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def node_run(spec: dict):
    """The node's part of a fleet run, as a stream of events (module docstring). spec:
    version, suite_files ({relative path: text}), suite (the relative path of the suite to
    run), profiles ({device slug: profile text}: the driver's device profiles), args (extra
    `harness run` arguments), drop_env (keys to drop from the environment)."""
    drop = spec.get("drop_env", [])
    yield {"event": "node", "hostname": socket.gethostname(), "pid": os.getpid(), "python": sys.executable,
           "started_at": time.time(), "dropped_env": {k: os.environ[k] for k in drop if k in os.environ}}
    package = spec.get("package", "harness")
    project, reason = check_project(spec["version"], package)
    if reason:
        yield {"event": "error", "reason": reason}
        return
    yield {"event": "node", "project": str(project)}
    remove_stale_folders()
    work = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-"))
    proc = None
    try:
        write_files(work / "suite", spec["suite_files"])
        results = work / "results"
        write_files(results, {f"{slug}/profile.json": text for slug, text in spec.get("profiles", {}).items()})
        env = clean_env(drop)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(project), env.get("PYTHONPATH")]))
        command = [sys.executable, "-m", package, "run", str(work / "suite" / spec["suite"]), "--results",
                   str(results), "--no-progress", *spec.get("args", [])]
        started = time.time()
        with open(work / "stdout.txt", "wb") as out, open(work / "stderr.txt", "wb") as err:
            proc = subprocess.Popen(command, cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, preexec_fn=_die_with_parent)
        tail = Tail(results)
        stopped = False
        while proc.poll() is None:
            yield from tail.events()
            if tail.status in FINAL:
                # Every record is written once the manifest says how the run ended; what is left
                # is the node's own report, which the driver writes from the same files.
                run_s, stopped = time.time() - started, True
                _stop(proc)
                break
            time.sleep(POLL_S)
        else:
            run_s = time.time() - started
        yield from tail.events()
        yield {"event": "logs", "files": tail.logs()}
        yield {"event": "exit", "code": proc.returncode, "duration_s": run_s, "ended_at": time.time(),
               "stopped_after_run": stopped,
               "stderr": _tail_text(work / "stderr.txt"), "stdout": _tail_text(work / "stdout.txt", 4)}
    finally:  # a cancel (KeyboardInterrupt here) or the driver gone: stop the run, leave nothing
        if proc is not None:
            _stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def node_device(version: str, package: str = "harness", timeout: float = 120.0) -> dict:
    """The node's fingerprint (`harness device --json` in a fresh process), or {"error": reason}."""
    project, reason = check_project(version, package)
    if reason:
        return {"error": reason}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(project), os.environ.get("PYTHONPATH")]))}
    try:
        out = subprocess.run([sys.executable, "-m", package, "device", "--json"], cwd=project, env=env,
                             capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": f"harness device did not answer: {exc}"}
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or [f"exit code {out.returncode}"])[-1]}
    try:
        return {"fingerprint": json.loads(out.stdout)}
    except ValueError:
        return {"error": "harness device printed no JSON"}


def hold() -> float:
    """Nothing: a task that asks for the node's harness slot starts only where it is free."""
    return time.time()


def node_probe(version: str, package: str = "harness"):
    """Run holding the node's harness slot: first the time it started (the slot was free),
    then the node's fingerprint, taken while no harness job can start there."""
    yield time.time()
    yield node_device(version, package)
