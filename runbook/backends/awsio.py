"""Small helpers over runbook.aws for the team backend: typed DynamoDB items, conditional calls.

Every call goes through :func:`runbook.aws.call` (the one boto3 door, standard retry
mode); a refused condition (DynamoDB ``ConditionalCheckFailedException``, S3
``PreconditionFailed``) becomes :class:`Conflict`, every other failure stays an
:class:`~runbook.errors.ExternalError` that names the operation.
"""

from __future__ import annotations

from typing import Any, Mapping

from .. import aws
from ..errors import ExternalError

CONFLICT_CODES = frozenset({"ConditionalCheckFailedException", "PreconditionFailed", "ConditionalRequestConflict",
                            "TransactionCanceledException", "412"})


class Conflict(Exception):
    """A conditional write was refused: someone else got there first."""

    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def error_code(exc: ExternalError) -> str:
    """The AWS error code behind a translated error ('' when there is none)."""
    response = getattr(exc.original, "response", None) or {}
    return str((response.get("Error") or {}).get("Code", ""))


def backend_env(env_data: Mapping[str, Any]) -> dict[str, Any]:
    """The environment as runbook.aws sees it, with the backend's region winning."""
    backend = env_data.get("backend") or {}
    section = dict(env_data.get("aws") or {})
    if backend.get("region"):
        section["region"] = backend["region"]
    return {"aws": section}


class Aws:
    """Calls to one environment's AWS, conditional failures as :class:`Conflict`."""

    def __init__(self, env: Mapping[str, Any]):
        self.env = env

    def call(self, service: str, method: str, what: str = "", **kwargs: Any) -> dict[str, Any]:
        try:
            return aws.call(self.env, service, method, what, **kwargs)
        except ExternalError as exc:
            code = error_code(exc)
            if code in CONFLICT_CODES:
                raise Conflict(code) from exc
            raise

    def missing(self, exc: ExternalError) -> bool:
        return error_code(exc) in ("NoSuchKey", "404", "NoSuchVersion", "NotFound")


def to_item(data: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict (str, int, float, bool, None) as a DynamoDB item."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, bool):
            out[key] = {"BOOL": value}
        elif isinstance(value, (int, float)):
            out[key] = {"N": repr(value)}
        elif value is None:
            out[key] = {"NULL": True}
        else:
            out[key] = {"S": str(value)}
    return out


def from_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as a plain dict (numbers: int when whole)."""
    out: dict[str, Any] = {}
    for key, typed in item.items():
        (kind, value), = typed.items()
        if kind == "N":
            number = float(value)
            out[key] = int(number) if number.is_integer() and "." not in value and "e" not in value else number
        elif kind == "NULL":
            out[key] = None
        else:
            out[key] = value
    return out


def values(**kwargs: Any) -> dict[str, Any]:
    """ExpressionAttributeValues from keyword arguments (``:name`` -> typed value)."""
    return {f":{k}": v for k, v in to_item(kwargs).items()}
