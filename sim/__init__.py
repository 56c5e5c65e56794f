"""zoosim's engine: a SimPy discrete-event simulator of model-zoo inference serving.

Implements the system model of PSML (Sanyal et al., "Pareto-Secure Machine Learning (PSML):
Fingerprinting and Securing Inference Serving Systems", arXiv 2307.01292, §3): requests name
the accuracy and latency they want, and the server picks a zoo model for each.
"""
