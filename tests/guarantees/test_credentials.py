"""Credentials are never printed: ``repr(Settings)``, ``pipeline_health()``, stderr, errors and
``alkana-logging check`` show Loki's URL with its user-info masked, and no password or token.

``LOKI_URL=http://alice:S3cret@host`` is the form Grafana Cloud's examples use; its user-info is
still sent, as basic auth, to that host.
"""

from __future__ import annotations

import base64
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import alkana_logging
from alkana_logging.exceptions import ConfigurationError
from alkana_logging.loki import LokiSink
from alkana_logging.ops import cli
from alkana_logging.ops.query import LokiClient, LokiQueryError
from alkana_logging.settings import load_settings
from tests import _loki_api as api

LOKI_VARIABLES = ("LOKI_URL", "LOKI_TENANT", "LOKI_USERNAME", "LOKI_PASSWORD", "LOKI_TOKEN")


@pytest.fixture(autouse=True)
def _no_loki_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*LOKI_VARIABLES, "LOG_FILE", "LOG_ROTATION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def password() -> str:
    return f"S3cret-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def loki() -> Iterator[api.LokiApi]:
    with api.running() as server:
        yield server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_settings_repr_masks_the_url_and_leaves_out_password_and_token(password: str) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    settings = load_settings(
        {
            "loki_url": f"https://alice:{password}@logs.example:443",
            "loki_username": "bob",
            "loki_password": password + "-2",
        }
    )
    with_token = load_settings({"loki_url": "https://logs.example", "loki_token": token})
    for text in (repr(settings), str(settings), repr(with_token)):
        assert password not in text
        assert token not in text
    assert "loki_url='https://[REDACTED]@logs.example:443'" in repr(settings)
    assert settings.loki_url == f"https://alice:{password}@logs.example:443"  # kept for use


def log_through_an_outage(
    url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> tuple[dict[str, Any], str]:
    """Log one line with nothing listening at ``url`` until Loki is given up on: the health
    then, and what was said on stderr."""
    alkana_logging.setup(
        loki_url=url,
        log_file=str(tmp_path / "app.log"),
        stdout=False,
        loki_max_retry_time=1.0,
        loki_batch_wait=0.05,
    )
    logging.getLogger("x").warning("while Loki is down")
    deadline = time.monotonic() + 20
    while not alkana_logging.pipeline_health()["dropped"]:  # unreachable, or a bad URL
        assert time.monotonic() < deadline, alkana_logging.pipeline_health()
        time.sleep(0.02)
    health = alkana_logging.pipeline_health()
    alkana_logging.shutdown()
    return health, capfd.readouterr().err


@pytest.mark.slow
def test_an_outage_shows_no_password_in_health_or_on_stderr(
    tmp_path: Path, password: str, capfd: pytest.CaptureFixture[str]
) -> None:
    url = f"http://alice:{password}@127.0.0.1:{closed_port()}"
    health, err = log_through_an_outage(url, tmp_path, capfd)
    assert "127.0.0.1" in health["loki_last_error"]
    assert "127.0.0.1" in err
    assert password not in str(health)
    assert password not in err
    assert password not in (tmp_path / "app.log").read_text()


def test_user_info_in_the_url_is_sent_as_basic_auth(loki: api.LokiApi, password: str) -> None:
    host = loki.url.removeprefix("http://")
    client = LokiClient(f"http://alice:{password}@{host}")
    client.labels()
    client.close()
    expected = base64.b64encode(f"alice:{password}".encode()).decode()
    assert loki.seen[-1].headers["Authorization"] == f"Basic {expected}"
    assert password not in client.url


def test_query_errors_show_no_password(loki: api.LokiApi, password: str) -> None:
    loki.answers["/loki/api/v1/labels"] = api.text_error(401, "no such tenant")
    host = loki.url.removeprefix("http://")
    client = LokiClient(f"http://alice:{password}@{host}")
    with pytest.raises(LokiQueryError) as caught:
        client.labels()
    client.close()
    assert "no such tenant" in str(caught.value)
    assert password not in str(caught.value)
    with pytest.raises(LokiQueryError) as unreachable:
        LokiClient(f"http://alice:{password}@127.0.0.1:{closed_port()}", timeout=2).labels()
    assert password not in str(unreachable.value)


@pytest.mark.parametrize("reachable", [True, False], ids=["reachable", "unreachable"])
def test_check_prints_no_password(
    capsys: pytest.CaptureFixture[str],
    loki: api.LokiApi,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    password: str,
    reachable: bool,
) -> None:
    host = loki.url.removeprefix("http://") if reachable else f"127.0.0.1:{closed_port()}"
    monkeypatch.setenv("LOG_FILE", str(tmp_path / "app.log"))
    monkeypatch.setenv("LOKI_URL", f"http://alice:{password}@{host}")
    status = cli.main(["check", "--timeout", "2"])
    out, err = capsys.readouterr()
    assert status == (0 if reachable else 1)
    assert f"http://[REDACTED]@{host}" not in out  # taken out of the URL, not just masked
    assert f"http://{host}" in out
    assert password not in out + err


def test_a_bad_loki_url_is_refused_without_its_password(password: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        alkana_logging.setup(loki_url=f"ftp://alice:{password}@host", stdout=True, log_file="")
    assert password not in str(caught.value)
    with pytest.raises(ValueError, match=r"\[REDACTED\]") as refused:
        LokiSink(f"ftp://alice:{password}@host", labels={"job": "j"})
    assert password not in str(refused.value)


@pytest.mark.parametrize("odd", ["/", "#", "?", '"'])
def test_a_password_with_an_unencoded_url_character_is_never_printed(
    tmp_path: Path, odd: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """A token pasted as it is (base64 holds "/") makes a URL whose user-info ends early for
    every URL parser: everything up to the last "@" is masked, in settings, health and errors."""
    password = f"glc_{uuid.uuid4().hex[:6]}{odd}S3CRET{uuid.uuid4().hex[:6]}+x=="
    url = f"http://alice:{password}@127.0.0.1:{closed_port()}"
    secret = password.split(odd)[1]
    assert secret not in repr(load_settings({"loki_url": url}))
    health, err = log_through_an_outage(url, tmp_path, capfd)
    assert secret not in str(health)
    assert secret not in err
    assert secret not in (tmp_path / "app.log").read_text()
