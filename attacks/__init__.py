"""The attacker: fingerprinting and model extraction against a model-zoo serving system.

Following PSML (Sanyal et al., arXiv 2307.01292, §4): a tenant that fingerprints the serving
system to trigger the zoo model it wants (strategies ``oracle``, ``naive``, ``fingerprint``,
``known-zoo``), then extracts it with knockoff (soft-label) or label-only training; accuracy
and fidelity of the surrogate are measured on the test split. Every input it sends is paid
from one budget (:mod:`attacks.agent`).
"""
