"""The cost model: FLOPs, parameters and bytes moved, per op (ops) and per model (the torch
walk and the ONNX graph), by the counting conventions the README states.

Imports only the core. It sits below the analysis because kernels declare their own cost
with the same formulas (a conv case's FLOPs are conv2d_cost's), and a fact has one home.
"""
