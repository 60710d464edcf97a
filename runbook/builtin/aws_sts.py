"""aws.sts_account: the credentials in use belong to the environment's AWS account."""

from __future__ import annotations


from runbook.api import aws, Context, Outcome, check
from ._aws_common import S, env_arg, translated


@check("aws.sts_account",
       args={"properties": {"account_id": {"type": "string", "pattern": "^[0-9]{12}$",
                                           "description": "expected account (default: aws.account_id)"}}},
       outputs={"type": "object", "properties": {"account_id": S, "arn": S}})
@translated
def sts_account(ctx: Context) -> Outcome:
    """The credentials in use belong to the environment's AWS account; records the caller ARN."""
    expected = env_arg(ctx, "account_id", "aws", "account_id")
    ident = aws.call(ctx.env, "sts", "get_caller_identity")
    account, arn = str(ident["Account"]), str(ident["Arn"])
    profile, region, _ = aws.settings(ctx.env)
    evidence = {"account_id": account, "arn": arn, "expected": expected or "", "profile": profile, "region": region}
    if not expected:
        return Outcome.fail(f"logged in to account {account} as {arn}, but there is nothing to compare it with: "
                            "set aws.account_id in the environment file", evidence, account_id=account, arn=arn)
    if account != expected:
        return Outcome.fail(f"AWS account is {account}, expected {expected} ({ctx.env_name or 'this environment'}): "
                            f"you are logged in to the wrong account as {arn}; log in with the environment's profile"
                            + (f" (`aws sso login --profile {profile}`)" if profile else " (set AWS_PROFILE)"),
                            evidence, account_id=account, arn=arn)
    return Outcome.ok(f"AWS account {account} as {arn}", evidence, account_id=account, arn=arn)
