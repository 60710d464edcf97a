"""Guards that hold (issue 23.5, 23.9): typed aws.check outputs drive a for_each against moto on
loopback; an HTML page where an AWS answer should be becomes the documented one-line error."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path
from typing import Iterator

import pytest

from runbook.standins.ecs import AwsStandIn
from runbook.standins.menotime import loopback_client

from helpers import aws_dummy_credentials, copy_project, invoke


@pytest.fixture(scope="module")
def standin() -> Iterator[AwsStandIn]:
    server = AwsStandIn(tick=0.05, slow_ticks=8).start()
    yield server
    server.stop()


def test_for_each_takes_the_list_an_aws_check_selected(standin: AwsStandIn, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    aws_dummy_credentials(monkeypatch, tmp_path)
    standin.reset()
    ec2 = loopback_client(standin.endpoint_url, "ec2", "us-west-1")
    image = ec2.describe_images()["Images"][0]["ImageId"]
    made = ec2.run_instances(ImageId=image, MinCount=2, MaxCount=2, TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "role", "Value": "worker"}]}])["Instances"]
    ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)          # not a worker
    root = copy_project("aws", tmp_path, base_url=standin.endpoint_url)
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    checked = invoke("runbook.validate", "-p", str(root / "runbooks" / "guard-each-instance.yaml"), root=root,
                     home=home)
    assert checked.returncode == 0, checked.stdout + checked.stderr          # a list output, typed from botocore
    done = invoke("runbook", "guard-each-instance", "--env", "sim", "--param", f"dir={work}", "--non-interactive",
                  root=root, home=home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted((work / "drained.txt").read_text().split()) == sorted(i["InstanceId"] for i in made)


class _HtmlPage(http.server.BaseHTTPRequestHandler):
    """A proxy's error page where AWS should answer: 200, HTML (``typed``: said so in Content-Type)."""

    typed = True
    body = b"<html><body><h1>502 Bad Gateway</h1><hr><center>nginx</center><br>\n</body></html>"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        if self.typed:
            self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        return None


@pytest.mark.parametrize("typed", [True, False], ids=["text-html", "no-content-type"])
def test_an_html_page_instead_of_an_aws_answer_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 typed: bool) -> None:
    aws_dummy_credentials(monkeypatch, tmp_path)
    handler = type("Page", (_HtmlPage,), {"typed": typed})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        root = copy_project("aws", tmp_path, base_url=url)
        home, work = tmp_path / "home", tmp_path / "work"
        work.mkdir()
        done = invoke("runbook", "guard-snapshot", "--env", "sim", "--param", f"dir={work}", "--non-interactive",
                      root=root, home=home)
        run_id = sorted(p.name for p in (home / "runs").iterdir())[-1]
        shown = invoke("audit.show", run_id, root=root, home=home)
    finally:
        server.shutdown()
        server.server_close()
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Traceback" not in out and "<html>" not in out and "<center>" not in out, out
    line = f"FAIL snap: ec2 DescribeSnapshots in us-west-1 at {url}: unreadable response (not the service's XML or JSON"

    assert any(line in text for text in out.splitlines()), out
    assert '"502 Bad Gateway nginx"' in out
    assert shown.returncode == 0 and "<html>" not in shown.stdout and "unreadable response" in shown.stdout
