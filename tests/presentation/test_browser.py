"""Every kind of report as a person sees it: rendered by headless Chromium (Debian's chromium),
each plot present and drawn, nothing fetched, no script error. Skipped with the reason where
Chromium is not installed (apt-get install chromium)."""
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from synthetic_runs import conv_records, synthetic_records, throttle_records, write_run
from harness.presentation import compare, report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install "
                                                          "chromium): the reports are not rendered in a browser")
# A real `harness model mobilenet_v2 --image 64 --framework onnxruntime eager --threads 1 --layers` run.
MODEL_RUN = Path(__file__).resolve().parent.parent / "data" / "v2-runs" / "amd-epyc-2cpu" / \
    "20261207-211435-model-mobilenet-v2"


def render(page: Path, png: Path | None) -> tuple[str, str]:
    """(DOM after load, Chromium's log) of `page`, and a screenshot at `png` if given."""
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr",
              "--v=0", "--window-size=1400,3000"]
    dom = subprocess.run(common + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    if png is None:
        return dom.stdout, dom.stderr
    shot = subprocess.run(common + [f"--screenshot={png}", page.as_uri()], capture_output=True, text=True,
                          timeout=120)
    return dom.stdout, dom.stderr + shot.stderr


def check_page(page: Path, tmp_path: Path, plots_expected: int, at_least: bool = False, shot: bool = False) -> str:
    png = tmp_path / f"{page.parent.name}.png" if shot else None
    dom, log = render(page, png)
    assert "Uncaught" not in log and not re.search(r"CONSOLE.*(error|Error)", log), log[-2000:]
    figures = re.findall(r'<figure class="plot"[^>]*aria-label="([^"]*)">(.*?)</figure>', dom, re.S)
    assert (len(figures) >= plots_expected if at_least else len(figures) == plots_expected), [
        label for label, _ in figures]
    for label, svg in figures:
        size = re.search(r'<svg[^>]*width="([\d.]+)pt"[^>]*height="([\d.]+)pt"', svg)
        assert size and float(size.group(1)) > 100 and float(size.group(2)) > 100, label
        assert svg.count("<path") > 10, f"{label}: nothing drawn"
    assert "<img" not in dom and not re.search(r'(src|href)="(?!data:|#)', dom)  # nothing fetched
    if png is not None:  # the screenshot is a page, not a blank window
        from matplotlib.image import imread

        pixels = imread(png)
        assert pixels.shape[0] >= 3000 and float(np.std(pixels)) > 0.05
    return dom


def test_quick_model_conv_throttle_and_compare_reports_render(tmp_path):
    quick = report.write_report(write_run(tmp_path, "quick", synthetic_records()))[0]
    dom = check_page(quick, tmp_path, plots_expected=5, shot=True)
    assert "Where the time goes" in dom and "Roofline" in dom

    model_run = tmp_path / "model"
    shutil.copytree(MODEL_RUN, model_run)
    dom = check_page(report.write_report(model_run)[0], tmp_path, plots_expected=2)
    for expected in ("The four size metrics", "Latency and throughput", "Layers: mobilenet_v2 in onnxruntime",
                     "Layers: mobilenet_v2 in torch", "Time per op type", "bottlenecks"):
        assert expected in dom, expected

    conv = report.write_report(write_run(tmp_path, "conv", conv_records()))[0]
    dom = check_page(conv, tmp_path, plots_expected=4)  # conv times, roofline, measured vs theory, scaling
    assert "ReorderInput -&gt; Conv -&gt; ReorderOutput" in dom and "Slow2d" in dom and "MACs" in dom

    throttle = report.write_report(write_run(tmp_path, "throttle", throttle_records()))[0]
    dom = check_page(throttle, tmp_path, plots_expected=1)
    assert "Throttling" in dom and "Roofline" not in dom  # no empty roofline

    a = write_run(tmp_path / "a", "first", conv_records())
    b = write_run(tmp_path / "b", "second", conv_records()[:2])
    written = compare.write_comparison(compare.compare_runs([a, b]), tmp_path / "cmp" / "out")
    dom = check_page(written[0], tmp_path, plots_expected=1, at_least=True)
    assert "Side by side" in dom and "Conditions" in dom
