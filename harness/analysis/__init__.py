"""Analysis: what the device is (fingerprint), what it can do (the device profile, the
roofline), where each measured op stands (placement), layer tables and the throttle table.

Imports the cost model and the core; nothing here prints or renders.
"""
