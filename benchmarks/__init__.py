"""`invoke bench`: the engine's speed, each figure beside a baseline measured in the same run.

``python -m benchmarks [--quick | --tiny] [--fixture DIR] [--only NAME,...] [--json]``; see ``run.py``.
Benchmarks inform; the test suite asserts no timing.
"""
