"""The two conv tables of the source document (seeds/000, Part 2), reproduced by harness.cost.

Units, worked out from the tables themselves:
- 计算量(MFLOPs): 1e6 FLOPs, a multiply-add counted as 2.
- 访存量(MB): MiB, 2^20 bytes (231211008 FLOPs / 1392640 bytes prints as 1.328 only in MiB).
- 计算密度: MFLOPs / MiB, computed from the unrounded figures (the printed 231.211 / 1.328
  would give 174.104, not the printed 174.088). True FLOPs per byte = that / 1.048576.
- 理论计算速度: TFLOP/s (1e12 FLOP/s): MFLOPs / (TFLOP/s) is microseconds, and
  51.380 / 2.106 = 24.40 us is the printed 理论推理时间(us).
- 计算效率: 理论计算速度 / peak, in percent.

The implied machine: peak P = 2.86 TFLOP/s (the 100%-efficient row) and bandwidth
B = 98.304e9 bytes/s decimal (98.30 GB/s = 93,750 MiB/s). The author's speeds are
计算密度 x 0.09375 TFLOP/s, i.e. a "93.75 GB/s" applied to MiB-based intensities, which
in true units is 93.75e9 x 1.048576 = 98.304e9 bytes/s. Ridge point P / B = 29.09 FLOP/byte.

Every printed figure reproduces. One subtlety: B taken from table 1's memory-bound
speed (2.106, 4 digits) is 98.30e9 +- 0.02e9, which moves table 2's 261.34 us by
+-0.05 us; so B is derived from table 2's memory-bound time (261.34, 5 digits) instead,
and table 1's figure is checked to agree within its own rounding.
"""
import math
from dataclasses import dataclass

import pytest

from harness.cost.ops import conv2d_cost

MIB = 2**20
DOC_INTENSITY_PER_TRUE = MIB / 1e6  # 1.048576: (MFLOPs / MiB) / (FLOPs / byte)


@dataclass(frozen=True)
class Row:
    table: int
    no: int  # 序号
    batch: int
    ic: int
    ihw: int
    khw: int
    stride: int
    pad: int
    dilation: int
    group: int
    oc: int
    ohw: int
    mflops: float
    mib: float
    intensity: float
    speed_tflops: float
    efficiency_pct: float | None = None  # table 1 only
    time_us: float | None = None  # table 2 only

    def cost(self):
        return conv2d_cost((self.batch, self.ic, self.ihw, self.ihw), self.oc, self.khw,
                           self.stride, self.pad, self.dilation, self.group)


TABLE1 = [
    Row(1, 1, 1, 128, 28, 3, 1, 1, 1, 1, 128, 28, 231.211, 1.328, 174.088, 2.860, efficiency_pct=100.00),
    Row(1, 2, 1, 512, 7, 1, 1, 0, 1, 1, 1024, 7, 51.380, 2.287, 22.465, 2.106, efficiency_pct=73.64),
    Row(1, 3, 1, 128, 28, 3, 1, 1, 1, 128, 128, 28, 1.806, 0.770, 2.346, 0.220, efficiency_pct=7.69),
]
TABLE2 = [
    Row(2, 1, 1, 512, 7, 1, 1, 0, 1, 1, 1024, 7, 51.380, 2.287, 22.465, 2.106, time_us=24.40),
    Row(2, 2, 1, 16, 448, 3, 1, 1, 1, 16, 16, 448, 57.803, 24.501, 2.359, 0.221, time_us=261.34),
    Row(2, 3, 1, 16, 448, 3, 1, 1, 1, 1, 16, 448, 924.844, 24.509, 37.735, 2.860, time_us=323.37),
]
ROWS = TABLE1 + TABLE2
IDS = [f"table{r.table}-row{r.no}" for r in ROWS]

# The implied machine, derived from one compute-bound and one memory-bound row.
COMPUTE_BOUND = TABLE1[0]  # 计算效率 100.00%
MEMORY_BOUND = TABLE2[1]  # depthwise, the most digits in its time
PEAK = COMPUTE_BOUND.speed_tflops * 1e12  # FLOP/s
BANDWIDTH = MEMORY_BOUND.cost().bytes / (MEMORY_BOUND.time_us * 1e-6)  # bytes/s


def half_ulp(decimals: int) -> float:
    """Half a unit in the last printed place: the most rounding can have moved a figure."""
    return 0.5 * 10.0**-decimals


def roofline_speed(cost) -> float:
    return min(cost.intensity * BANDWIDTH, PEAK)


def roofline_time(cost) -> float:
    return max(cost.flops / PEAK, cost.bytes / BANDWIDTH)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_flops_bytes_and_intensity_reproduce(row):
    cost = row.cost()
    assert cost.output_shape == (row.batch, row.oc, row.ohw, row.ohw)
    assert round(cost.flops / 1e6, 3) == row.mflops
    assert round(cost.bytes / MIB, 3) == row.mib
    doc_intensity = (cost.flops / 1e6) / (cost.bytes / MIB)
    assert round(doc_intensity, 3) == row.intensity
    assert cost.intensity == pytest.approx(doc_intensity / DOC_INTENSITY_PER_TRUE, rel=1e-12)
    assert abs(cost.intensity - row.intensity / DOC_INTENSITY_PER_TRUE) <= half_ulp(3) / DOC_INTENSITY_PER_TRUE


def test_implied_machine():
    assert PEAK == 2.86e12
    assert BANDWIDTH == pytest.approx(98.304e9, rel=2e-5)  # 261.34 us is good to 1 part in 52,000
    # The round figure: 93.75 "GB/s" on MiB-based intensity = 93,750 MiB/s.
    assert 93_750 * MIB == 98.304e9
    # Table 1's memory-bound speed gives the same bandwidth within its 4-digit rounding.
    row = TABLE1[1]
    cost = row.cost()
    low = (row.speed_tflops - half_ulp(3)) * 1e12 / cost.intensity
    high = (row.speed_tflops + half_ulp(3)) * 1e12 / cost.intensity
    assert low <= BANDWIDTH <= high
    # The author's own arithmetic: speed = 计算密度 x 0.09375, capped at 2.86.
    for r in ROWS:
        assert round(min(r.cost().flops / r.cost().bytes * DOC_INTENSITY_PER_TRUE * 0.09375, 2.86), 3) == r.speed_tflops
    ridge = PEAK / BANDWIDTH
    assert ridge == pytest.approx(29.09, abs=0.01)


@pytest.mark.parametrize("row", ROWS, ids=IDS)
def test_speed_column_is_the_roofline(row):
    assert round(roofline_speed(row.cost()) / 1e12, 3) == row.speed_tflops


@pytest.mark.parametrize("row", TABLE1, ids=IDS[:3])
def test_efficiency_column_is_speed_over_peak(row):
    assert round(roofline_speed(row.cost()) / PEAK * 100, 2) == row.efficiency_pct


@pytest.mark.parametrize("row", TABLE2, ids=IDS[3:])
def test_time_column_is_the_roofline(row):
    cost = row.cost()
    assert round(roofline_time(cost) * 1e6, 2) == row.time_us
    # Units check straight from the printed columns: MFLOPs / (TFLOP/s) = microseconds,
    # within the rounding of the printed speed.
    from_printed = row.mflops / row.speed_tflops
    tolerance = from_printed * half_ulp(3) / row.speed_tflops + half_ulp(2)
    assert math.isclose(from_printed, row.time_us, abs_tol=tolerance)


def test_labels_match_the_ridge():
    # Table 1 labels rows 1..3 计算密集, 访存密集, 访存密集.
    bound = ["compute" if r.cost().intensity * BANDWIDTH >= PEAK else "memory" for r in TABLE1]
    assert bound == ["compute", "memory", "memory"]
