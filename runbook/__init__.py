"""The runbook engine: YAML production procedures, validated, planned, run and audited.

Kept import-light on purpose: ``invoke --list`` must not pay for yaml, jsonschema,
boto3 or rich. Modules import what they need inside the functions that need it.
"""

__version__ = "0.1.0"
