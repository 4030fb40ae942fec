"""A table of bad inputs and faults, each fed to the real command line, with what it gives.

Each row runs `python -m harness ...` in a fresh process (a suite file written for the row,
or flags) under a wall-clock limit, and reports: the exit code, the seconds it took, the
number of lines on stderr, whether a traceback appeared, and the last line of stderr. The
promise being checked (the robustness issue): bad input is one line and exit 2 within a
second or two; a case that crashes, hangs or runs out of memory is a failed record and the
run goes on (exit 1); signals leave the run "interrupted" (exit 130/143).

Usage: .venv/bin/python bench/bad_inputs.py [--only TEXT] [--markdown]
Takes about 2 minutes (the runtime-fault rows run real workers).
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.core.text import format_table  # noqa: E402

CASE = "cases: [{id: t, kind: diagnostic.empty}]\n"


@dataclass(frozen=True)
class Row:
    category: str
    what: str
    args: tuple[str, ...]          # "{suite}" is replaced by the row's suite file
    suite: str | None = None       # YAML text written to the suite file
    expect: tuple[int, ...] = (2,)
    signals: tuple[tuple[float, int], ...] = ()  # (delay s, signal) sent to the process


def suite_rows() -> list[Row]:
    s = "suites"
    billion = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" \
              "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
    rows = [
        ("missing file", ("run", "no/such.yaml"), None),
        ("a folder as the suite", ("run", "suites"), None),
        ("/dev/zero as the suite", ("run", "/dev/zero"), None),
        ("empty file", ("run", "{suite}"), ""),
        ("not YAML", ("run", "{suite}"), "cases: [unclosed\n"),
        ("a list at the top", ("run", "{suite}"), "- 1\n- 2\n"),
        ("a number at the top", ("run", "{suite}"), "42\n"),
        ("billion laughs in description", ("run", "{suite}"), billion + "description: *c\n" + CASE),
        ("alias bomb in matrix", ("run", "{suite}"),
         billion.replace("d: ", "z: ") + "cases: [{id: t, kind: diagnostic.empty, matrix: {n: *c}, bogus: 1}]\n"),
        ("2000 nested brackets", ("run", "{suite}"), "description: " + "[" * 2000 + "]" * 2000 + "\n" + CASE),
        ("a key given twice", ("run", "{suite}"), "name: a\nname: b\n" + CASE),
        ("a case key given twice", ("run", "{suite}"), "cases: [{id: t, id: u, kind: diagnostic.empty}]\n"),
        ("unknown top-level key", ("run", "{suite}"), "cazes: []\n" + CASE),
        ("unknown case key", ("run", "{suite}"), "cases: [{id: t, kind: diagnostic.empty, treads: 1}]\n"),
        ("unknown kind", ("run", "{suite}"), "cases: [{id: t, kind: conv.tensorflow}]\n"),
        ("no cases", ("run", "{suite}"), "name: x\ncases: []\n"),
        ("duplicate case ids", ("run", "{suite}"),
         "cases: [{id: t, kind: diagnostic.empty}, {id: t, kind: diagnostic.empty}]\n"),
        ("include of a missing file", ("run", "{suite}"), "include: [nope.yaml]\n" + CASE),
        ("include of itself", ("run", "{suite}"), "include: [suite.yaml]\n" + CASE),
        ("binary junk", ("run", "{suite}"), "\x00\x01\x02\xff"),
        ("a 2 MB suite file", ("run", "{suite}"), "description: '" + "x" * 2_000_000 + "'\n" + CASE),
        ("control characters in an id", ("run", "{suite}"), 'cases: [{id: "a\\u001b[31mb", kind: diagnostic.empty, bogus: 1}]\n'),
        ("a 10000-character name", ("run", "{suite}"), "name: " + "n" * 10000 + "\n" + CASE),
    ]
    return [Row("suite file", what, args, text) for what, args, text in rows] + [
        Row("suite file", "the shipped quick suite, filtered to nothing", ("run", f"{s}/quick.yaml", "--filter", "zzz")),
    ]


def number_rows() -> list[Row]:
    def case(extra: str, kind: str = "diagnostic.empty", params: str = "") -> str:
        p = f", params: {{{params}}}" if params else ""
        return f"cases: [{{id: t, kind: {kind}{p}, {extra}}}]\n" if extra else f"cases: [{{id: t, kind: {kind}{p}}}]\n"
    rows = [
        ("timeout 1e10", case("timeout: 1.0e+10")),
        ("timeout -1", case("timeout: -1")),
        ("timeout nan", case("timeout: .nan")),
        ("timeout a string", case("timeout: soon")),
        ("budget inf", case("budget: .inf")),
        ("budget -1", case("budget: -1")),
        ("memory_limit_gb 1e10", case("memory_limit_gb: 1.0e+10")),
        ("memory_limit_gb 0", case("memory_limit_gb: 0")),
        ("threads [[1]]", case("threads: [[1]]")),
        ("threads [{n: 1}]", case("threads: [{n: 1}]")),
        ("threads '1..100000000000000'", case("threads: '1..100000000000000'")),
        ("threads '1..30000000'", case("threads: '1..30000000'")),
        ("threads 0", case("threads: 0")),
        ("threads -2", case("threads: -2")),
        ("threads true", case("threads: true")),
        ("threads 4096", case("threads: 4096")),
        ("cpus [0, 0] with threads 2", case("cpus: [0, 0], threads: 2")),
        ("cpus [9999]", case("cpus: [9999]")),
        ("samples 1e12", case("max_samples: 1000000000000")),
        ("processes 1000", case("processes: 1000")),
        ("matrix of 100x100x100 cases", "cases: [{id: t, kind: diagnostic.sleep, matrix: "
         "{a: [" + ",".join(map(str, range(100))) + "], b: [" + ",".join(map(str, range(100))) +
         "], c: [" + ",".join(map(str, range(100))) + "]}}]\n"),
        ("conv ic 0", case("", "conv.torch", "ic: 0, oc: 8, h: 8, kh: 3")),
        ("conv ic false", case("", "conv.torch", "ic: false, oc: 8, h: 8, kh: 3")),
        ("conv h 1e9", case("", "conv.torch", "ic: 8, oc: 8, h: 1000000000, kh: 3")),
        ("conv needing 25 GB", case("", "conv.torch", "ic: 512, oc: 512, h: 1024, kh: 3, pad: 1, n: 24")),
        ("conv kernel larger than the image", case("", "conv.torch", "ic: 8, oc: 8, h: 4, kh: 9")),
        ("conv groups not dividing ic", case("", "conv.torch", "ic: 6, oc: 8, h: 8, kh: 3, groups: 4")),
        ("matmul n 1e6", case("", "numpy.matmul", "n: 1000000")),
        ("stream arrays of 1e9 MB", case("", "probe.stream", "mbytes: 1000000000")),
        ("page faults 1e9 MB", case("", "memory.page_faults", "mbytes: 1000000000")),
        ("unknown param", case("", "diagnostic.sleep", "seconds: 0.001, bogus: 1")),
        ("model batch 1e6", case("", "model.torch", "model: resnet18, batch: 1000000")),
    ]
    return [Row("numbers", what, ("run", "{suite}"), text) for what, text in rows]


def flag_rows() -> list[Row]:
    rows = [
        ("run --budget-scale inf", ("run", "suites/quick.yaml", "--budget-scale", "inf")),
        ("run --budget-scale -1", ("run", "suites/quick.yaml", "--budget-scale", "-1")),
        ("run --processes 0", ("run", "suites/quick.yaml", "--processes", "0")),
        ("run --processes 100000", ("run", "suites/quick.yaml", "--processes", "100000")),
        ("run --results on a file", ("run", "suites/quick.yaml", "--results", "README.md")),
        ("conv --hw 0", ("conv", "--ic", "8", "--oc", "8", "--hw", "0", "-k", "3")),
        ("conv --ic abc", ("conv", "--ic", "abc", "--oc", "8", "--hw", "8", "-k", "3")),
        ("conv --budget inf", ("conv", "--ic", "8", "--oc", "8", "--hw", "8", "-k", "3", "--budget", "inf")),
        ("conv --threads 0", ("conv", "--ic", "8", "--oc", "8", "--hw", "8", "-k", "3", "--threads", "0")),
        ("model unknown name", ("model", "resnet9000")),
        ("model --image 0", ("model", "resnet18", "--image", "0")),
        ("model --batch -1", ("model", "resnet18", "--batch", "-1")),
        ("model --top 0", ("model", "resnet18", "--top", "0")),
        ("model a file that is not ONNX", ("model", "README.md")),
        ("model a missing .onnx", ("model", "nope.onnx")),
        ("report a missing run", ("report", "no-such-run")),
        ("report --top 0", ("report", "latest", "--top", "0")),
        ("compare one run", ("compare", "latest")),
        ("compare --min-effect nan", ("compare", "latest", "latest", "--min-effect", "nan")),
        ("compare a missing run", ("compare", "latest", "nope")),
        ("export --format xml", ("export", "latest", "--format", "xml")),
        ("profile --forget a missing run", ("profile", "--forget", "nope")),
        ("throttle --isa avx9000", ("throttle", "--isa", "avx9000")),
        ("probe --budget-scale 0", ("probe", "--budget-scale", "0")),
        ("unknown command", ("benchmark",)),
        ("throttle --max-cores 0", ("throttle", "--max-cores", "0")),
    ]
    return [Row("flags", what, args) for what, args in rows]


def store_rows(results: Path) -> list[Row]:
    """Broken run folders under a results folder of their own (made by `prepare_store`)."""
    runs = results / "runs"
    return [Row("store", what, (cmd, str(runs / run)) + (("--format", "csv") if cmd == "export" else ())
                if cmd != "compare" else (cmd, str(runs / run), str(runs / "good")))
            for what, cmd, run in [
                ("report: a records line that is a list", "report", "list-line"),
                ("report: schema_version 999", "report", "schema-999"),
                ("report: schema_version a string", "report", "schema-str"),
                ("report: a manifest that is not JSON", "report", "bad-manifest"),
                ("export: a records line that is a number", "export", "number-line"),
                ("export: schema_version 999", "export", "schema-999"),
                ("compare: a records line that is a list", "compare", "list-line"),
                ("compare: schema_version a string", "compare", "schema-str"),
                ("report: a run folder with no manifest", "report", "no-manifest"),
            ]]


def fault_rows() -> list[Row]:
    crash = "cases: [{id: c, kind: diagnostic.crash}, {id: h, kind: diagnostic.hang, timeout: 3}, " \
            "{id: m, kind: diagnostic.allocate, params: {gbytes: 4}, memory_limit_gb: 0.5}, " \
            "{id: ok, kind: diagnostic.empty}]\n"
    slow = "defaults: {budget: 30}\ncases: [{id: a, kind: diagnostic.sleep, params: {seconds: 0.01}}, " \
           "{id: b, kind: diagnostic.sleep, params: {seconds: 0.01}}]\n"
    return [
        Row("faults", "a crashing, a hanging and an out-of-memory case beside a good one", ("run", "{suite}"),
            crash, expect=(1,)),
        Row("signals", "one Ctrl-C", ("run", "{suite}"), slow, (130,), ((2.5, signal.SIGINT),)),
        Row("signals", "two Ctrl-C 20 ms apart", ("run", "{suite}"), slow, (130,),
            ((2.5, signal.SIGINT), (0.02, signal.SIGINT))),
        Row("signals", "three Ctrl-C 200 ms apart", ("run", "{suite}"), slow, (130,),
            ((2.5, signal.SIGINT), (0.2, signal.SIGINT), (0.2, signal.SIGINT))),
        Row("signals", "SIGTERM", ("run", "{suite}"), slow, (143,), ((2.5, signal.SIGTERM),)),
        Row("signals", "SIGTERM then Ctrl-C", ("run", "{suite}"), slow, (143,),
            ((2.5, signal.SIGTERM), (0.05, signal.SIGINT))),
    ]


def prepare_store(results: Path) -> None:
    good = {"schema_version": 2, "run_id": "good", "status": "complete", "suite": {"name": "x"}}
    for name, manifest, records in [
        ("good", good, []),
        ("list-line", good, ["[1, 2]"]),
        ("number-line", good, ["3"]),
        ("schema-999", {**good, "schema_version": 999}, ['{"schema_version": 999, "case_id": "x"}']),
        ("schema-str", {**good, "schema_version": "two"}, ['{"schema_version": "two", "case_id": "x"}']),
        ("bad-manifest", None, []),
        ("no-manifest", False, []),
    ]:
        d = results / "runs" / name
        d.mkdir(parents=True, exist_ok=True)
        if manifest is None:
            (d / "manifest.json").write_text("{not json")
        elif manifest is not False:
            (d / "manifest.json").write_text(json.dumps({**manifest, "run_id": name}))
        (d / "records.jsonl").write_text("".join(line + "\n" for line in records))


def run_row(row: Row, work: Path, results: Path) -> dict:
    suite = work / "suite.yaml"
    if row.suite is not None:
        suite.write_bytes(row.suite.encode("utf-8", "surrogateescape"))
    args = [a.replace("{suite}", str(suite)) for a in row.args]
    if "--results" not in args and args and args[0] in ("run", "conv", "model", "probe", "throttle", "report",
                                                        "compare", "export", "profile"):
        args += ["--results", str(results)]
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace")
    for delay, sig in row.signals:
        time.sleep(delay)
        proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    seconds = time.perf_counter() - start
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("running ")]
    tb = "Traceback" in err or "Traceback" in out
    ok = proc.returncode in row.expect and not tb and (proc.returncode != 2 or len(lines) == 1)
    return {"category": row.category, "input": row.what, "exit": proc.returncode, "s": f"{seconds:.1f}",
            "lines": len(lines), "traceback": "yes" if tb else "no", "as promised": "yes" if ok else "NO",
            "gives": (lines[-1] if lines else (out.strip().splitlines() or [""])[-1])[:110]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="only rows whose input contains TEXT")
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bad-inputs-") as tmp:
        work, results = Path(tmp), Path(tmp) / "results"
        prepare_store(results)
        rows = suite_rows() + number_rows() + flag_rows() + store_rows(results) + fault_rows()
        rows = [r for r in rows if not args.only or args.only in r.what]
        table = []
        for i, row in enumerate(rows, 1):
            print(f"[{i}/{len(rows)}] {row.what}", file=sys.stderr, flush=True)
            table.append(run_row(row, work, results))
    cols = ["category", "input", "exit", "s", "lines", "traceback", "as promised", "gives"]
    if args.markdown:
        print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
        for t in table:
            print("| " + " | ".join(str(t[c]).replace("|", "\\|") for c in cols) + " |")
    else:
        print(format_table(cols, [[t[c] for c in cols] for t in table], align_right={2, 3, 4}))
    bad = [t for t in table if t["as promised"] != "yes"]
    print(f"\n{len(table)} inputs: {len(table) - len(bad)} as promised, {len(bad)} not")
    return 0


if __name__ == "__main__":
    sys.exit(main())
