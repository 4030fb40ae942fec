"""Presentation: text formatting and tables, the report (HTML and Markdown), plots,
comparisons of runs and exports for other tools.

Imports analysis, the cost model and the core; never runs a measurement.
"""
