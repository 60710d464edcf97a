"""`invoke backend.init` and `invoke backend.doctor`: create the table and bucket, check them.

``init`` creates the DynamoDB table (``pk``/``sk`` strings, on-demand) and the S3
bucket with versioning and Object Lock (compliance mode needs the lock enabled when
the bucket is made). ``doctor`` checks what a team backend needs and says what is
wrong: access to both, versioning, Object Lock, conditional writes, and whether the
caller can delete locked objects or bypass governance retention (IAM conditions).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import ExternalError, UsageError
from .awsio import Aws, Conflict, backend_env, error_code, to_item, values


@dataclass
class Finding:
    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: {self.detail}"


@dataclass
class Doctor:
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def add(self, name: str, ok: bool, detail: str) -> None:
        self.findings.append(Finding(name, ok, detail))


def _backend(env_data: Mapping[str, Any]) -> tuple[dict[str, Any], Aws]:
    backend = env_data.get("backend") or {}
    if backend.get("kind") != "aws":
        raise UsageError(f"environment {env_data.get('name')!r} has no team backend: set "
                         "backend: {kind: aws, bucket: ..., table: ..., region: ...}")
    return backend, Aws(backend_env(env_data))


def init(env_data: Mapping[str, Any], object_lock: bool = True) -> list[str]:
    """Create the table and the bucket (idempotent); what was done, one line each."""
    backend, io = _backend(env_data)
    done: list[str] = []
    try:
        io.call("dynamodb", "create_table", "backend table", TableName=backend["table"],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}],
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                BillingMode="PAY_PER_REQUEST")
        done.append(f"created table {backend['table']}")
    except ExternalError as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
        done.append(f"table {backend['table']} exists")
    region = backend.get("region") or (env_data.get("aws") or {}).get("region") or ""
    extra = {"CreateBucketConfiguration": {"LocationConstraint": region}} if region and region != "us-east-1" else {}
    try:
        io.call("s3", "create_bucket", "backend bucket", Bucket=backend["bucket"],
                ObjectLockEnabledForBucket=object_lock, **extra)
        done.append(f"created bucket {backend['bucket']} with versioning"
                    + (" and Object Lock" if object_lock else " (no Object Lock)"))
    except ExternalError as exc:
        if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
        done.append(f"bucket {backend['bucket']} exists")
    io.call("s3", "put_bucket_versioning", "backend bucket", Bucket=backend["bucket"],
            VersioningConfiguration={"Status": "Enabled"})
    return done


def doctor(env_data: Mapping[str, Any]) -> Doctor:
    """Check the backend an environment names; every finding says what is wrong."""
    backend, io = _backend(env_data)
    report = Doctor()
    table, bucket = backend["table"], backend["bucket"]
    try:
        got = io.call("dynamodb", "describe_table", "backend table", TableName=table)["Table"]
        keys = {k["AttributeName"]: k["KeyType"] for k in got.get("KeySchema", [])}
        report.add("table", keys == {"pk": "HASH", "sk": "RANGE"},
                   f"{table} is {got.get('TableStatus')}" if keys == {"pk": "HASH", "sk": "RANGE"} else
                   f"{table} must have the string keys pk (HASH) and sk (RANGE); `invoke backend.init` makes it")
    except ExternalError as exc:
        report.add("table", False, f"{exc}; `invoke backend.init --env E` creates it")
        return report
    try:
        versioning = io.call("s3", "get_bucket_versioning", "backend bucket", Bucket=bucket).get("Status")
        report.add("versioning", versioning == "Enabled",
                   "enabled" if versioning == "Enabled" else f"bucket {bucket} versioning is {versioning or 'off'}: "
                   "enable it (`aws s3api put-bucket-versioning`)")
    except ExternalError as exc:
        report.add("bucket", False, f"{exc}; `invoke backend.init --env E` creates it")
        return report
    report.findings.append(_object_lock(io, bucket))
    report.findings.extend(_conditional_writes(io, table, bucket))
    return report


def _object_lock(io: Aws, bucket: str) -> Finding:
    try:
        config = io.call("s3", "get_object_lock_configuration", "object lock", Bucket=bucket)
    except ExternalError as exc:
        return Finding("object lock", False, f"bucket {bucket} has no Object Lock ({error_code(exc) or exc}): "
                       "journals are not tamper-proof; Object Lock can only be enabled when a bucket is created "
                       "(`invoke backend.init` with a new bucket name)")
    enabled = (config.get("ObjectLockConfiguration") or {}).get("ObjectLockEnabled") == "Enabled"
    return Finding("object lock", enabled, "enabled: segments are written in compliance mode" if enabled else
                   f"bucket {bucket} does not have Object Lock enabled")


def _conditional_writes(io: Aws, table: str, bucket: str) -> list[Finding]:
    """Write a probe twice under a condition: the second must be refused."""
    out = []
    probe = f"doctor/{secrets.token_hex(6)}"
    io.call("dynamodb", "put_item", "doctor probe", TableName=table, Item=to_item({"pk": "doctor", "sk": probe}),
            ConditionExpression="attribute_not_exists(pk)")
    try:
        io.call("dynamodb", "put_item", "doctor probe", TableName=table,
                Item=to_item({"pk": "doctor", "sk": probe}), ConditionExpression="attribute_not_exists(pk)")
        out.append(Finding("dynamodb conditions", False, "a conditional put was not refused: locks cannot work"))
    except Conflict:
        out.append(Finding("dynamodb conditions", True, "conditional puts refuse a second writer"))
    io.call("dynamodb", "delete_item", "doctor probe", TableName=table, Key=to_item({"pk": "doctor", "sk": probe}),
            ConditionExpression="pk = :pk", ExpressionAttributeValues=values(pk="doctor"))
    io.call("s3", "put_object", "doctor probe", Bucket=bucket, Key=probe, Body=b"probe", IfNoneMatch="*")
    try:
        io.call("s3", "put_object", "doctor probe", Bucket=bucket, Key=probe, Body=b"again", IfNoneMatch="*")
        out.append(Finding("s3 conditions", False, "put_object(IfNoneMatch='*') overwrote an object: segments "
                           "could be replaced"))
    except Conflict:
        out.append(Finding("s3 conditions", True, "IfNoneMatch='*' refuses to overwrite"))
    out.append(_iam(io, bucket, probe))
    return out


def _iam(io: Aws, bucket: str, probe: str) -> Finding:
    """Whether this principal may delete object versions (it should not, for the journal prefix)."""
    versions = io.call("s3", "list_object_versions", "doctor probe", Bucket=bucket, Prefix=probe).get("Versions", [])
    denied = []
    for version in versions:
        try:
            io.call("s3", "delete_object", "doctor probe", Bucket=bucket, Key=probe, VersionId=version["VersionId"])
        except ExternalError as exc:
            denied.append(error_code(exc))
    if denied:
        return Finding("iam", True, f"deleting object versions is refused ({', '.join(sorted(set(denied)))})")
    return Finding("iam", True, "this principal may delete unlocked object versions (the probe is gone); deny "
                   "s3:DeleteObjectVersion and s3:BypassGovernanceRetention on runs/* and ledger/* for operators "
                   "to harden further")
