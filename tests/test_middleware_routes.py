"""Route templates of the http_request event for every kind of FastAPI route, under a real
uvicorn, on the FastAPI and Starlette installed: CI runs this file on the newest and on the
oldest versions that pyproject.toml admits (``make test-oldest``)."""

from __future__ import annotations

import re
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import fastapi
import httpx
import pytest
import starlette

from alkana_logging import fields as F
from tests._uvicorn_server import Server, serve, wait_for

HAS_FRONTEND = hasattr(fastapi.FastAPI, "frontend")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("routes")
    dist = root / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<html>index</html>")
    (dist / "assets" / "app.js").write_text("console.log(1)")
    with serve(
        "tests._uvicorn_server:fastapi_routes_app",
        root / "app.log",
        env={"TEST_FRONTEND_DIR": str(dist)},
    ) as server:
        yield server


CASES = [
    ("/things", "/things", 200, None),
    ("/things/3", "/things/{tid}", 200, None),
    ("/api/v1/users/5/orders/6", "/api/v1/users/{uid}/orders/{oid}", 200, None),
    ("/m/files/f/readme", "/m/files/f/{name}", 200, None),
    ("/m/raw/anything/at/all", "/m/raw", 200, None),
    ("/m/h/1", "/m/h/{x}", 200, "api.example.com"),
    ("/static/assets/app.js", "/static", 200, None),
    ("/static/missing.js", "/static", 404, None),
    ("/nowhere", F.ROUTE_UNMATCHED, 404, None),
    ("/t/acme/app/x/1", "/t/{tenant}/app/x/{item}", 200, None),
    ("/t/app/app/x/1", "/t/{tenant}/app/x/{item}", 200, None),
    ("/r/eu/west/x/1", "/r/{region}/{zone}/x/{item}", 200, None),
    ("/r/1/1/x/2", "/r/{region}/{zone}/x/{item}", 200, None),
    ("/v2/x/1", "/v{version}/x/{item}", 200, None),
    ("/w/7/x/7", "/w/{ws}/x/{item}", 200, None),
    ("/w/x/x/1", "/w/{ws}/x/{item}", 200, None),
    ("/sub/nothing-here", F.ROUTE_UNMATCHED, 404, None),
    ("/orgs/acme/beta/x", "/orgs/{org}/{org}/x", 200, None),
]
FRONTEND_CASES = [
    ("/app/", "/app", 200, None),
    ("/app/assets/app.js", "/app", 200, None),
]


def _check(server: Server, path: str, route: str, status: int, host: str | None) -> None:
    request_id = f"route-{uuid.uuid4().hex[:12]}"
    headers = {"X-Request-ID": request_id}
    if host:
        headers["Host"] = host
    response = httpx.get(server.base_url + path, headers=headers, trust_env=False, timeout=30)

    assert status == response.status_code, response.text
    [event] = wait_for(
        server.log_file,
        lambda r: r.get(F.EVENT) == F.EVENT_HTTP_REQUEST and r.get(F.REQUEST_ID) == request_id,
    )
    assert route == event[F.ROUTE], (
        f"FastAPI {fastapi.__version__}, Starlette {starlette.__version__}"
    )


@pytest.mark.parametrize(("path", "route", "status", "host"), CASES)
def test_route_template(
    server: Server, path: str, route: str, status: int, host: str | None
) -> None:
    _check(server, path, route, status, host)


@pytest.mark.skipif(not HAS_FRONTEND, reason="this FastAPI has no app.frontend()")
@pytest.mark.parametrize(("path", "route", "status", "host"), FRONTEND_CASES)
def test_frontend_page_route_template(
    server: Server, path: str, route: str, status: int, host: str | None
) -> None:
    _check(server, path, route, status, host)


def test_oldest_pins_are_the_lower_bounds_of_pyproject() -> None:
    root = Path(__file__).resolve().parent.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    requirements = [*project["optional-dependencies"]["dev"]]
    bounds = dict(
        re.findall(r"^(fastapi|starlette)>=([0-9.]+)", r)[0]
        for r in requirements
        if re.match(r"(fastapi|starlette)>=", r)
    )
    [pins] = re.findall(r"^OLDEST_PINS = (.*)$", (root / "Makefile").read_text(), re.M)
    pinned = dict(pin.split("==") for pin in pins.split())
    assert set(pinned) == {"fastapi", "starlette"}
    for name, version in pinned.items():
        assert version.startswith(bounds[name] + "."), (name, version, bounds[name])
