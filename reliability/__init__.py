"""Reliability and security, measured: `invoke reliability [--full]`.

Each figure of :mod:`reliability.suite` tries many hostile situations against the engine
(crashes at every point, torn writes, lock races, hostile input, tampering, leaked
secrets, forged approvals) and reports how many it tried, how many held and how many
failed. ``--short`` (the default, also run by the test suite) uses small samples; ``--full``
sweeps everything.
"""
