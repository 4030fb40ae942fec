"""Sessions: what a command does end to end: run a suite into a new run folder, place its
records against the frozen profile, update the profile, write the report.

Imports presentation and everything below it; the commands call into it.
"""
