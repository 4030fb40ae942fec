"""Fuzzing the front door: generated bad suite files and bad flag values for every command
give one line on stderr, exit code 2 and no traceback (hypothesis generates them; each
example is bad by construction, so nothing is ever measured)."""
from __future__ import annotations

import math

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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


def bad_suite(change) -> str:
    where, key, value = change
    suite = {"name": "fuzz", "cases": [dict(BASE_CASE)]}
    if where in ("case_key", "unknown_key", "kind", "params"):
        suite["cases"][0][key] = value
    else:
        suite[key] = value
    if where == "top" and key == "name" and isinstance(value, str) and 0 < len(value) <= 200:
        suite["cases"][0]["timeout"] = -1  # a string name is fine: keep the suite bad elsewhere
    return yaml.safe_dump(suite)


def one_line_exit_2(argv, capsys) -> str:
    try:
        code = harness_main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, (argv, code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, (argv, err)
    return lines[0]


@SETTINGS
@given(mutation())
def test_generated_bad_suites_are_one_line_and_exit_2(tmp_path, capsys, change):
    path = tmp_path / "fuzz.yaml"
    path.write_text(bad_suite(change))
    one_line_exit_2(["run", path, "--results", tmp_path / "r", "--no-progress"], capsys)


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
    one_line_exit_2(["run", path, "--results", tmp_path / "r"], capsys)


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
    (["export", "latest", "--format", "csv"], "--results", st.just("/nonexistent/dir")),
]


@pytest.mark.parametrize("prefix, flag, values", COMMAND_FLAGS, ids=lambda x: x if isinstance(x, str) else None)
def test_bad_flag_values_for_every_command_are_one_line_and_exit_2(tmp_path, capsys, prefix, flag, values):
    @SETTINGS
    @given(values)
    def check(value):
        line = one_line_exit_2([*prefix, flag, value, "--results", tmp_path / "r"] if flag != "--results"
                               else [*prefix, flag, value], capsys)
        assert flag in line or "--" in line or "latest" in line or "a:" in line, line

    check()
