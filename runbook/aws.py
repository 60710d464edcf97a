"""The one door to AWS: sessions and clients built from the environment at run time.

Only this module imports boto3 and botocore, and only inside functions (``invoke
--list`` never pays for them). Credentials come from the standard chains (a named
profile, SSO, environment variables, instance or container roles) and never leave
botocore: nothing here returns or records them. Errors are translated where they enter
(:func:`translate`): an :class:`~runbook.errors.ExternalError` names the operation, says
what to do, and keeps the botocore exception as ``original``.
"""

from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Iterator, Mapping

from .errors import ExternalError

_LOCK = threading.Lock()
_SESSIONS: dict[tuple[str, str], Any] = {}
_CLIENTS: dict[tuple[str, str, str, str], Any] = {}

# Environment variables that mean "credentials come from the environment" (CI, OIDC roles).
_ENV_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI")


def settings(env: Mapping[str, Any]) -> tuple[str, str, str]:
    """(profile, region, endpoint_url) of an environment; '' where unset."""
    aws = env.get("aws") or {}
    return str(aws.get("profile") or ""), str(aws.get("region") or ""), str(aws.get("endpoint_url") or "")


def _profile_hint(profile: str) -> str:
    if profile:
        return f"run `aws sso login --profile {profile}` (or `aws configure --profile {profile}`)"
    return "run `aws sso login --profile NAME` and set AWS_PROFILE, or set aws.profile in the environment file"


def session(env: Mapping[str, Any]) -> Any:
    """A boto3 Session for the environment's profile and region, cached.

    A profile named in the environment file that this machine does not know is skipped
    when the process has credentials in its environment (CI, OIDC roles): the account
    is still checked by ``aws.sts_account``.
    """
    profile, region, _ = settings(env)
    key = (profile, region)
    with _LOCK:
        if key in _SESSIONS:
            return _SESSIONS[key]
        import boto3
        import botocore.exceptions

        try:
            made = boto3.Session(profile_name=profile or None, region_name=region or None)
        except botocore.exceptions.ProfileNotFound as exc:
            if not any(os.environ.get(v) for v in _ENV_CREDENTIALS):
                raise ExternalError("AWS session", f"profile {profile!r} is not configured on this machine",
                                    f"add it with `aws configure sso --profile {profile}`, or set AWS_PROFILE to "
                                    "a profile you have", exc) from None
            made = boto3.Session(region_name=region or None)
        if not made.region_name:
            raise ExternalError("AWS session", "no AWS region",
                                "set aws.region in the environment file (the region the environment's resources are in)")
        _SESSIONS[key] = made
        return made


def cli_command(env: Mapping[str, Any], service: str, operation: str, *args: str) -> str:
    """An AWS CLI command an operator can paste: the environment's region, profile and endpoint on it,
    and in the sandbox the stand-in's dummy credentials as a prefix (the CLI is not our dependency)."""
    import shlex

    profile, region, endpoint = settings(env)
    parts = ["aws", service, operation, *args]
    parts += ["--region", region] if region else []
    parts += ["--profile", profile] if profile else []
    parts += ["--endpoint-url", endpoint] if endpoint else []
    prefix = "AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing " if endpoint and env.get("sandbox") else ""
    return prefix + " ".join(shlex.quote(p) for p in parts)


def client(env: Mapping[str, Any], service: str) -> Any:
    """A boto3 client for ``service``: standard retry mode, short connect timeout, cached.

    The number of attempts is botocore's (3, or AWS_MAX_ATTEMPTS / max_attempts in the profile).
    """
    profile, region, endpoint = settings(env)
    key = (profile, region, endpoint, service)
    with _LOCK:
        if key in _CLIENTS:
            return _CLIENTS[key]
    made_session = session(env)
    from botocore.config import Config

    config = Config(retries={"mode": "standard"}, connect_timeout=5, read_timeout=30,
                    user_agent_extra="runbook-engine")
    with _LOCK:
        if key not in _CLIENTS:
            made = made_session.client(service, endpoint_url=endpoint or None, config=config)
            made.meta.events.register("before-parse", _refuse_html)
            _CLIENTS[key] = made
        return _CLIENTS[key]


def _refuse_html(response_dict: dict[str, Any] | None = None, operation_model: Any = None, **_: Any) -> None:
    """A success status whose body is an HTML page (or, for a JSON service, not JSON) is never an
    AWS answer: botocore would read it as an empty response (no services, no snapshots), so it is
    refused as unreadable. The body decides, not Content-Type (moto labels its JSON text/html).
    An error status stays botocore's (retried, then the status as the error code)."""
    response = response_dict or {}
    body = response.get("body")
    if int(response.get("status_code") or 0) >= 400 or not isinstance(body, (bytes, bytearray)) \
            or getattr(operation_model, "has_streaming_output", False):
        return                    # an object's own bytes (S3 GetObject) are whatever they are
    body = bytes(body)
    start = body[:512].lstrip().lower()
    protocol = str((getattr(operation_model, "metadata", None) or {}).get("protocol", ""))
    html = start.startswith((b"<!doctype html", b"<html"))
    if html or (start and "json" in protocol and not start.startswith((b"{", b"["))):
        from botocore.parsers import ResponseParserError

        raise ResponseParserError(f"Unable to parse response (HTTP {response.get('status_code')}, "
                                  f"{'HTML' if html else 'not JSON'}):\n{body[:2000]!r}")


def reset() -> None:
    """Forget cached sessions and clients (tests; a changed AWS_PROFILE)."""
    with _LOCK:
        _SESSIONS.clear()
        _CLIENTS.clear()


_CODE_HINTS: tuple[tuple[str, str], ...] = (
    (r"ExpiredToken|RequestExpired|TokenRefreshRequired",
     "your AWS session expired: log in again ({login})"),
    (r"InvalidClientTokenId|UnrecognizedClient|SignatureDoesNotMatch|AuthFailure",
     "these credentials are not valid for this account: {login}"),
    (r"AccessDenied|UnauthorizedOperation|NotAuthorized|Forbidden",
     "the principal lacks permission for this call: check the role's IAM policy, or log in with the right "
     "profile ({login})"),
    (r"Throttl|TooManyRequests|RequestLimitExceeded|SlowDown",
     "AWS is throttling requests: wait a minute and retry"),
    (r"ClusterNotFound", "check ecs.cluster in the environment file and the region"),
    (r"ServiceNotFound|ServiceNotActive", "check ecs.service and ecs.cluster in the environment file and the region"),
    (r"TargetGroupNotFound", "check alb.target_group in the environment file and the region"),
    (r"LoadBalancerNotFound", "check alb.load_balancer in the environment file and the region"),
    (r"ResourceNotFound|NotFound|NoSuch", "check the name in the environment file or the item's arguments, and "
                                          "the region"),
    (r"InvalidParameter|ValidationError|ClientException", "the request was refused as invalid: check the item's "
                                                          "arguments"),
)


def hint_for(code: str, profile: str = "") -> str:
    """What to do about an AWS error code."""
    for pattern, hint in _CODE_HINTS:
        if re.search(pattern, code or ""):
            return hint.format(login=_profile_hint(profile))
    return "see the AWS error above; retry if it was transient"


@contextmanager
def translate(operation: str, env: Mapping[str, Any] | None = None) -> Iterator[None]:
    """Turn botocore errors raised inside into ExternalError naming ``operation``."""
    import botocore.exceptions as bce
    from botocore.parsers import ResponseParserError

    profile, region, endpoint = settings(env or {})
    where = endpoint or (f"region {region}" if region else "the default region")
    try:
        yield
    except bce.ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", "Unknown"))
        raise ExternalError(operation, f"{code}: {err.get('Message', '')}".rstrip(": "), hint_for(code, profile),
                            exc) from None
    except (bce.NoCredentialsError, bce.PartialCredentialsError, bce.CredentialRetrievalError) as exc:
        raise ExternalError(operation, "no usable AWS credentials", _profile_hint(profile), exc) from None
    except (bce.SSOError, bce.TokenRetrievalError) as exc:
        raise ExternalError(operation, "the AWS SSO session is missing or expired", _profile_hint(profile),
                            exc) from None
    except bce.ProfileNotFound as exc:
        raise ExternalError(operation, f"AWS profile {profile!r} is not configured",
                            f"add it with `aws configure sso --profile {profile}`", exc) from None
    except bce.NoRegionError as exc:
        raise ExternalError(operation, "no AWS region", "set aws.region in the environment file", exc) from None
    except (bce.EndpointConnectionError, bce.ConnectTimeoutError, bce.ReadTimeoutError,
            bce.ConnectionClosedError) as exc:
        raise ExternalError(operation, f"cannot reach AWS at {where} ({type(exc).__name__})",
                            "check the network or VPN, and aws.endpoint_url / aws.region in the environment file",
                            exc) from None
    except bce.WaiterError as exc:
        raise ExternalError(operation, f"gave up waiting: {exc}",
                            "look at the service's events in the ECS console", exc) from None
    except bce.ParamValidationError as exc:
        raise ExternalError(operation, f"invalid request: {exc}", "check the item's arguments", exc) from None
    except ResponseParserError as exc:         # an HTML error page, a truncated body: not botocore's own error
        raise ExternalError(operation, "unreadable response (not the service's XML or JSON"
                                       f"{_body_excerpt(str(exc))})",
                            "a proxy, firewall or load balancer may have answered instead of AWS; retry, and check "
                            "the network and aws.endpoint_url in the environment file", exc) from None
    except bce.BotoCoreError as exc:
        raise ExternalError(operation, f"{type(exc).__name__}: {exc}",
                            "retry; if it persists, run the same call with the AWS CLI to see more", exc) from None


def _body_excerpt(message: str, limit: int = 80) -> str:
    """'; it says: "502 Bad Gateway nginx"' from a parser error that quotes the raw body ('' if none)."""
    body = message.split("\n", 1)[1] if "\n" in message else ""
    if body.startswith(("b'", 'b"')):
        body = body[2:-1].replace("\\n", " ")
    title = re.search(r"<title[^>]*>(.*?)</title>", body, re.I | re.S)
    text = title.group(1) if title else re.sub(r"<[^>]*>", " ", body)
    text = " ".join(text.split())
    if not text:
        return ""
    return f'; it says: "{text[:limit - 3] + "..." if len(text) > limit else text}"'


def _operation_name(service: str, method: str) -> str:
    return f"{service.upper() if len(service) <= 4 else service} " + "".join(p.title() for p in method.split("_"))


def call(env: Mapping[str, Any], service: str, method: str, what: str = "", /, **kwargs: Any) -> dict[str, Any]:
    """One API call, translated: ``call(env, "ecs", "describe_services", cluster=..., services=[...])``."""
    operation = _operation_name(service, method) + (f" ({what})" if what else "")
    with translate(operation, env):
        result: dict[str, Any] = getattr(client(env, service), method)(**kwargs)
    return result


def pages(env: Mapping[str, Any], service: str, method: str, what: str = "", limit: int = 0, /,
          **kwargs: Any) -> Iterator[dict[str, Any]]:
    """The pages of a paginated call, translated; at most ``limit`` pages when set."""
    operation = _operation_name(service, method) + (f" ({what})" if what else "")
    with translate(operation, env):
        paginator = client(env, service).get_paginator(method)
        for count, page in enumerate(paginator.paginate(**kwargs), start=1):
            yield page
            if limit and count >= limit:
                return


# -- ARNs and names ---------------------------------------------------------------------

def arn_resource(arn: str) -> str:
    """The resource part of an ARN (after the fifth colon); the input when it is not an ARN."""
    parts = arn.split(":", 5)
    return parts[5] if len(parts) == 6 and parts[0] == "arn" else arn


def family_revision(task_definition: str) -> str:
    """``arn:...:task-definition/menotime-api-prod:42`` -> ``menotime-api-prod:42``."""
    return arn_resource(task_definition).split("/", 1)[-1]


def same_task_definition(a: str, b: str) -> bool:
    """Two references (full ARN or family:revision) to the same revision; two ARNs must match whole
    (the same family:revision in another account or region is another task definition)."""
    if not a or not b:
        return False
    if a.startswith("arn:") and b.startswith("arn:"):
        return a == b
    return family_revision(a) == family_revision(b)


def elb_dimension(arn: str, kind: str) -> str:
    """CloudWatch dimension value from an ELBv2 ARN: ``targetgroup/NAME/ID`` or ``app/NAME/ID``."""
    resource = arn_resource(arn)
    if kind == "targetgroup":
        return resource if resource.startswith("targetgroup/") else ""
    return resource.split("loadbalancer/", 1)[1] if resource.startswith("loadbalancer/") else ""


ECR_IMAGE = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/"
                       r"(?P<repo>[^:@]+)(?::(?P<tag>[^@]+))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")


def image_digest_in(image: str) -> str:
    """The digest an image reference pins (``repo@sha256:...``), or ''."""
    match = re.search(r"@(sha256:[0-9a-f]{64})$", image or "")
    return match.group(1) if match else ""


# -- any operation: full results, waiters, the service models ------------------------------



def call_all(env: Mapping[str, Any], service: str, method: str, params: Mapping[str, Any],
             what: str = "") -> tuple[dict[str, Any], bool]:
    """Any operation, translated: a paginated one is paginated and its pages merged (boto3's
    ``build_full_result``). Returns (the response without ResponseMetadata, whether it was paginated)."""
    operation = _operation_name(service, method) + (f" ({what})" if what else "")
    with translate(operation, env):
        made = client(env, service)
        if made.can_paginate(method):
            merged = made.get_paginator(method).paginate(**params).build_full_result()
            return _without_metadata(dict(merged)), True
        result = dict(getattr(made, method)(**params))
    return _without_metadata(result), False


def _without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    response.pop("ResponseMetadata", None)
    return response


def wait(env: Mapping[str, Any], service: str, waiter: str, params: Mapping[str, Any],
         delay: float | None = None, max_attempts: int | None = None) -> None:
    """Run boto3's waiter ``waiter`` (snake_case, e.g. ``volume_available``). A waiter that gives up
    raises botocore's WaiterError unchanged (the caller reports its reason and last response);
    anything else is translated."""
    import botocore.exceptions as bce

    operation = f"{service} waiter {waiter}"
    config: dict[str, Any] = {}
    if delay is not None:
        config["Delay"] = max(1, int(round(delay)))   # botocore sleeps whole seconds
    if max_attempts is not None:
        config["MaxAttempts"] = max(1, int(max_attempts))
    try:
        with translate(operation, env):
            made = client(env, service).get_waiter(waiter)
            made.wait(**params, **({"WaiterConfig": config} if config else {}))
    except ExternalError as exc:
        if isinstance(exc.original, bce.WaiterError):
            raise exc.original from None
        raise


@lru_cache(maxsize=None)
def _botocore_session() -> Any:
    """One botocore session for reading service models (offline; no credentials are looked at)."""
    import botocore.session

    return botocore.session.get_session()


@lru_cache(maxsize=None)
def _service_names() -> frozenset[str]:
    return frozenset(_botocore_session().get_available_services())


def service_names() -> list[str]:
    """Every service botocore has a model for (``ec2``, ``ssm``, ...)."""
    return sorted(_service_names())


@lru_cache(maxsize=None)
def service_model(service: str) -> Any | None:
    """botocore's ServiceModel of ``service`` (loaded once per process), or None when unknown."""
    return _botocore_session().get_service_model(service) if service in _service_names() else None


@lru_cache(maxsize=None)
def _operations(service: str) -> tuple[tuple[str, str], ...]:
    from botocore import xform_name

    model = service_model(service)
    return tuple((xform_name(op), op) for op in (model.operation_names if model is not None else []))


def operations(service: str) -> dict[str, str]:
    """boto3 method name -> API operation name (``describe_volumes`` -> ``DescribeVolumes``)."""
    return dict(_operations(service))


@lru_cache(maxsize=None)
def _waiters(service: str) -> tuple[tuple[str, str], ...]:
    import botocore.exceptions as bce
    from botocore import xform_name

    try:
        model = _botocore_session().get_waiter_model(service)
    except bce.DataNotFoundError:
        return ()
    return tuple((xform_name(name), model.get_waiter(name).operation) for name in model.waiter_names)


def waiters(service: str) -> dict[str, str]:
    """boto3 waiter name -> the API operation it polls (``volume_available`` -> ``DescribeVolumes``)."""
    return dict(_waiters(service))


def api_name(service: str, method: str) -> str:
    """The API operation a boto3 method calls (``describe_db_instances`` -> ``DescribeDBInstances``),
    or '' when the service has no such method (from the service model: no client is made)."""
    return operations(service).get(method, "")


def waiter_operation(service: str, waiter: str) -> str:
    """The boto3 method a waiter polls (``volume_available`` -> ``describe_volumes``), or '' when unknown."""
    from botocore import xform_name

    operation = waiters(service).get(waiter, "")
    return str(xform_name(operation)) if operation else ""
