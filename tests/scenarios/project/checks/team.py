"""A team's own plugin, added as a file in the project's checks/ folder."""

from runbook.plugins import Context, Outcome, check


@check("team.greeting", args={"properties": {"who": {"type": "string"}}, "required": ["who"]},
       outputs={"type": "object", "properties": {"text": {"type": "string"}}})
def greeting(ctx: Context) -> Outcome:
    """Greet someone (a team plugin)."""
    return Outcome.ok(f"hello {ctx.args['who']}", text=f"hello {ctx.args['who']}")
