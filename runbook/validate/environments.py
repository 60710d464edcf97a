"""The rules of an environment file (after its JSON Schema): its name, the deployment
controller, the deploy tag patterns."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import Diagnostic, InputError
from ..project import Project
from ..schemas import describe, load_schema, quote, validate as schema_validate
from ..yamlfile import Document


def check_environment(project: Project, path: Path) -> tuple[Document | None, list[Diagnostic]]:
    """Validate one environment file."""
    try:
        doc = project.load(path)
    except InputError as exc:
        return None, [d for d in exc.diagnostics if isinstance(d, Diagnostic)]
    diags = schema_validate(doc, doc.data, load_schema("environment"))
    data = doc.data
    if not isinstance(data, dict):
        found = "an empty file" if data is None else describe(data)
        return None, [doc.diag((), f"an environment is a mapping with at least 'name'; found {found}")]
    if isinstance(data.get("name"), str) and data["name"] != Path(path).stem:
        diags.append(doc.diag(("name",), f"name {data['name']!r} must equal the file name {Path(path).stem!r}"))
    ecs = data.get("ecs")
    if isinstance(ecs, dict) and ecs.get("deployment_controller") == "CODE_DEPLOY":
        diags.append(doc.diag(("ecs", "deployment_controller"),
                              "CODE_DEPLOY blue/green services are not supported yet: the engine drives ECS rolling "
                              "deployments (deployment_controller: ECS)"))
    deploy = data.get("deploy")
    if isinstance(deploy, dict):
        for key in ("release_tag_pattern", "rollback_tag_pattern"):
            if isinstance(deploy.get(key), str):
                try:
                    re.compile(deploy[key])
                except re.error as exc:
                    diags.append(doc.diag(("deploy", key), f"invalid regular expression {quote(deploy[key])}: {exc}"))
    return doc, sorted(set(diags), key=lambda d: (d.line, d.col, d.message))
