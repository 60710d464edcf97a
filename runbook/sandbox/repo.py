"""The sandbox's app repository: a bare origin with main and develop, tags and a CHANGELOG.

main carries the released version (1.1.0, tagged); develop carries unreleased changes
with their CHANGELOG section, an `app/` package whose tests pass and which bandit and
flake8 accept.
"""

from __future__ import annotations

from pathlib import Path

from .. import git as g

RELEASED = "1.1.0"
IDENTITY = g.identity_env("MenoTime Dev", "dev@menotime.example")

APP_INIT = '''"""MenoTime API (sandbox edition)."""

__version__ = "{version}"
'''

APP_MAIN = '''"""Request handlers of the MenoTime API: pure functions the tests call directly."""

from app import __version__

PATIENTS = [
    {{"id": "p-1001", "initials": "J.R."}},
    {{"id": "p-1002", "initials": "M.M."}},
]


def health() -> dict:
    """The health endpoint's body."""
    return {{"status": "healthy", "version": __version__}}


def login(email: str, password: str) -> tuple[int, dict]:
    """Authenticate a user; the sandbox accepts its one test account."""
    if email == "test@example.com" and password:
        return 200, {{"session": "sandbox-" + email.split("@")[0]}}
    return 401, {{"error": "invalid credentials"}}


def patients(limit: int = 10) -> dict:
    """A page of patients (sandbox data only)."""
    page = PATIENTS[: max(0, min(limit, 100))]
    return {{"data": page, "meta": {{"count": len(page), "version": __version__}}}}
'''

APP_TESTS = '''from app import __version__
from app.main import health, login, patients


def test_health():
    assert health() == {"status": "healthy", "version": __version__}


def test_login():
    assert login("test@example.com", "x")[0] == 200
    assert login("nobody@example.com", "x")[0] == 401


def test_patients_limit():
    assert patients(limit=1)["meta"]["count"] == 1
'''

PYPROJECT = '''[project]
name = "menotime-api"
version = "{version}"
requires-python = ">=3.10"

[tool.pytest.ini_options]
testpaths = ["tests"]
'''

FLAKE8 = "[flake8]\nmax-line-length = 120\nexclude = .git,__pycache__\n"

CHANGELOG_MAIN = """# Changelog

## [1.1.0] - 2024-01-02
### Added
- Admin dashboard reporting

### Fixed
- Database connection pool timeout

## [1.0.0] - 2023-11-15
### Added
- First production release
"""

UNRELEASED = """## [Unreleased]
### Added
- User profile endpoints (GET, POST, PATCH)
- Patient symptom tracking feature

### Changed
- Improved pagination limit to 100 items

"""

WORKFLOW = """name: Deploy to production
on:
  push:
    branches: [main]
jobs:
  deploy:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: pytest
"""


def _commit(work: Path, message: str) -> None:
    g.git(["add", "--all"], work)
    g.git(["commit", "--quiet", "-m", message], work, env=IDENTITY)


def create(folder: Path) -> Path:
    """Create ``folder/origin.git`` with the app's history; returns the bare repository."""
    bare = g.init_bare(folder / "origin.git", "main")
    work = folder / "seed"
    g.git(["clone", "--quiet", str(bare), str(work)])
    (work / "app").mkdir()
    (work / "tests").mkdir()
    (work / "migrations").mkdir()
    (work / ".github" / "workflows").mkdir(parents=True)
    (work / ".github" / "workflows" / "deploy-production.yml").write_text(WORKFLOW)
    (work / "app" / "main.py").write_text(APP_MAIN.format())
    (work / "tests" / "test_app.py").write_text(APP_TESTS)
    (work / "tests" / "conftest.py").write_text("")
    (work / ".flake8").write_text(FLAKE8)
    (work / "migrations" / "0001_initial.sql").write_text("CREATE TABLE patients (id TEXT PRIMARY KEY);\n")
    (work / "README.md").write_text("# MenoTime API\n\nThe sandbox's copy of the app.\n")
    (work / "CHANGELOG.md").write_text(CHANGELOG_MAIN)
    for version in ("1.0.0", RELEASED):
        (work / "pyproject.toml").write_text(PYPROJECT.format(version=version))
        (work / "app" / "__init__.py").write_text(APP_INIT.format(version=version))
        _commit(work, f"chore: release v{version}")
        g.git(["tag", "-a", f"v{version}", "-m", f"Release version {version}"], work, env=IDENTITY)
    g.git(["push", "--quiet", "origin", "main", "--tags"], work)
    g.git(["checkout", "--quiet", "-b", "develop"], work)
    text = (work / "CHANGELOG.md").read_text()
    (work / "CHANGELOG.md").write_text(text.replace("# Changelog\n\n", "# Changelog\n\n" + UNRELEASED, 1))
    main = (work / "app" / "main.py").read_text()
    (work / "app" / "main.py").write_text(main + '''

def profile(user_id: str) -> dict:
    """A user's profile."""
    return {"id": user_id, "symptoms": []}
''')
    _commit(work, "feat: user profile endpoints and symptom tracking")
    g.git(["push", "--quiet", "origin", "develop"], work)
    return bare
