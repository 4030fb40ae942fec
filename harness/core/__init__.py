"""The measurement core: how a case is described (suite, registry, workload API), run
(worker, runner), timed (timing, stats, conditions) and stored (records, store).

Imports nothing else of the project: every other layer builds on it.
"""
