from support import record
from harness.analysis.throttle import throttle_table
from harness.commands.throttle import throttle_suite
from harness.presentation.tables import format_throttle_table


def test_throttle_suite_has_one_case_per_cores_and_level():
    suite = throttle_suite(["none", "avx2"], max_cores=2, seconds=0.1)
    assert sorted((c.threads, c.params["isa"]) for c in suite.cases) == [
        (1, "avx2"), (1, "none"), (2, "avx2"), (2, "none")]


def test_throttle_table_is_shaped_like_the_documents():
    records = []
    for k, isa, ghz in [(1, "none", 4.5), (1, "avx512", 3.7), (2, "none", 4.2), (2, "avx512", 3.5)]:
        r = record("probe.throttle", {"isa": isa}, k, case_id=f"throttle-{isa}[t={k}]")
        r.metrics = {"ghz": ghz, "ghz_per_core": [ghz] * k}
        records.append(r)
    table = throttle_table(records)
    assert list(table.columns) == ["none", "avx512"] and list(table.index) == [1, 2]
    assert table.loc[2, "avx512"] == 3500
    text = format_throttle_table(table, hypervisor=True)
    assert "3500 MHz (-5.4%)" in text and "4200 MHz (-6.7%)" in text and "VM" in text


def test_throttle_command_end_to_end_and_bad_flags(tmp_path):
    from support import harness_cli

    out = harness_cli("throttle", "--isa", "none", "--max-cores", "1", "--seconds", "0.05", "--budget", "0.05",
                      "--results", tmp_path, "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "busy cores" in out.stdout and "MHz" in out.stdout
    bad = harness_cli("throttle", "--isa", "avx9000", "--results", tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --isa avx9000: not available here")
    bad = harness_cli("throttle", "--max-cores", "999", "--results", tmp_path)
    assert bad.returncode == 2 and "--max-cores 999" in bad.stderr


def test_a_throttle_cell_without_clock_samples_is_an_error_not_nan():
    import pytest
    from kernels.throttle import throttle_sample

    with pytest.raises(RuntimeError, match="no clock sample"):
        throttle_sample("none", "float32", [0], seconds=0.0)
