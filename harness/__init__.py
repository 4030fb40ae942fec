"""roofline-harness: measure how fast a device really is, and why a model runs at the speed it does."""

__version__ = "0.1.0"



