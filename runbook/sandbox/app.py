"""The sandbox's app: answers as the version the service's current task definition runs.

Endpoints: ``/health``, ``POST /auth/login``, ``GET /api/v1/patients``. A version the
scenario marks bad answers 500 on the API (its health check still passes, as in real
incidents) and logs errors. Every request is counted into CloudWatch metrics (the ALB's
RequestCount, HTTPCode_Target_5XX_Count, TargetResponseTime) and CloudWatch Logs.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any, Callable
from .. import clock

PATIENTS = [{"id": "p-1001", "name": "Jane Roe", "dob": "1971-03-02"},
            {"id": "p-1002", "name": "Mary Major", "dob": "1968-11-23"}]


class Metrics:
    """Counts requests per flush interval and writes them to CloudWatch and CloudWatch Logs."""

    def __init__(self, cloudwatch: Any, logs: Any, dimensions: list[dict[str, str]], log_group: str,
                 log_stream: str = "app"):
        self.cloudwatch = cloudwatch
        self.logs = logs
        self.dimensions = dimensions
        self.log_group = log_group
        self.log_stream = log_stream
        self.lock = threading.Lock()
        self.requests = 0
        self.errors = 0
        self.latencies: list[float] = []
        self.lines: list[dict[str, Any]] = []

    def record(self, status: int, latency_s: float, line: str) -> None:
        with self.lock:
            self.requests += 1
            self.errors += 1 if status >= 500 else 0
            self.latencies.append(latency_s)
            self.lines.append({"timestamp": int(clock.time_s() * 1000), "message": line})

    def flush(self) -> None:
        with self.lock:
            requests, errors, latencies, lines = self.requests, self.errors, self.latencies, self.lines
            self.requests, self.errors, self.latencies, self.lines = 0, 0, [], []
        now = clock.now()
        data = [{"MetricName": "RequestCount", "Dimensions": self.dimensions, "Timestamp": now,
                 "Value": requests, "Unit": "Count"},
                {"MetricName": "HTTPCode_Target_5XX_Count", "Dimensions": self.dimensions, "Timestamp": now,
                 "Value": errors, "Unit": "Count"}]
        if latencies:
            data.append({"MetricName": "TargetResponseTime", "Dimensions": self.dimensions, "Timestamp": now,
                         "Value": max(latencies), "Unit": "Seconds"})
        if requests:
            self.cloudwatch.put_metric_data(Namespace="AWS/ApplicationELB", MetricData=data)
        if lines:
            self.logs.put_log_events(logGroupName=self.log_group, logStreamName=self.log_stream, logEvents=lines)


class App:
    """The HTTP server; ``version()`` and ``is_bad(version)`` come from the sandbox."""

    def __init__(self, version: Callable[[], str], is_bad: Callable[[str], bool], metrics: Metrics | None = None):
        self.version = version
        self.is_bad = is_bad
        self.metrics = metrics
        self.httpd: http.server.ThreadingHTTPServer | None = None

    def respond(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        version = self.version()
        bad = self.is_bad(version)
        route = path.split("?")[0]
        if route == "/health" and method == "GET":
            return 200, {"status": "healthy", "version": version,
                         "timestamp": clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")}
        if bad and route.startswith(("/api/", "/auth/")):
            return 500, {"error": "internal server error", "version": version}
        if route == "/auth/login" and method == "POST":
            try:
                data = json.loads(body or b"{}")
            except ValueError:
                return 400, {"error": "expected JSON"}
            if data.get("email") == "test@example.com" and data.get("password"):
                return 200, {"session": "sandbox-session", "version": version}
            return 401, {"error": "invalid credentials"}
        if route == "/api/v1/patients" and method == "GET":
            return 200, {"data": PATIENTS, "meta": {"count": len(PATIENTS), "version": version}}
        return 404, {"error": "not found"}

    def start(self, port: int = 0) -> int:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _serve(self) -> None:
                started = clock.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, payload = outer.respond(self.command, self.path, body)
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
                if outer.metrics is not None:
                    level = "ERROR" if status >= 500 else "INFO"
                    outer.metrics.record(status, clock.monotonic() - started,
                                         f"{level} {self.command} {self.path.split('?')[0]} {status} "
                                         f"version={payload.get('version', outer.version())}")

            do_GET = do_POST = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True, name="sandbox-app").start()
        return int(self.httpd.server_address[1])

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
