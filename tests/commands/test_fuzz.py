"""Fuzzing the front door: generated bad suite files and bad flag values for every command
give one line on stderr, exit code 2 and no traceback, and the line names what was bad (the
flag, the suite key, or the file and line of YAML that cannot be read). Hypothesis generates
them; each example is bad by construction, so nothing is ever measured. Every call is
in-process (cli.main), so hundreds of examples take seconds."""
from __future__ import annotations

import json
import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.analysis import fingerprint as fpmod
from harness.analysis import profile as profiles
from harness.commands.cli import COMMANDS, one_line
from harness.commands.cli import main as harness_main

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

BASE_CASE = {"id": "e", "kind": "diagnostic.empty", "threads": 1, "budget": 0.01, "timeout": 10}
junk = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                 st.text(max_size=20), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                                            st.integers(), max_size=2))
bad_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(lambda x: not math.isfinite(x)),
                       st.floats(max_value=-0.5), st.floats(min_value=1e7, allow_infinity=False),
                       st.text(max_size=8), st.lists(st.integers(), min_size=1, max_size=3))


def mutation():
    """One change that makes a valid suite invalid."""
    return st.one_of(
        st.tuples(st.just("case_key"), st.sampled_from(["timeout", "budget", "warmup_max", "min_samples",
                                                         "max_samples", "processes", "memory_limit_gb"]), bad_number),
        st.tuples(st.just("case_key"), st.just("threads"),
                  st.one_of(st.integers(max_value=0), st.integers(min_value=5000, max_value=10**30),
                            st.text(min_size=1, max_size=12).filter(lambda t: t not in ("all", "1", "2")),
                            st.lists(st.lists(st.integers(), max_size=2), min_size=1, max_size=2),
                            st.just("1..100000000000"), st.just("5..1"))),
        st.tuples(st.just("case_key"), st.just("cpus"), st.one_of(st.just([0, 0]), st.just([4096]), st.text(max_size=5))),
        st.tuples(st.just("unknown_key"), st.text(min_size=1, max_size=10).filter(
            lambda k: k not in ("id", "kind", "params", "matrix", "threads", "cpus", "timeout", "budget", "min_samples",
                                "max_samples", "warmup_max", "memory_limit_gb", "processes")), junk),
        st.tuples(st.just("kind"), st.just("kind"), st.one_of(st.text(max_size=10).filter(
            lambda k: k != "diagnostic.empty"), st.integers(), st.none())),
        st.tuples(st.just("params"), st.just("params"), st.one_of(
            st.dictionaries(st.text(min_size=1, max_size=6), junk, min_size=1, max_size=3), st.integers(), st.text())),
        st.tuples(st.just("top"), st.sampled_from(["cases", "defaults", "include", "name"]),
                  st.one_of(st.integers(), st.text(max_size=5).filter(lambda t: not t.endswith(".yaml")),
                            st.lists(st.integers(), min_size=1, max_size=2))),
    )


def bad_suite(change) -> tuple[str, str]:
    """The suite's YAML, and what its error must name."""
    where, key, value = change
    suite = {"name": "fuzz", "cases": [dict(BASE_CASE)]}
    if where in ("case_key", "unknown_key", "kind", "params"):
        suite["cases"][0][key] = value
        named = f"cases[0].{key}"
    else:
        suite[key] = value
        named = f": {key}"
    if where == "top" and key == "name" and isinstance(value, str) and 0 < len(value) <= 200:
        suite["cases"][0]["timeout"] = -1  # a string name is fine: keep the suite bad elsewhere
        named = "cases[0].timeout"
    return yaml.safe_dump(suite), one_line(named)


def one_line_exit_2(argv, capsys) -> str:
    """The error line, without argparse's closing "(see harness X --help)": what is left must
    name what was bad."""
    try:
        code = harness_main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, (argv, code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, (argv, err)
    return lines[0].split(" (see harness")[0]


@SETTINGS
@given(mutation())
def test_generated_bad_suites_are_one_line_and_exit_2(tmp_path, capsys, change):
    path = tmp_path / "fuzz.yaml"
    text, named = bad_suite(change)
    path.write_text(text)
    line = one_line_exit_2(["run", path, "--results", tmp_path / "r", "--no-progress"], capsys)
    assert named in line, (named, line)


key_name = st.from_regex(r"[a-z_]{1,12}", fullmatch=True)
TAGS = ["!!float", "!!int", "!!bool", "!!timestamp", "!!binary", "!!set", "!!omap", "!!pairs", "!!map", "!!seq",
        "!!str", "!!null", "!!python/object:os.system", "!!python/name:os.system", "!local", "!<tag:x.org,2002:y>"]


def yaml_trap():
    """(what to write after `timeout:` in a case, extra lines of the case) that YAML reads as
    something a suite refuses, or cannot read at all."""
    def digits(alphabet, prefix="", low=101):
        return st.text(alphabet, min_size=low, max_size=6000).map(lambda d: prefix + "1" + d)
    number_text = st.one_of(
        digits("0123456789"), digits("0123456789abcdef", "0x"), digits("01234567", "0"), digits("01", "0b"),
        st.lists(st.integers(0, 59).map(str), min_size=40, max_size=3000).map(lambda p: "1:" + ":".join(p)),  # 60
        digits("0123456789", low=6).filter(lambda t: len(t) <= 100))  # short enough to read, too big for a timeout
    date_text = st.one_of(st.dates().map(str), st.datetimes().map(lambda d: d.isoformat(" ")),
                          st.sampled_from(["2001-13-45", "2001-02-30", "2001-12-14 25:61:61", "0000-00-00"]))
    not_a_timeout = ["x", "0x", "0b2", "-1", "''", "[1]", "{a: 1}", "2001-13-45", "maybe", "aGk=", "..", "-"]
    tagged = st.tuples(st.sampled_from(TAGS), st.sampled_from(not_a_timeout))
    nested = st.tuples(st.integers(1, 3000), st.sampled_from(["[", "{a: "])).map(
        lambda d: d[1] * d[0] + ("]" if d[1] == "[" else "}") * d[0])
    return st.one_of(
        st.tuples(st.one_of(number_text, date_text, tagged.map(" ".join), nested), st.just("")),
        st.tuples(st.just("10"), key_name.map(lambda k: f"    {k}: 1\n    {k}: 2\n")),  # a key twice
    )


@SETTINGS
@given(yaml_trap())
def test_generated_yaml_traps_are_one_line_naming_the_key_or_the_line(tmp_path, capsys, trap):
    value, extra = trap
    path = tmp_path / "trap.yaml"
    path.write_text(f"name: fuzz\ncases:\n  - id: e\n    kind: diagnostic.empty\n    budget: 0.01\n"
                    f"    timeout: {value}\n{extra}")
    line = one_line_exit_2(["run", path, "--results", tmp_path / "r", "--no-progress"], capsys)
    assert line.startswith(f"error: {path}: line ") or (f"{path}: cases[0]." in line and not extra), line
    assert not (tmp_path / "r").exists()


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes_as_a_suite_are_one_line_and_exit_2(tmp_path, capsys, data):
    path = tmp_path / "junk.yaml"
    text = data.decode("latin-1")
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("cases"):
        return  # a chance valid suite: not this test's business
    path.write_bytes(data)
    line = one_line_exit_2(["run", path, "--results", tmp_path / "r"], capsys)
    assert line.startswith(f"error: {path}"), line


BAD_INT = st.one_of(st.integers(max_value=0), st.integers(min_value=10**7, max_value=10**40), st.just("x"),
                    st.just(""), st.just("1.5"), st.just("nan"))
BAD_FLOAT = st.one_of(st.just("nan"), st.just("inf"), st.just("-inf"), st.just("-1"), st.just("1e400"),
                      st.just("abc"), st.floats(min_value=1e6, max_value=1e300).map(str))
COMMAND_FLAGS = [
    (["run", "suites/quick.yaml"], "--budget-scale", BAD_FLOAT),
    (["run", "suites/quick.yaml"], "--processes", BAD_INT),
    (["probe"], "--budget-scale", BAD_FLOAT),
    (["throttle"], "--seconds", BAD_FLOAT),
    (["throttle"], "--budget", BAD_FLOAT),
    (["throttle"], "--max-cores", BAD_INT),
    (["conv", "--ic", "8", "--oc", "8", "--hw", "8"], "--budget", BAD_FLOAT),
    (["conv", "--oc", "8", "--hw", "8"], "--ic", BAD_INT),
    (["conv", "--ic", "8", "--oc", "8", "--hw", "8"], "--threads", BAD_INT),
    (["model", "resnet18"], "--batch", BAD_INT),
    (["model", "resnet18"], "--image", BAD_INT),
    (["model", "resnet18"], "--top", BAD_INT),
    (["model", "resnet18"], "--budget", BAD_FLOAT),
    (["model", "resnet18"], "--threads", BAD_INT),
    (["report", "latest"], "--top", BAD_INT),
    (["compare", "a", "b"], "--alpha", BAD_FLOAT),
    (["compare", "a", "b"], "--min-effect", BAD_FLOAT),
    (["export", "RUN"], "--format", st.text(min_size=1, max_size=10).filter(
        lambda t: t not in ("csv", "parquet", "pytest-benchmark") and not t.startswith("-"))),
    (["export", "RUN", "--format", "csv"], "--out", st.sampled_from(["TMP", "/"])),  # a folder: not writable
    (["profile"], "--forget", st.text(max_size=12)),  # the profile has no run of that name
    (["profile", "--reset"], "--forget", st.just("x")),  # one or the other
    (["device"], "--json", st.text(min_size=1, max_size=6)),  # --json=VALUE: it takes none
]


def _stage(tmp_path) -> dict:
    """A run folder and a device profile under tmp_path/r, for the commands that read them."""
    run = tmp_path / "r" / "dev" / "run"
    run.mkdir(parents=True, exist_ok=True)
    (run / "records.jsonl").write_text(json.dumps({"case_id": "b", "kind": "diagnostic.empty", "status": "skipped",
                                                   "error": "x"}) + "\n")
    (run / "manifest.json").write_text(json.dumps({"run_id": "dev/run", "status": "complete"}))
    device = fpmod.device_slug(fpmod.fingerprint(with_gpu=False))
    profiles.save_profile(profiles.profile_path(tmp_path / "r", device), profiles.DeviceProfile())
    return {"RUN": str(run), "TMP": str(tmp_path)}


@pytest.mark.parametrize("prefix, flag, values", COMMAND_FLAGS, ids=lambda x: x if isinstance(x, str) else None)
def test_bad_flag_values_for_every_command_are_one_line_naming_the_flag(tmp_path, capsys, prefix, flag, values):
    staged = _stage(tmp_path)

    @SETTINGS
    @given(values)
    def check(value):
        value = staged.get(value, value)
        argv = [staged.get(a, a) for a in prefix]
        if flag == "--json":
            argv += [f"--json={value}"]
        elif flag == "--results":
            argv += [flag, value]
        else:
            argv += [flag, value, "--results", tmp_path / "r"]
        line = one_line_exit_2(argv, capsys)
        named = value if flag == "--results" else flag  # "latest: no runs under DIR/"
        assert named in line, (named, line)

    check()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unknown_flag_for_every_command_is_one_line_naming_it(tmp_path, capsys, command):
    needed = {"run": ["suites/quick.yaml"], "conv": ["--ic", "8", "--oc", "8", "--hw", "8"], "model": ["resnet18"],
              "report": ["latest"], "compare": ["a", "b"], "export": ["latest", "--format", "csv"]}

    @SETTINGS
    @given(st.from_regex(r"--zz[a-z-]{0,10}", fullmatch=True))  # "--zz": no flag starts so (argparse takes prefixes)
    def check(flag):
        line = one_line_exit_2([command, *needed.get(command, []), flag], capsys)
        assert f"unrecognized arguments: {flag}" in line, line

    check()
