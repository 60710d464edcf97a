"""http.send (an action with a JSON or text body) and environments' own ``vars:``, against a real
loopback HTTP server: the request is sent once, secret header values reach no file of the state
home, a wrong status fails naming expected / found / where, and json with body is refused before
anything runs."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from helpers import invoke

TOKEN = "hk-7Qe2-secret-webhook-key-9931"


class Receiver:
    """A loopback server that records every request (method, path, headers, body) and answers
    with a fixed status; the answer echoes the ``X-Api-Key`` header back (as careless services do)."""

    def __init__(self, status: int = 201):
        self.status = status
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                       "body": body})
                raw = json.dumps({"ok": outer.status < 300, "id": "msg-42", "echo": self.headers.get("X-Api-Key"),
                                  **({} if outer.status < 300 else {"error": "channel archived"})}).encode()
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Any:
    server = Receiver()
    yield server
    server.close()


NOTIFY = """\
name: notify
title: Tell the channel
params:
  token: {type: string, secret: true}
  volume: {type: string}
steps:
  - id: announce
    title: Post to the webhook
    do:
      - id: post
        uses: http.send
        with:
          method: POST
          url: "${env.vars.webhook}/hooks/ops"
          headers: {X-Api-Key: "${params.token}"}
          json: {text: "Restored ${params.volume}", tags: [ops, restore], urgent: false}
          STATUS
"""


def project(tmp: Path, webhook: str, status: str = "") -> Path:
    root = tmp / "proj"
    (root / "runbooks").mkdir(parents=True)
    (root / "environments").mkdir()
    (root / "runbooks" / "notify.yaml").write_text(NOTIFY.replace("STATUS", status))
    (root / "environments" / "ops.yaml").write_text(
        f"name: ops\nvars:\n  webhook: {webhook}\n  kube_context: arn-eks-eu-west-1-prod\n")
    return root


def journal(home: Path) -> list[dict[str, Any]]:
    run = sorted((home / "runs").iterdir())[-1]
    return [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]


def item(records: list[dict[str, Any]], key: str) -> dict[str, Any]:
    found = [r["data"] for r in records if r["type"] == "item.result"
             and f"{r['data']['step']}.{r['data']['item']}" == key]
    assert found, f"no result for {key}"
    return found[-1]


def everything_written(home: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in home.rglob("*") if p.is_file())


def test_http_send_posts_once_with_the_json_body_and_the_secret_header_is_redacted(tmp_path: Path,
                                                                                   receiver: Receiver) -> None:
    root, home = project(tmp_path, receiver.url), tmp_path / "home"
    result = invoke("runbook", "notify", "--env", "ops", "--param", "volume=vol-0abc", root=root, home=home,
                    env={"RUNBOOK_PARAM_TOKEN": TOKEN})
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(receiver.requests) == 1
    sent = receiver.requests[0]
    assert (sent["method"], sent["path"]) == ("POST", "/hooks/ops")
    assert json.loads(sent["body"]) == {"text": "Restored vol-0abc", "tags": ["ops", "restore"], "urgent": False}
    assert sent["headers"]["X-Api-Key"] == TOKEN and sent["headers"]["Content-Type"] == "application/json"
    post = item(journal(home), "announce.post")
    assert post["passed"] is True and post["summary"].startswith(f"POST {receiver.url}/hooks/ops: 201 in ")
    evidence = post["evidence"]
    assert (evidence["method"], evidence["url"], evidence["status"]) == ("POST", f"{receiver.url}/hooks/ops", 201)
    assert "X-Api-Key" in evidence["request_headers"] and isinstance(evidence["latency_ms"], float)
    assert '"id": "msg-42"' in evidence["response"] and "[REDACTED]" in evidence["response"]
    assert post["outputs"]["status"] == 201 and post["outputs"]["json"]["id"] == "msg-42"
    # the secret header value (echoed back by the service too) is in no file of the state home, nor on the console
    assert TOKEN not in everything_written(home)
    assert TOKEN not in result.stdout + result.stderr


def test_http_send_wrong_status_fails_naming_expected_found_and_where(tmp_path: Path) -> None:
    server = Receiver(status=500)
    try:
        root, home = project(tmp_path, server.url, status="status: 201"), tmp_path / "home"
        result = invoke("runbook", "notify", "--env", "ops", "--param", "volume=vol-0abc", root=root, home=home,
                        env={"RUNBOOK_PARAM_TOKEN": TOKEN})
    finally:
        server.close()
    assert result.returncode == 1, result.stdout + result.stderr
    assert len(server.requests) == 1            # sent once: an action is not retried by itself
    post = item(journal(home), "announce.post")
    assert post["passed"] is False
    assert post["summary"].startswith(f"POST {server.url}/hooks/ops: status 500, expected 201; the response says: ")
    assert '"error": "channel archived"' in post["summary"]
    assert f"POST {server.url}/hooks/ops: status 500, expected 201" in result.stdout + result.stderr
    assert TOKEN not in everything_written(home)


def test_http_send_default_status_is_any_2xx(tmp_path: Path) -> None:
    server = Receiver(status=302)
    try:
        root, home = project(tmp_path, server.url), tmp_path / "home"
        result = invoke("runbook", "notify", "--env", "ops", "--param", "volume=v", root=root, home=home,
                        env={"RUNBOOK_PARAM_TOKEN": TOKEN})
    finally:
        server.close()
    assert result.returncode == 1
    assert "status 302, expected any 2xx" in item(journal(home), "announce.post")["summary"]


def test_http_send_json_and_body_is_refused_before_anything_is_sent(tmp_path: Path, receiver: Receiver) -> None:
    root, home = project(tmp_path, receiver.url, status="body: plain text"), tmp_path / "home"
    result = invoke("runbook", "notify", "--env", "ops", "--param", "volume=v", root=root, home=home,
                    env={"RUNBOOK_PARAM_TOKEN": TOKEN})
    assert result.returncode == 2, result.stdout + result.stderr
    assert ("give either 'json' (a JSON body) or 'body' (a text body), not both "
            "(at steps[0].do[0].with.body)") in result.stderr
    assert receiver.requests == [] and not home.exists()


KUBE = """\
name: kube
title: Use the team's kube context
steps:
  - id: ctx
    title: Print the context
    do:
      - id: show
        uses: shell.run
        with: {argv: [python3, -c, "import sys; print('context=' + sys.argv[1])", "${env.vars.REF}"]}
"""


def test_env_vars_are_read_in_a_runbook_and_recorded(tmp_path: Path) -> None:
    root, home = project(tmp_path, "http://127.0.0.1:9"), tmp_path / "home"
    (root / "runbooks" / "kube.yaml").write_text(KUBE.replace("REF", "kube_context"))
    assert invoke("runbook.validate", root=root, home=home).returncode == 0
    result = invoke("runbook", "kube", "--env", "ops", root=root, home=home)
    assert result.returncode == 0, result.stdout + result.stderr
    show = item(journal(home), "ctx.show")
    assert show["outputs"]["stdout"] == "context=arn-eks-eu-west-1-prod"


def test_env_vars_unknown_name_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    root, home = project(tmp_path, "http://127.0.0.1:9"), tmp_path / "home"
    (root / "runbooks" / "kube.yaml").write_text(KUBE.replace("REF", "kube_contxt"))
    checked = invoke("runbook.validate", root=root, home=home)      # no environment defines it: found before a run
    assert checked.returncode == 2, checked.stdout + checked.stderr
    assert ("${env.vars.kube_contxt}: no environment defines vars.kube_contxt (did you mean 'kube_context'?) "
            "(environments/: ops)") in checked.stderr
    # defined by another environment only: the run on ops is refused naming ops
    (root / "environments" / "dev.yaml").write_text("name: dev\nvars: {kube_contxt: dev-cluster}\n")
    assert invoke("runbook.validate", root=root, home=home).returncode == 0
    result = invoke("runbook", "kube", "--env", "ops", root=root, home=home)
    assert result.returncode == 2, result.stdout + result.stderr
    assert ("${env.vars.kube_contxt}: environment 'ops' has no vars.kube_contxt (did you mean 'kube_context'?) "
            "(add it to environments/ops.yaml)") in result.stderr
    assert not home.exists()
