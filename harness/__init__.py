"""roofline-harness: measure how fast a device really is, and why a model runs at the speed it does."""

__version__ = "0.1.0"

# The version of the record and manifest format in results/; bump on an incompatible change.
SCHEMA_VERSION = 1
