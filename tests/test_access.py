"""Access control, against a real `bentoml serve`: every route but the probes needs a token, each
needs its role, tokens are made and revoked by admins, and the first start makes one admin token."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from serving import bentoml_server, grant

from pipeline.stores.access import AccessStore

GORE_CENSOR = str(Path(sys.executable).with_name("gore-censor"))
OPEN = {"/readyz", "/livez", "/healthz", "/metrics", "/docs.json"}
API_TABLE = Path(__file__).resolve().parents[1] / "docs" / "api.md"


def documented_roles() -> list[tuple[set[str], re.Pattern[str], set[str] | None]]:
    """The role column of docs/api.md's route table, read as a client would: the expectation the
    service is held to, written apart from the code's own rules."""
    rules = []
    for line in API_TABLE.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        roles = None if cells[1] == "none" else {role.strip() for role in cells[1].split(",")}
        methods: set[str] = set()
        for fragment in re.findall(r"`([^`]+)`", cells[0]):
            *named, path = fragment.replace(",", " ").split()
            methods = set(named) or methods  # `/livez` after `GET /readyz`: the same method.
            pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(path.split("[")[0]))
            rules.append((methods, re.compile(pattern), roles))
    return rules


def documented(method: str, path: str) -> set[str] | None:
    matches = [roles for methods, pattern, roles in documented_roles() if method in methods and pattern.fullmatch(path)]
    assert matches, f"{method} {path} is served but not in docs/api.md"
    return matches[0]


@pytest.fixture(scope="module")
def first_start(red_model_tags, tmp_path_factory):
    """A service started on an empty data directory: it prints one admin token."""
    data_dir = tmp_path_factory.mktemp("access-data")
    log = tmp_path_factory.mktemp("access-logs") / "serve.log"
    with bentoml_server({"GORE_PROFILE": "redtest", "GORE_DATA_DIR": str(data_dir)}, log) as url:
        printed = re.findall(r"FIRST START: admin token \(shown once, store it now\): (gc_\S+)", log.read_text())
        assert len(printed) == 1, log.read_text()[-3000:]
        yield url, data_dir, {"Authorization": f"Bearer {printed[0]}"}, log


def operations(url: str) -> list[tuple[str, str]]:
    """Every (method, path) the API description lists, with example path parameters."""
    document = httpx.get(f"{url}/docs.json", timeout=30).json()
    found = []
    for path, methods in document["paths"].items():
        concrete = path.replace("{image_id}", "0" * 64).replace("{token_id}", "1").replace("{job_id}", "0" * 32)
        concrete = concrete.replace("{video_id}", "0" * 64)
        found += [(method.upper(), concrete) for method in methods if method in ("get", "post", "put", "delete")]
    return found


def test_the_api_description_lists_the_mounted_routes_too(first_start):
    url, *_ = first_start
    paths = {path for _, path in operations(url)}
    assert {"/censor", "/censor/batch", f"/images/{'0' * 64}/original", "/admin/tokens", "/admin/audit"} <= paths
    document = httpx.get(f"{url}/docs.json", timeout=30).json()
    assert document["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert document["paths"]["/censor"]["post"]["security"] == [{"bearer": []}]


def test_every_data_route_answers_401_without_a_token(first_start):
    url, *_ = first_start
    for method, path in operations(url):
        response = httpx.request(method, url + path, timeout=60)
        if path in OPEN:
            assert response.status_code != 401, path
        else:
            assert response.status_code == 401, (method, path, response.status_code)
            assert "Bearer" in response.headers["www-authenticate"] and "token" in response.json()["error"]
        bogus = httpx.request(method, url + path, headers={"Authorization": "Bearer gc_not-a-token"}, timeout=60)
        assert bogus.status_code == (401 if path not in OPEN else bogus.status_code), (method, path)


@pytest.mark.parametrize("role", ["ingest", "analyst"])
def test_every_route_answers_403_to_a_token_without_its_role(first_start, role):
    url, data_dir, *_ = first_start
    headers = grant(data_dir, role, name=f"only-{role}")
    for method, path in operations(url):
        allowed = documented(method, path)
        response = httpx.request(method, url + path, headers=headers, timeout=60)
        if allowed is not None and role not in allowed:
            assert response.status_code == 403, (role, method, path, response.status_code)
            assert "needs the" in response.json()["error"] and any(repr(r) in response.json()["error"] for r in allowed)
        else:
            assert response.status_code not in (401, 403), (role, method, path, response.status_code)


def test_admins_make_and_revoke_tokens_and_read_the_audit_log(first_start, sample_images):
    url, _, admin, log = first_start
    made = httpx.post(f"{url}/admin/tokens", json={"name": "alice", "roles": ["ingest", "analyst"]}, headers=admin)
    assert made.status_code == 201, made.text
    secret, token_id = made.json()["secret"], made.json()["token"]["id"]
    alice = {"Authorization": f"Bearer {secret}"}
    listed = httpx.get(f"{url}/admin/tokens", headers=admin).json()
    assert "secret" not in str(listed) and secret not in str(listed) and {t["name"] for t in listed} >= {"alice"}
    files = {"image": ("r.png", sample_images.red_blob.read_bytes())}
    body = httpx.post(f"{url}/censor", files=files, headers=alice, timeout=120).json()
    assert httpx.get(f"{url}/images/{body['id']}/original", headers=alice).status_code == 200
    assert httpx.delete(f"{url}/admin/tokens/{token_id}", headers=admin).json()["revoked_at"] is not None
    assert httpx.get(f"{url}/images/{body['id']}", headers=alice).status_code == 401, "revoked at once"
    audit = httpx.get(f"{url}/admin/audit", params={"format": "csv"}, headers=admin)
    rows = list(csv.DictReader(io.StringIO(audit.text)))
    actions = [(r["actor"], r["action"], r["image_id"]) for r in rows]
    assert ("alice", "original served", body["id"]) in actions
    assert any(action == "token revoked" for _, action, _ in actions)
    assert secret not in log.read_text(), "tokens are never logged"
    bad = httpx.post(f"{url}/admin/tokens", json={"name": "x", "roles": ["root"]}, headers=admin)
    assert bad.status_code == 400 and "roles" in bad.json()["error"]


def test_a_second_start_makes_no_new_token(first_start, tmp_path):
    _, data_dir, *_ = first_start
    before = len(AccessStore.in_data_dir(data_dir).tokens())
    with bentoml_server({"GORE_PROFILE": "redtest", "GORE_DATA_DIR": str(data_dir)}, tmp_path / "again.log"):
        pass
    assert "FIRST START" not in (tmp_path / "again.log").read_text()
    assert len(AccessStore.in_data_dir(data_dir).tokens()) == before


def test_tokens_from_the_shell(tmp_path):
    env = {**os.environ, "GORE_DATA_DIR": str(tmp_path)}

    def run(*args):
        return subprocess.run([GORE_CENSOR, *args], capture_output=True, text=True, env=env, timeout=120)

    made = run("tokens", "create", "--name", "bob", "--role", "analyst")
    assert made.returncode == 0 and made.stdout.strip().startswith("gc_"), made.stderr
    store = AccessStore.in_data_dir(tmp_path)
    assert store.authenticate(made.stdout.strip()).name == "bob"
    assert (tmp_path / "access.db").stat().st_mode & 0o077 == 0, "owner-only"
    assert "bob" in run("tokens", "list").stdout and made.stdout.strip() not in run("tokens", "list").stdout
    assert run("tokens", "revoke", "1").returncode == 0 and store.authenticate(made.stdout.strip()) is None
    bad = run("tokens", "create", "--name", "x", "--role", "root")
    assert bad.returncode == 2 and "unknown role 'root'" in bad.stderr
    audit = run("audit")
    assert audit.returncode == 0 and "token revoked" in audit.stdout
