"""Warnings grouped by topic, each said in words with the action that would fix it.

A record's warnings and suspect reasons, and the machine's, are sentences with numbers in
them (core/trust.py, core/conditions.py); a run of 29 cases can carry 70 of them. Readers
want one line per topic: what it means, how many cases it touched, and what to do. TOPICS
maps each sentence, by its opening words, to that line; a sentence no topic knows is kept
under "other" with its own text, never dropped.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.core.records import Record, final


MACHINE = "the machine"


@dataclass(frozen=True)
class Topic:
    name: str
    pattern: str  # a regular expression matched at the start of the warning
    meaning: str
    action: str


TOPICS = (
    Topic("noise", r"noisy: coefficient of variation",
          "the samples spread widely (coefficient of variation = standard deviation / mean)",
          "rerun on a quieter machine, or pool fresh workers with --processes 3 and a larger --budget-scale"),
    Topic("load", r"other processes kept the pinned CPUs",
          "other processes used the CPUs the case was pinned to",
          "stop other work on these CPUs (or pin it elsewhere) and rerun"),
    Topic("steal", r"hypervisor steal",
          "the hypervisor gave the case's CPUs to another guest during the timed region",
          "rerun at a quieter time; on a shared cloud host, prefer a dedicated-core instance"),
    Topic("clock", r"the core clock moved",
          "the core clock changed during the case (turbo, a thermal limit, or the host)",
          "rerun; warm up longer (warmup_max) so the clock settles before timing"),
    Topic("page faults", r"page faults in the timed region",
          "the timed calls took page faults (fresh memory each call: the copy-on-write cost)",
          "preallocate outputs or keep freed memory in the process (a memory pool); the conv kinds raise "
          "glibc's mmap and trim thresholds for this"),
    Topic("warm-up", r"warm-up did not reach a steady state",
          "the warm-up stopped at its cap before the last samples agreed within 5%",
          "raise warmup_max for the case (or --budget-scale) and rerun"),
    Topic("outliers", r"\d+ of \d+ samples are outliers",
          "more than a tenth of the samples fell outside Tukey's fences (kept, never dropped)",
          "look for interruptions on the machine; quote the median, which outliers barely move"),
    Topic("affinity", r"asked for CPUs",
          "the worker could not be pinned to the CPUs the case asked for",
          "check the CPUs this process may use (taskset, the cgroup's cpuset) and the suite's cpus: key"),
    Topic("hypervisor", r"running under a hypervisor",
          "this machine is a virtual machine: its CPUs may be shared and the clock it sees may not be the real one",
          "compare runs made in the same minutes; use --processes to pool fresh workers"),
    Topic("isolation", r"no isolated CPUs",
          "the OS may schedule other work on the pinned CPUs (no isolcpus)",
          "for the steadiest figures boot with isolcpus= and run on those CPUs; otherwise keep the machine quiet"),
    Topic("governor", r"cpufreq governor",
          "the frequency governor may ramp the clock during timing",
          "set the governor to performance (cpupower frequency-set -g performance) if you may"),
    Topic("turbo", r"turbo/boost is on",
          "the clock depends on temperature and the number of busy cores",
          "disable turbo for repeatable figures, or read the clock the records carry beside each figure"),
    Topic("OpenBLAS kernel", r"OPENBLAS_CORETYPE=",
          "the environment forces OpenBLAS's kernels for an older CPU",
          "unset OPENBLAS_CORETYPE (and OPENBLAS_L2_SIZE) for the BLAS figures this CPU can reach"),
    Topic("placement", r"roofline placement failed",
          "the record could not be placed on the roofline (a bug: the figure itself stands)",
          "report it with the run folder"),
    Topic("teardown", r"teardown failed",
          "the case's clean-up raised after its figures were taken",
          "report it with the run folder; the figures stand"),
)


@dataclass
class Group:
    topic: Topic
    cases: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    count: int = 0


def topic_of(text: str) -> Topic:
    for topic in TOPICS:
        if re.match(topic.pattern, str(text)):
            return topic
    return Topic("other", "", str(text), "read the case's record (harness report RUN) for the details")


def group_warnings(records: list[Record], machine: list[str] = ()) -> list[Group]:
    """The warnings and suspect reasons of the final records, and the machine's, by topic,
    the topic touching most cases first. A case counts once per topic."""
    groups: dict[str, Group] = {}
    for case, texts in [(MACHINE, list(machine))] + [(r.case_id, r.warnings + r.suspect_reasons)
                                                            for r in final(records)]:
        for text in texts:
            topic = topic_of(text)
            key = topic.name if topic.name != "other" else f"other: {text}"
            group = groups.setdefault(key, Group(topic))
            group.count += 1
            if case not in group.cases:
                group.cases.append(case)
            if len(group.examples) < 1:
                group.examples.append(str(text))
    return sorted(groups.values(), key=lambda g: (-len(g.cases), g.topic.name))


def advice_lines(records: list[Record], machine: list[str] = (), width: int = 4) -> list[str]:
    """One line per topic for the console: 'noise (3 cases: a, b, c): what it means. Fix: what to do.'"""
    lines = []
    for g in group_warnings(records, machine):
        lines.append(f"{g.topic.name} ({where(g, width)}): {g.topic.meaning if g.topic.name != 'other' else g.examples[0]}"
                     f". Fix: {g.topic.action}.")
    return lines


def where(group: Group, width: int = 4) -> str:
    """'the machine', '1 case: gemm[t=1]', '5 cases: a, b, c, d and 1 more'."""
    cases = [c for c in group.cases if c != MACHINE]
    if not cases:
        return MACHINE
    shown = ", ".join(cases[:width]) + (f" and {len(cases) - width} more" if len(cases) > width else "")
    return f"{len(cases)} case{'s' if len(cases) != 1 else ''}: {shown}"
