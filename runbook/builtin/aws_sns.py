"""aws.sns_publish: one message to an SNS topic, published once across a crash (a dedupe key)."""

from __future__ import annotations

import hashlib
from typing import Any

from runbook.api import aws, Context, Outcome, action
from ._aws_common import S, env_need, translated


@action("aws.sns_publish",
        args={"properties": {"topic_arn": {**S, "description": "default notify.sns_topic_arn"},
                             "subject": {**S, "maxLength": 100}, "message": {**S, "minLength": 1}},
              "required": ["message"]},
        outputs={"type": "object", "properties": {"message_id": S, "dedupe_key": S, "topic_arn": S}})
@translated
def sns_publish(ctx: Context) -> Outcome:
    """Publish a notification to the SNS topic.

    No probe: SNS cannot be asked what was published, so after an interruption the
    engine cannot know whether the message went out and asks the operator. A repeat is
    harmless: every message carries the attribute ``runbook.dedupe_key`` (hash of run,
    item, subject and message; also in the outputs) for subscribers to drop duplicates,
    and on a FIFO topic it is the ``MessageDeduplicationId``, so SNS itself drops a
    repeat within five minutes.
    """
    topic = str(env_need(ctx, "topic_arn", "notify", "sns_topic_arn", what="SNS topic"))
    subject = ctx.redact(str(ctx.args.get("subject") or ""))
    message = ctx.redact(str(ctx.args["message"]))
    key = hashlib.sha256("\0".join((ctx.run_id, str(ctx.item.get("id", "")), subject, message)).encode()).hexdigest()
    kwargs: dict[str, Any] = {"TopicArn": topic, "Message": message, "MessageAttributes": {
        "runbook.dedupe_key": {"DataType": "String", "StringValue": key[:32]},
        "runbook.run_id": {"DataType": "String", "StringValue": ctx.run_id or "-"}}}
    if subject:
        kwargs["Subject"] = subject
    if topic.endswith(".fifo"):
        kwargs.update(MessageGroupId=ctx.run_id or "runbook", MessageDeduplicationId=key[:64])
    sent = aws.call(ctx.env, "sns", "publish", aws.arn_resource(topic), **kwargs)
    outputs = {"message_id": str(sent.get("MessageId", "")), "dedupe_key": key[:32], "topic_arn": topic}
    evidence = {**outputs, "subject": subject, "message_sha256": hashlib.sha256(message.encode()).hexdigest(),
                "message_chars": len(message), "fifo": topic.endswith(".fifo")}
    return Outcome.ok(f"published to {aws.arn_resource(topic)}: {subject or message[:60]!r} "
                      f"(message {outputs['message_id']})", evidence, **outputs)
