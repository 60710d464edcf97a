"""Who is operating: RUNBOOK_OPERATOR, else git's user.email, else user@host."""

from __future__ import annotations

import getpass
import os
import socket
import subprocess


def operator() -> str:
    value = os.environ.get("RUNBOOK_OPERATOR", "").strip()
    if value:
        return value
    try:
        email = subprocess.run(["git", "config", "user.email"], capture_output=True, text=True, timeout=5,
                               stdin=subprocess.DEVNULL).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        email = ""
    if email:
        return email
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def host() -> str:
    return socket.gethostname()


def process_start(pid: int) -> str:
    """The kernel's start time of a process (guards against a reused pid), or ''."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return fields[19].decode()
    except (OSError, IndexError):
        return ""


def alive(pid: int, start: str = "") -> bool:
    """Is this process (on this host) still running?"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if start and process_start(pid) not in ("", start):
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        if state == b"Z":
            return False
    except OSError:
        pass
    return True
