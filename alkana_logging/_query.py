"""A small client for Loki's query API: instant and range queries, readiness, label names.

Part of the runtime: the health check reads ETL freshness from Loki with it
(:class:`~alkana_logging.healthcheck.LokiFreshness`). The ops toolkit's ``query`` and ``check``
commands use it too, as :mod:`alkana_logging.ops.query` (the import path to use).

Answers are parsed into plain data (:class:`QueryResult`): a ``vector`` (one value per series,
from an instant query), a ``matrix`` (series of points, from a range query), ``streams`` (log
lines) or a ``scalar``. Failures are :class:`LokiQueryError`\\ s with a message a person can act
on: :class:`LokiUnreachableError` when no answer came, :class:`LokiRejectedError` (with Loki's
own message) when Loki refused the query.

Needs ``requests`` (the ``loki`` extra).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal
from urllib.parse import urljoin

from alkana_logging.console import escape
from alkana_logging.exceptions import AlkanaLoggingError
from alkana_logging.redaction import mask_url, scrub_text

if TYPE_CHECKING:
    import requests

    from alkana_logging._http import Answer, LokiEndpoint
    from alkana_logging.settings import Settings

_MAX_MESSAGE: Final = 2000
DEFAULT_TIMEOUT: Final = 30.0
#: The largest answer read (a log query of 5000 long lines fits); beyond it the query fails.
DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
#: Redirects followed, and only to the same scheme, host and port.
_MAX_REDIRECTS: Final = 5
_BYTES_PER_VALUE: Final = 32
#: An error answer larger than this is shown as text, never parsed as JSON.
_MAX_ERROR_JSON: Final = 64 * 1024

Direction = Literal["forward", "backward"]


class LokiQueryError(AlkanaLoggingError):
    """A query could not be run or its answer could not be read."""


class LokiUnreachableError(LokiQueryError):
    """No answer from Loki: connection refused, name not resolved, TLS failure, timeout."""


class LokiRejectedError(LokiQueryError):
    """Loki answered with an error status; ``loki_message`` is what Loki said.

    Attributes:
        status: the HTTP status code.
        loki_message: Loki's own message (a LogQL parse error, a limit, an auth failure, ...).
    """

    def __init__(self, url: str, status: int, loki_message: str) -> None:
        super().__init__(f"Loki at {url} rejected the request (HTTP {status}): {loki_message}")
        self.status = status
        self.loki_message = loki_message


@dataclasses.dataclass(frozen=True)
class Sample:
    """One value of an instant vector: the series' labels, the time (epoch s), the value."""

    labels: dict[str, str]
    time: float
    value: float


@dataclasses.dataclass(frozen=True)
class Series:
    """One series of a matrix: labels and (epoch s, value) points in time order."""

    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]


@dataclasses.dataclass(frozen=True)
class Stream:
    """One log stream: labels and (ns since the epoch, line) entries as Loki returned them."""

    labels: dict[str, str]
    entries: tuple[tuple[int, str], ...]


@dataclasses.dataclass(frozen=True)
class QueryResult:
    """A parsed query answer; only the field of ``result_type`` is filled."""

    result_type: Literal["vector", "matrix", "streams", "scalar"]
    vector: tuple[Sample, ...] = ()
    matrix: tuple[Series, ...] = ()
    streams: tuple[Stream, ...] = ()
    scalar: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (NaN and infinities as strings, as Loki writes them)."""
        result: Any
        if self.result_type == "vector":
            result = [
                {"labels": s.labels, "time": s.time, "value": _json_number(s.value)}
                for s in self.vector
            ]
        elif self.result_type == "matrix":
            result = [
                {"labels": s.labels, "points": [[t, _json_number(v)] for t, v in s.points]}
                for s in self.matrix
            ]
        elif self.result_type == "streams":
            result = [
                {"labels": s.labels, "entries": [[str(ns), line] for ns, line in s.entries]}
                for s in self.streams
            ]
        else:
            result = None if self.scalar is None else _json_number(self.scalar)
        return {"result_type": self.result_type, "result": result}


def _json_number(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")


class LokiClient:
    """Runs queries against one Loki.

    Args:
        url: Loki's base URL (``http://loki:3100``); a push URL is accepted too.
        tenant: sent as ``X-Scope-OrgID`` (multi-tenant Loki).
        username: basic auth user (with ``password``).
        password: basic auth password.
        token: a bearer token (instead of basic auth).
        verify_tls: check the server's TLS certificate.
        timeout: seconds for the whole request: connecting, sending and the complete answer.
        session: a ``requests.Session`` to use (one is made otherwise); the deadline is kept
            only by the session made here.
        max_response_bytes: a larger answer is not read: the query fails, saying so.

    Raises:
        LokiQueryError: ``requests`` is not installed.
        TypeError: the URL or a credential is not a string.
        ValueError: an option is not accepted.
    """

    def __init__(
        self,
        url: str,
        *,
        tenant: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        verify_tls: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        try:
            import requests
        except ImportError:  # pragma: no cover - requests is installed wherever tests run
            raise LokiQueryError(
                "querying Loki needs the requests package: pip install 'alkana-logging[loki]'"
            ) from None
        from alkana_logging import _http

        self.endpoint: LokiEndpoint = _http.LokiEndpoint.of(
            url,
            tenant=tenant,
            username=username,
            password=password,
            token=token,
            verify_tls=verify_tls,
        )
        if not timeout > 0:
            raise ValueError(f"timeout: got {timeout!r}; expected a number of seconds > 0")
        if not max_response_bytes > 0:
            raise ValueError(f"max_response_bytes: got {max_response_bytes!r}; expected > 0")
        self.url = self.endpoint.shown()  # as errors print it
        self._timeout = timeout
        self._max_response = max_response_bytes
        self._requests = requests
        self._http = _http
        self._session = self.endpoint.session(session)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, url: str | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> LokiClient:
        """A client for the Loki of ``settings`` (``LOKI_URL``, tenant and credentials).

        Raises:
            LokiQueryError: no URL given and ``LOKI_URL`` is not set.
        """
        url = url or settings.loki_url
        if not url:
            raise LokiQueryError("no Loki URL: set LOKI_URL or pass --loki-url")
        return cls(
            url,
            **settings.loki_identity,
            verify_tls=settings.loki_verify_tls,
            timeout=timeout,
        )

    def close(self) -> None:
        """Close the connections of the session."""
        self._session.close()

    def __enter__(self) -> LokiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -------------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Answer:
        """GET ``path`` within the timeout, reading at most ``max_response_bytes``; redirects
        are followed only to the same scheme, host and port (credentials go nowhere else)."""
        url = self.endpoint.base + path
        for _ in range(_MAX_REDIRECTS + 1):
            try:
                answer = self._http.request(
                    self._session,
                    "GET",
                    url,
                    params=params,
                    deadline=self._timeout,
                    timeout=(self._timeout, self._timeout),
                    max_body=self._max_response,
                )
            except self._requests.exceptions.Timeout:
                raise LokiUnreachableError(
                    f"cannot reach Loki at {self.url}: no answer within {self._timeout:g} s "
                    "(connecting, sending and the whole answer)"
                ) from None
            except self._requests.exceptions.RequestException as err:
                raise LokiUnreachableError(
                    f"cannot reach Loki at {self.url}: {self.endpoint.scrub(_reason(err))}"
                ) from None
            if answer.status not in _REDIRECTS:
                break
            target = urljoin(url, answer.headers.get("Location", ""))
            if not self._http.same_origin(url, target):
                raise LokiQueryError(
                    f"Loki at {self.url} redirected {path} to {mask_url(target)!r}, another "
                    "host: not followed (the credentials are never sent elsewhere)"
                )
            url, params = target, None
        else:
            raise LokiQueryError(f"Loki at {self.url}: more than {_MAX_REDIRECTS} redirects")
        if answer.truncated:
            raise LokiQueryError(
                f"Loki at {self.url} answered {path} with more than {self._max_response} bytes; "
                "not read (narrow the query, lower --limit, or raise max_response_bytes)"
            )
        if answer.status != 200:
            raise LokiRejectedError(self.url, answer.status, _error_message(answer))
        return answer

    def _data(self, path: str, params: Mapping[str, str]) -> Any:
        answer = self._get(path, params)
        # Parsed, a JSON value takes far more memory than its text: 64 MiB of ``[]`` would be
        # 1.9 GB of lists, 63 MiB of ``"ab"`` strings 1.1 GB. At most one value per 32 bytes of
        # the answer limit (2 Mi for the default: about 200 MB parsed for arrays, 600 MB for an
        # object of that many small keys, a pair counting once), counted before
        # parsing: each value but the first of an array or object follows a comma, each array
        # and object opens with a bracket (three byte counts; commas and brackets inside
        # strings count too, so the count is an upper bound).
        body = answer.body
        values = body.count(b",") + body.count(b"[") + body.count(b"{")
        if values > self._max_response // _BYTES_PER_VALUE:
            raise LokiQueryError(
                f"Loki at {self.url} answered {path} with about {values} JSON values, more "
                f"than {self._max_response // _BYTES_PER_VALUE} (max_response_bytes / "
                f"{_BYTES_PER_VALUE}); not read (narrow the query, lower --limit, or raise "
                "max_response_bytes)"
            )
        try:
            body = json.loads(answer.body)
        except ValueError:
            raise LokiQueryError(
                f"Loki at {self.url} answered {path} with something that is not JSON: "
                f"{_shown(_prefix(answer.body))!r}"
            ) from None
        except RecursionError:  # JSON nested beyond the interpreter's stack
            raise LokiQueryError(
                f"Loki at {self.url} answered {path} with JSON nested too deep to read: "
                f"{_shown(_prefix(answer.body))!r}"
            ) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            message = body.get("error") if isinstance(body, dict) else None
            detail = message if isinstance(message, str) and message else _repr_short(body)
            raise LokiQueryError(
                f"Loki at {self.url} did not answer {path} with success: {_shown(detail)}"
            )
        return body.get("data")

    def query(
        self, logql: str, *, time: float | None = None, limit: int | None = None
    ) -> QueryResult:
        """An instant query: one value per series at ``time`` (now when omitted).

        Args:
            logql: the query.
            time: the evaluation time, epoch seconds.
            limit: the most log lines to return (log queries only).

        Raises:
            LokiQueryError: see the class documentation.
        """
        params = {"query": logql}
        if time is not None:
            params["time"] = _ns(time)
        if limit is not None:
            params["limit"] = str(limit)
        return parse_result(self._data("/loki/api/v1/query", params))

    def query_range(
        self,
        logql: str,
        *,
        start: float,
        end: float,
        step: float | None = None,
        limit: int | None = None,
        direction: Direction = "backward",
    ) -> QueryResult:
        """A range query: series of points (metric queries) or log lines (log queries).

        Args:
            logql: the query.
            start: the start, epoch seconds.
            end: the end, epoch seconds.
            step: seconds between two points (Loki chooses when omitted).
            limit: the most log lines to return (log queries).
            direction: ``backward`` returns the newest lines first.

        Raises:
            LokiQueryError: see the class documentation.
            ValueError: ``end`` is before ``start``, or ``step`` is not positive.
        """
        if end < start:
            raise ValueError(f"end: got {end!r}, before start {start!r}")
        params = {"query": logql, "start": _ns(start), "end": _ns(end), "direction": direction}
        if step is not None:
            if not step > 0:
                raise ValueError(f"step: got {step!r}; expected seconds > 0")
            params["step"] = f"{step:g}"
        if limit is not None:
            params["limit"] = str(limit)
        return parse_result(self._data("/loki/api/v1/query_range", params))

    def ready(self) -> str:
        """Loki's ``/ready`` answer (``ready``).

        Raises:
            LokiQueryError: Loki is unreachable or not ready (its message says why).
        """
        return self._get("/ready").text().strip()

    def labels(self) -> list[str]:
        """The label names Loki knows (a cheap call that needs the tenant and credentials).

        Raises:
            LokiQueryError: see the class documentation.
        """
        data = self._data("/loki/api/v1/labels", {})
        return [str(name) for name in data or ()]


_ERRNO: Final = re.compile(r"\[Errno -?[0-9]+\] [^'\")]+")


def _reason(err: Exception) -> str:
    """The useful part of a requests error ("[Errno 111] Connection refused"), not its chain."""
    match = _ERRNO.search(str(err))
    return match.group(0).strip() if match else str(err)


_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})


def _ns(seconds: float) -> str:
    return str(round(seconds * 1_000_000_000))


def _error_message(answer: Answer) -> str:
    """Loki's message from an error answer: plain text, or JSON with ``message``/``error``."""
    text = answer.text().strip()
    try:
        # Parsed only when small enough to be a message: an error answer of 64 MiB of ``[]``
        # would take 1.9 GB parsed; its text is shown cut anyway.
        body = json.loads(answer.body) if len(answer.body) <= _MAX_ERROR_JSON else None
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict):
        for key in ("message", "error"):
            if isinstance(body.get(key), str) and body[key].strip():
                text = body[key].strip()
                break
    if not text:
        text = answer.reason or "no message"
    return _shown(text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "...")


def _shown(text: str) -> str:
    """Server text as printed: URL credentials masked (a proxy echoing the request URL), then
    control characters escaped (it reaches a terminal)."""
    return escape(scrub_text(text))


def _prefix(body: bytes | bytearray) -> str:
    # Only the start is decoded: the body may be tens of MiB.
    return bytes(body[:200]).decode("utf-8", "replace")


def _repr_short(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deep to show>"
    return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."


def _value(raw: Any) -> float:
    # Loki writes sample values as strings ("0.5", "NaN", "+Inf") to keep them exact.
    return float(raw)


def _labels(raw: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (raw or {}).items()}


def parse_result(data: Any) -> QueryResult:
    """Parse the ``data`` object of a Loki query answer.

    Raises:
        LokiQueryError: the object is not one of Loki's result forms.
    """
    try:
        kind = data["resultType"]
        result = data["result"]
        if kind == "vector":
            return QueryResult(
                "vector",
                vector=tuple(
                    Sample(_labels(s.get("metric")), float(s["value"][0]), _value(s["value"][1]))
                    for s in result
                ),
            )
        if kind == "matrix":
            return QueryResult(
                "matrix",
                matrix=tuple(
                    Series(
                        _labels(s.get("metric")),
                        tuple((float(t), _value(v)) for t, v in s["values"]),
                    )
                    for s in result
                ),
            )
        if kind == "streams":
            return QueryResult(
                "streams",
                streams=tuple(
                    Stream(
                        _labels(s.get("stream")),
                        tuple((int(ns), str(line)) for ns, line, *_ in s["values"]),
                    )
                    for s in result
                ),
            )
        if kind == "scalar":
            return QueryResult("scalar", scalar=_value(result[1]))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as err:
        raise LokiQueryError(f"cannot read Loki's answer: {type(err).__name__}: {err}") from None
    raise LokiQueryError(f"cannot read Loki's answer: unknown resultType {kind!r}")
