"""Redaction: values of secret-looking keys are written as ``"[REDACTED]"``, URL credentials too.

One policy for every front-end. A key is secret when its normalised form (see
:func:`normalise_key`: camelCase split, ``-``/``.``/whitespace as ``_``,
lower case) is one of the configured keys, ends with ``_`` plus one of :data:`SECRET_SUFFIXES`
(``db_password``, ``github_token``) or starts with one of :data:`SECRET_PREFIXES` plus ``_``
(``password_hash``). Keys of any type are judged: text, bytes (``dict(scope["headers"])``) and
enum members (by name and by value); other keys never hide a secret. Decisions are cached per
key, so the hot path pays one dict lookup a key.

Values are walked through dicts, lists, tuples, named tuples (by field name), sets and frozensets;
a pair ``(key, value)`` inside any of them is judged by its key (``[(b"authorization", ...)]``, a
frozenset of items). Mappings, dataclasses and pydantic models are turned into dicts by the
serializer and walked the same way. The caller's objects are never changed: what is walked is
copied.

URLs anywhere in a line (the message included) lose their user-info and the values of sensitive
query parameters: see :class:`UrlScrubber`.
"""

from __future__ import annotations

import _string  # type: ignore[import-not-found]  # str.format's field parser, as string.Formatter
import collections
import dataclasses
import datetime
import enum
import itertools
import re
import string
import sys
import uuid
from collections.abc import Callable, Container, Iterable, Mapping
from typing import Any, Final
from urllib.parse import unquote_plus

from alkana_logging.fields import COLLISION_PREFIX, LOG_ERROR

#: Keys whose values are always written as ``"[REDACTED]"``, compared in their normalised form
#: (see :func:`normalise_key`: ``accessToken``, ``Access-Token``, ``access.token`` and
#: ``" access_token "`` are all ``access_token``).
DEFAULT_REDACT_KEYS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "api_key",
        "apikey",
        "x_api_key",
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "private_key",
        "client_secret",
        "secret_key",
        "bearer",
        "session_id",
        "sessionid",
        "phpsessid",
        "jsessionid",
        "connect_sid",  # Express
        "signing_key",
        "encryption_key",
        "master_key",
        "access_key",
        "ssh_key",
        "passcode",
        "otp",
        "client_assertion",
        "saml_response",
        "code_verifier",
        "connection_string",
        "credentials",
        "jwt",
        "auth",
        "passphrase",
        "password_hash",
    }
)


_CAMEL_RUN = re.compile(r"([A-Z]+)([A-Z][a-z])")  # "APIKey" -> "API_Key"
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")  # "accessToken" -> "access_Token"
_SEPARATORS = re.compile(r"[\s\-.:/_]+")


def normalise_key(key: str) -> str:
    """The form in which keys are compared for redaction: camelCase split into words, words
    joined by ``_`` whatever separated them (``-``, ``.``, whitespace), lower case, no ``_`` at
    either end: ``dbPassword``, ``DB-Password``, ``db.password`` and ``" db_password "`` are all
    ``db_password``."""
    if key.isidentifier() and key.islower():  # the usual key: nothing to split or join
        return key.strip("_")
    text = _CAMEL.sub(r"\1_\2", _CAMEL_RUN.sub(r"\1_\2", key))
    return _SEPARATORS.sub("_", text).strip("_").lower()


normalise = normalise_key

REDACTED: Final = "[REDACTED]"
#: Nested containers deeper than this are replaced by :data:`TOO_DEEP` (they cannot be checked
#: for secrets, and a JSON serialiser refuses them anyway).
MAX_DEPTH: Final = 64
TOO_DEEP: Final = "[nested too deep]"
#: Written in place of a container that contains itself (directly or further down).
CIRCULAR: Final = "[circular reference]"
#: Containers copied for one value at most; the rest is written as :data:`TOO_MANY`.
MAX_CONTAINERS: Final = 10_000
TOO_MANY: Final = "[too many nested values]"
# The quick walk (no cycle tracking) gives up beyond these; legitimate values rarely do.
_QUICK_DEPTH: Final = 16
_QUICK_CONTAINERS: Final = 1_000


class _GiveUp(Exception):
    """The quick walk met a deep or big value: the careful walk takes over."""


SECRET_SUFFIXES: Final = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "credentials",
    "secret_key",
    "access_key",  # aws_secret_access_key
    "signature",  # x_amz_signature, webhook_signature
    "signing_key",
    "encryption_key",
    "master_key",
)
#: Words that make a key secret at its end even glued to the word before (``dbpassword``,
#: ``sslpassword``, ``accesstoken``, ``apitoken``, ``clientsecret``, ``secretkey``,
#: ``privatekey``): keys written in lower case with no separator cannot be split.
GLUED_SUFFIXES: Final = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "secretkey",
    "privatekey",
    "credentials",
    "signature",
)
#: ``password_hash``, ``password_confirmation``: a key that starts with one of these and ``_``.
SECRET_PREFIXES: Final = ("password", "passwd", "passphrase", "private_key")
_CACHE_LIMIT = 4096
#: Longer "names" before a "=" are no query parameter's (the longest known is 20 characters).
_MAX_PARAM_NAME = 128
#: Keys longer than this are judged each time, never kept in the decision cache.
_MAX_CACHED_KEY = 256
_TEXT_KEYS: Final = (str, bytes, bytearray, memoryview)


class Redactor:
    """Decides which keys are secret and copies values with their secrets replaced."""

    __slots__ = ("_cache", "_keys", "_other_cache", "_urls")

    def __init__(self, keys: Iterable[str] = DEFAULT_REDACT_KEYS) -> None:
        self._keys = frozenset(normalise_key(k) for k in keys)
        self._cache: dict[str, bool] = {}
        self._other_cache: dict[tuple[type, Any], bool] = {}
        self._urls: UrlScrubber | None = None

    @property
    def urls(self) -> UrlScrubber:
        """The URL scrubber of this policy (made on first use)."""
        urls = self._urls
        if urls is None:
            urls = self._urls = UrlScrubber(self)
        return urls

    def is_secret(self, key: Any) -> bool:
        """Whether values under ``key`` (of any type) are redacted."""
        if type(key) is str:  # the usual key: one lookup in a cache that holds exact str only
            decision = self._cache.get(key)
            if decision is None:
                decision = self._decide_text(key)
                if len(self._cache) < _CACHE_LIMIT and len(key) <= _MAX_CACHED_KEY:
                    self._cache[key] = decision
            return decision
        # Anything else is cached by type and value: a StrEnum member equals (and hashes as) its
        # value but is judged by its name too, so the two must not share a decision.
        cache_key = (type(key), key)
        try:
            decision = self._other_cache.get(cache_key)
        except TypeError:  # unhashable (a bytearray): decided every time
            return self._decide(key)
        if decision is None:
            decision = self._decide(key)
            if len(self._other_cache) < _CACHE_LIMIT:
                self._other_cache[cache_key] = decision
        return decision

    def _decide(self, key: Any) -> bool:
        if isinstance(key, enum.Enum):
            value = key.value
            return self._decide_text(key.name) or (
                isinstance(value, _TEXT_KEYS) and self._decide(value)
            )
        if isinstance(key, str):
            return self._decide_text(key)
        if isinstance(key, (bytes, bytearray, memoryview)):
            return self._decide_text(bytes(key).decode("latin-1"))
        return False

    def _decide_text(self, key: str) -> bool:
        name = normalise_key(key)
        if self._judge(name):
            return True
        # Trailing digits number a word, they make no new one (Django's ``password1``).
        plain = name.rstrip("0123456789_")
        return plain != name and bool(plain) and self._judge(plain)

    def _judge(self, name: str) -> bool:
        return (
            name in self._keys
            or name.endswith(GLUED_SUFFIXES)
            or any(name.endswith("_" + s) for s in SECRET_SUFFIXES)
            or any(name.startswith(p + "_") for p in SECRET_PREFIXES)
        )

    def _pair_secret(self, value: tuple[Any, ...] | list[Any]) -> bool:
        # A (key, value) pair judged by its key: only text-like keys, so (1, 2) costs little.
        return len(value) == 2 and isinstance(value[0], _PAIR_KEYS) and self.is_secret(value[0])

    def value(self, value: Any, depth: int = 0) -> Any:
        """Return ``value`` with secrets in nested containers replaced (copying them).

        A container met again on its own path becomes :data:`CIRCULAR`, and at most
        :data:`MAX_CONTAINERS` containers are copied (the rest become :data:`TOO_MANY`): a
        self-referencing or widely shared structure must not make a log call loop or take
        exponential time. The usual small value takes a quick walk that tracks neither; anything
        deep or big is handed to the careful walk.
        """
        if not isinstance(value, CONTAINERS):
            return self.member(value, depth) if isinstance(value, enum.Enum) else value
        try:
            return self._quick(value, depth, [_QUICK_CONTAINERS])
        except _GiveUp:
            return self._careful(value, depth, set(), [MAX_CONTAINERS])

    def _quick(self, value: Any, depth: int, budget: list[int]) -> Any:
        if isinstance(value, enum.Enum):  # a leaf that is walked: one check a leaf, not two
            return self.member(value, depth)
        budget[0] -= 1
        if depth >= _QUICK_DEPTH or budget[0] < 0:
            raise _GiveUp
        walk = self._quick
        if isinstance(value, dict):
            is_secret = self.is_secret
            return {
                k: REDACTED
                if is_secret(k)
                else v
                if type(v) in _SCALARS
                else walk(v, depth + 1, budget)
                if isinstance(v, WALKED)
                else v
                for k, v in value.items()
            }
        if isinstance(value, tuple):
            fields = getattr(value, "_fields", None)
            if fields is not None:  # a named tuple: written as a list, judged by field name
                is_secret = self.is_secret
                return [
                    REDACTED
                    if is_secret(k)
                    else v
                    if type(v) in _SCALARS
                    else walk(v, depth + 1, budget)
                    if isinstance(v, WALKED)
                    else v
                    for k, v in zip(fields, value, strict=False)
                ]
            if self._pair_secret(value):
                return [value[0], REDACTED]
        elif type(value) is list and self._pair_secret(value):  # [["authorization", "..."]]
            return [value[0], REDACTED]
        return [
            v if type(v) in _SCALARS else walk(v, depth + 1, budget) if isinstance(v, WALKED) else v
            for v in value
        ]

    def _careful(self, value: Any, depth: int, path: set[int], budget: list[int]) -> Any:
        if isinstance(value, enum.Enum):
            return self.member(value, depth)
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        ident = id(value)
        if ident in path:
            return CIRCULAR
        budget[0] -= 1
        if budget[0] < 0:
            return TOO_MANY
        path.add(ident)
        walk = self._careful
        result: Any
        if isinstance(value, dict):
            is_secret = self.is_secret
            result = {
                k: REDACTED
                if is_secret(k)
                else v
                if type(v) in _SCALARS
                else walk(v, depth + 1, path, budget)
                if isinstance(v, WALKED)
                else v
                for k, v in value.items()
            }
        elif isinstance(value, tuple) and hasattr(value, "_fields"):
            is_secret = self.is_secret
            result = [
                REDACTED
                if is_secret(k)
                else v
                if type(v) in _SCALARS
                else walk(v, depth + 1, path, budget)
                if isinstance(v, WALKED)
                else v
                for k, v in zip(value._fields, value, strict=False)
            ]
        elif isinstance(value, (tuple, list)) and self._pair_secret(value):
            result = [value[0], REDACTED]
        else:
            result = [
                v
                if type(v) in _SCALARS
                else walk(v, depth + 1, path, budget)
                if isinstance(v, WALKED)
                else v
                for v in value
            ]
        # Not in a `finally`: when the walk raises, the whole record is given up anyway.
        path.discard(ident)
        return result

    def member(self, member: enum.Enum, depth: int = 0) -> Any:
        """An enum member as the line writes it: JSON writes its value, so a container value
        (``PROD = {"password": ...}``), or a member holding one, is walked (at the depth of the
        member: a value that holds its own member ends as :data:`TOO_DEEP`); any other member
        is kept."""
        inner: Any = member
        for _ in range(MAX_DEPTH):
            try:
                inner = inner.value
            except Exception:  # noqa: BLE001 - a value that cannot be read: the walk decides
                return member
            if not isinstance(inner, enum.Enum):
                break
        else:
            return TOO_DEEP
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        if isinstance(inner, CONTAINERS):
            return self.value(inner, depth + 1)
        if isinstance(inner, Mapping):
            return self.value(dict(inner), depth + 1)
        return member

    def args(self, args: Any) -> Any:
        """The format arguments of a call (stdlib or structlog ``%``) with secrets replaced, or
        ``args`` itself when they hold none (so that a tuple argument is still formatted as a
        tuple)."""
        if isinstance(args, dict):
            return self.value(args) if self._has_secret(args) else args
        if isinstance(args, tuple):
            for arg in args:
                if type(arg) in _SCALARS:
                    continue
                if isinstance(arg, WALKED):
                    if self._has_secret(arg):
                        return tuple(self.value(a) for a in args)
                elif isinstance(arg, Mapping) and self._mapping_secret(arg):
                    # A mapping that is not a dict (MappingProxyType, UserDict, ChainMap): its
                    # repr shows its items as a dict's does; written as the dict of them.
                    return tuple(self._mapping_arg(a) for a in args)
            return args
        if isinstance(args, Mapping):  # the sole argument of "%(name)s", not a dict
            return self._mapping_arg(args) if self._mapping_secret(args) else args
        return args

    def _mapping_secret(self, mapping: Mapping[Any, Any]) -> bool:
        items = _bounded_items(mapping)
        return items is None or self._has_secret(items)

    def _mapping_arg(self, value: Any) -> Any:
        """A ``%`` argument as it is written when the arguments hold a secret: a mapping that is
        not a dict as the dict of its items, redacted (one too big to read whole: its type)."""
        if isinstance(value, WALKED) or not isinstance(value, Mapping):
            return self.value(value)
        items = _bounded_items(value)
        return self.value(items) if items is not None else _Shown(unrenderable(value))

    def has_secret(self, value: Any) -> bool:
        """Whether a container holds a secret anywhere (out of budget counts as yes)."""
        return isinstance(value, WALKED) and self._has_secret(value)

    def _has_secret(self, value: Any) -> bool:
        stack, seen, budget = [value], set(), MAX_CONTAINERS
        while stack and budget > 0:
            item = stack.pop()
            if id(item) in seen:
                continue
            seen.add(id(item))
            budget -= 1
            if isinstance(item, enum.Enum):  # its repr shows its value
                try:
                    inner = item.value
                except Exception:  # noqa: BLE001, S112 - a value that cannot be read shows none
                    continue
                if isinstance(inner, WALKED):
                    stack.append(inner)
                elif isinstance(inner, Mapping):
                    stack.append(dict(inner))
                continue
            # Read as the C repr that formats the message reads them: a subclass's own
            # __iter__, keys() or items() cannot hide a key from the check.
            if isinstance(item, dict):
                if any(self.is_secret(k) for k in dict.keys(item)):
                    return True
                stack.extend(v for v in dict.values(item) if isinstance(v, WALKED))
                continue
            if isinstance(item, (tuple, list)):
                fields = getattr(item, "_fields", None)
                if fields is not None and any(self.is_secret(k) for k in fields):
                    return True
                if self._pair_secret(item):
                    return True
            stack.extend(v for v in _raw_items(item) if isinstance(v, WALKED))
        return bool(stack)  # out of budget: redact rather than risk it

    def mapping(self, values: Mapping[Any, Any]) -> dict[Any, Any]:
        """A redacted copy of a mapping (for values that the serializer meets late)."""
        return self.value(dict(values))  # type: ignore[no-any-return]

    def args_text(self, msg: Any, args: Any) -> str:
        """The text of a call whose ``%`` arguments did not fit its format (``msg % args`` as
        reprs), secrets replaced as in a line; a value whose walk raises is shown by its type
        only (its repr may be what fails, or hold a secret)."""
        return f"{self._redacted_repr(msg)} % {self._redacted_repr(args)}"

    def _redacted_repr(self, value: Any) -> str:  # noqa: PLR0911 - one way out a kind of value
        if isinstance(value, tuple):
            try:
                return safe_repr(self.args(value))
            except Exception:  # noqa: BLE001 - a walk failed: judge the arguments one by one
                try:
                    return safe_repr(tuple(_Shown(self._redacted_repr(v)) for v in value))
                except Exception:  # noqa: BLE001 - a tuple whose iteration raises
                    return unrenderable(value)
        if isinstance(value, CONTAINERS):
            try:
                return safe_repr(self.args(value) if isinstance(value, dict) else self.value(value))
            except Exception:  # noqa: BLE001
                return unrenderable(value)
        if isinstance(value, Mapping):  # not a dict: read as the arguments are, bounded
            try:
                return safe_repr(self.args(value))
            except Exception:  # noqa: BLE001
                return unrenderable(value)
        return safe_repr(value)

    def forwarded(
        self,
        message: Any,
        values: Mapping[Any, Any] | None,
        taken: Container[str] = (),
        plain: Callable[[Any], Any] | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """The message and the attributes of a line offered to the stdlib's other handlers
        (Sentry's, pytest's caplog, an application's), redacted as the line in the file is:
        secret keys, secrets nested in values, URL user-info and secret query values, keys
        included.

        Text, numbers, ``None``, dates, times and UUIDs are given as they are (text scrubbed);
        every other value, an enum member included (its value may be a URL), as ``plain``
        converts it: the renderer's :meth:`~alkana_logging._line.Renderer.plain`, the value as
        the line writes it. A
        pydantic model, a dataclass, bytes or an object whose ``repr`` holds a URL can then
        hide nothing the file does not show. Without ``plain`` (a redactor alone), containers
        are walked and other objects kept.

        A name in ``taken`` (the record's own attributes) is prefixed ``extra_``, then numbered
        (``extra_msg_2``) if the caller used that name too. A value whose conversion fails
        becomes a placeholder and ``log_error`` says which key: the record is still offered.
        Never raises.
        """
        urls = self.urls
        text = self.message_text(message, plain)
        text = urls.text(text) if ("=" in text or "@" in text) else text
        attrs: dict[str, Any] = {}
        if not values:
            return text, attrs
        errors = []
        try:
            items = list(values.items())
        except Exception as err:  # noqa: BLE001 - a mapping whose items() raises
            items = []
            errors.append(f"fields could not be read: {safe_repr(err)}")
        is_secret = self.is_secret
        convert = plain if plain is not None else self._forwarded_value
        for key, value in items:
            name = key if type(key) is str else _text_of(key)
            if "=" in name or "@" in name:  # a URL as a key
                name = urls.text(name)
            if name in taken or name in attrs:
                name = _free_name(COLLISION_PREFIX + name if name in taken else name, attrs, taken)
            if is_secret(key):
                attrs[name] = REDACTED
            elif type(value) is str:  # the usual values first, without a call
                attrs[name] = urls.text(value) if "=" in value or "@" in value else value
            elif type(value) in _SCALARS or type(value) in _KEPT:
                attrs[name] = value
            else:
                try:
                    attrs[name] = convert(value)
                except Exception as err:  # noqa: BLE001 - the value costs only itself
                    attrs[name] = unrenderable(value)
                    errors.append(f"value of {name!r} could not be rendered: {safe_repr(err)}")
        if errors:
            earlier = attrs.get(LOG_ERROR)
            attrs[LOG_ERROR] = "; ".join([earlier, *errors] if earlier else errors)
        return text, attrs

    def _forwarded_value(self, value: Any) -> Any:
        if isinstance(value, CONTAINERS):
            return self.urls.value(self.value(value))
        if isinstance(value, Mapping):
            return self.urls.value(self.mapping(value))
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
            return self.urls.value(self.mapping(fields))
        return value

    def message_text(self, message: Any, plain: Callable[[Any], Any] | None = None) -> str:
        """The text of a message that may not be text: a container, mapping, dataclass or
        pydantic model given as the message itself (``logging.info({"password": ...})``) is
        written as the text of its value as the line writes it (``plain``: the renderer's
        :meth:`~alkana_logging._line.Renderer.plain`; without it, the walked copy), secrets
        replaced at any depth; anything else as ``str()`` (its ``repr()`` when that raises).
        Never raises: a value that cannot be converted is shown by its type.
        """
        if type(message) is str:
            return message
        try:
            if _structured(message):
                if plain is not None:
                    return _text_of(plain(message))
                return _text_of(self._forwarded_value(message))
            try:
                return str(message)
            except Exception:  # noqa: BLE001 - a bad __str__: the repr, as % formatting shows
                return safe_repr(message)
        except Exception:  # noqa: BLE001 - a walk or conversion that fails shows the type only
            return unrenderable(message)

    def loguru_message(self, record: Mapping[str, Any]) -> Any:  # noqa: PLR0911
        """The message of a loguru record with its ``{}`` arguments redacted.

        loguru formats ``message.format(*args, **kwargs)`` before a sink sees it and keeps
        neither the format string nor the arguments in the record. The sink runs inside
        loguru's ``Logger._log`` (the package adds it without ``enqueue``): the call's format
        string and arguments are read from that frame and the message is formatted again, a
        field whose name, attribute or index is secret (``{password}``, ``{creds[password]}``,
        ``{u.password}``, ``{password:.4}``) as :data:`REDACTED` and containers with their
        secrets replaced. Text the caller wrote is never touched (``bind(password="a")`` changes
        nothing in ``"a cat"``). When the frame is not found (another thread, a loguru whose
        internals differ), the message is left as loguru formatted it; an ``opt(colors=True)``
        call is formatted from its format string with the markup stripped, as loguru does. A
        format that fails the second time gives the format string itself. An object given as
        the message itself (``logger.info(a_dict)``) is returned as it is, for the renderer to
        write with its secrets replaced.
        """
        text = record["message"]
        # The frame is read (about 3 µs) only when formatting may have put a secret in: a
        # keyword argument (loguru keeps them in ``extra``, with the bound values) of a secret
        # name, or one that is not a plain scalar (a container, an object with attributes).
        # Scalars under other names cannot hide a secret field. A message that reads like the
        # text of an object may be one given as the message itself (``logger.info(a_dict)``).
        if _object_like(text):
            call = _loguru_call(record)
            if call is not None and not isinstance(call[0], str):
                return call[0]
        extra = record["extra"]
        if not extra:
            return text
        is_secret = self.is_secret
        if not any(type(v) not in _SCALARS or is_secret(k) for k, v in extra.items()):
            return text
        call = _loguru_call(record)
        if call is None:
            return text
        template, args, kwargs = call
        if not (args or kwargs) or not isinstance(template, str):
            return text
        try:
            return _RedactingFormatter(self).vformat(template, args, kwargs)
        except Exception:  # noqa: BLE001 - the caller's text alone: it names no value
            return template


_SCALARS: Final = frozenset({str, int, float, bool, type(None)})
#: Values of a forwarded record kept as they are (these exact types: a subclass may show anything
#: in its repr): they hold no text a caller could put a secret in.
_KEPT: Final = frozenset(
    {datetime.datetime, datetime.date, datetime.time, datetime.timedelta, uuid.UUID}
)
_LOGURU_LOG: list[Any] = []
_CLOSERS: Final = {"{": "}", "[": "]", "(": ")"}
#: What a pydantic model's ``str()`` shows after a field's ``=``: text, bytes, a container, an
#: object (``OrderedDict(``), an enum member (``<Kind.X: ...>``).
_FIELD_VALUE: Final = re.compile(r"""=(?:[bB]?['"]|[{\[(<]|[\w.]+\()""")
#: A class name as reprs show it: dotted, ``<locals>`` included.
_TYPE_NAME: Final = re.compile(r"[\w.<>]+")


def _raw_items(container: Any) -> Iterable[Any]:
    """The items of a built-in container as its C implementation holds them."""
    kinds: tuple[Any, ...] = (list, tuple, set, frozenset, collections.deque)
    for kind in kinds:
        if isinstance(container, kind):
            return kind.__iter__(container)  # type: ignore[no-any-return]
    return iter(container)  # type: ignore[no-any-return]


def _object_like(text: str) -> bool:
    """Whether ``text`` reads like an object's ``str()``: a container's (``{...}``, ``[...]``),
    a dataclass's, named tuple's or ``OrderedDict``'s (``Name(...)``), a pydantic model's
    (``user='bob' password='...'``). ``[worker-1] started``, ``rows=5 loaded`` and ``failed
    (retry 2)`` are not."""
    first, last = text[:1], text[-1:]
    if first in _CLOSERS:
        return last == _CLOSERS[first]
    if last == ")":
        # Name(...) with fields or items in it: not ``retry(3)`` or ``shutdown()``.
        cut = text.find("(")
        if _TYPE_NAME.fullmatch(text, 0, cut) is not None and (
            "=" in text or "[" in text or "{" in text
        ):
            return True
    return "=" in text and _FIELD_VALUE.search(text) is not None


def _structured(message: Any) -> bool:
    """A value written by its fields rather than its ``str()``: a container, mapping,
    dataclass instance or pydantic model."""
    if isinstance(message, (*CONTAINERS, Mapping)):
        return True
    try:
        return (dataclasses.is_dataclass(message) and not isinstance(message, type)) or callable(
            getattr(type(message), "model_dump", None)
        )
    except Exception:  # noqa: BLE001 - a type whose attributes raise: written by its str()
        return False


#: The most items of a mapping that is not a dict read to judge a ``%`` argument: ``%`` itself
#: reads only the keys the format names, and an endless or huge mapping must not hang the call.
MAX_MAPPING_ITEMS: Final = 1_000


def _bounded_items(mapping: Mapping[Any, Any]) -> dict[Any, Any] | None:
    """Up to :data:`MAX_MAPPING_ITEMS` items of ``mapping`` as a dict; None when it has more."""
    items = dict(itertools.islice(mapping.items(), MAX_MAPPING_ITEMS + 1))
    return items if len(items) <= MAX_MAPPING_ITEMS else None


def _loguru_call(record: Mapping[str, Any]) -> tuple[Any, Any, Any] | None:
    """``(format string, args, kwargs)`` of the loguru call being emitted, read from loguru's
    ``Logger._log`` frame up the stack; None when it is not there or formatted with colours."""
    if not _LOGURU_LOG:
        try:
            from loguru._logger import Logger

            _LOGURU_LOG.append(Logger._log.__code__)
        except (ImportError, AttributeError):
            _LOGURU_LOG.append(None)
    code = _LOGURU_LOG[0]
    if code is None:
        return None
    frame = sys._getframe(1)
    for _ in range(12):
        if frame is None:
            return None
        if frame.f_code is code:
            local = frame.f_locals
            if local.get("log_record") is not record:
                return None
            template = local.get("message")
            if local.get("colors") and isinstance(template, str):  # opt(colors=True): markup
                template = _loguru_stripped(template)
            return template, local.get("args"), local.get("kwargs")
        frame = frame.f_back  # type: ignore[assignment]
    return None


def _loguru_stripped(template: str) -> str | None:
    """The format string of an ``opt(colors=True)`` call without its colour markup, as loguru
    strips it; None when loguru's colorizer is not there or refuses it."""
    try:
        from loguru._colorizer import Colorizer

        stripped = Colorizer.prepare_simple_message(template).stripped  # type: ignore[no-untyped-call]
        return stripped if isinstance(stripped, str) else None
    except Exception:  # noqa: BLE001 - another loguru: the message is left as it is
        return None


class _Withheld:
    """A field of a secret name: formatted as :data:`REDACTED` whatever its spec."""


_WITHHELD: Final = _Withheld()


class _RedactingFormatter(string.Formatter):
    """``str.format`` with secret fields withheld and containers redacted."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        first, rest = _string.formatter_field_name_split(field_name)
        is_secret = self._redactor.is_secret
        if isinstance(first, str) and is_secret(first):
            return _WITHHELD, first
        obj = self.get_value(first, args, kwargs)
        for is_attr, name in rest:
            if isinstance(name, str) and is_secret(name):
                return _WITHHELD, first
            obj = getattr(obj, name) if is_attr else obj[name]
        return obj, first

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if value is _WITHHELD:
            return value
        if conversion is not None and isinstance(value, CONTAINERS):
            value = self._redacted(value)  # before !r/!s/!a turns it into text
        return super().convert_field(value, conversion)

    def _redacted(self, value: Any) -> Any:
        """The redacted copy of a container if it held a secret, else the container itself (a
        tuple stays a tuple in the text)."""
        redacted = self._redactor.value(value)
        return redacted if REDACTED in repr(redacted) else value

    def format_field(self, value: Any, format_spec: str) -> Any:
        if value is _WITHHELD:
            return REDACTED
        if isinstance(value, CONTAINERS):
            value = self._redacted(value)
        return super().format_field(value, format_spec)


def _free_name(name: str, attrs: Container[str], taken: Container[str]) -> str:
    """``name``, or ``name_2``, ``name_3``...: the first in neither ``attrs`` nor ``taken``."""
    if name not in attrs and name not in taken:
        return name
    number = 2
    while f"{name}_{number}" in attrs or f"{name}_{number}" in taken:
        number += 1
    return f"{name}_{number}"


class _Shown(str):
    """Text shown as it is by ``repr`` (an argument already written as a repr)."""

    def __repr__(self) -> str:
        return str(self)


def safe_repr(value: Any) -> str:
    """``repr(value)``, or a placeholder naming its type when that raises: never raises."""
    try:
        return repr(value)
    except Exception:  # noqa: BLE001
        return f"<unrepresentable {type(value).__qualname__} object>"


def unrenderable(value: Any) -> str:
    """What is written for a value that could not be rendered."""
    # The type only: the repr of a value that failed may be what failed, or hold a secret.
    return f"<unrenderable {type(value).__qualname__} value>"


def _text_of(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a value whose __str__ raises was not formatted either
        return ""


#: What the walk enters.
CONTAINERS: Final = (dict, list, tuple, set, frozenset, collections.deque)
_CONTAINERS = CONTAINERS
#: What the walks step into: containers, and enum members (JSON writes their value; the
#: check of ``%`` arguments too: their repr shows it). Leaves are told apart first by one set
#: lookup in :data:`_SCALARS`.
WALKED: Final = (*CONTAINERS, enum.Enum)
_PAIR_KEYS: Final = (str, bytes, enum.Enum)


# -- URLs -----------------------------------------------------------------------------------------

#: Query parameters whose values are redacted besides the redaction keys: the defaults of
#: OpenTelemetry's semantic conventions for ``url.query`` (signed-URL signatures and keys).
#: ``X-Amz-*`` (AWS SigV4 presigned URLs: credential, signature, security token) is matched as a
#: prefix.
URL_QUERY_KEYS: Final = frozenset(
    {
        "aws_access_key_id",
        "awsaccesskeyid",  # the same, written in lower case
        "signature",
        "sig",
        "x_goog_signature",
        "x_goog_credential",
    }
)
_URL_QUERY_PREFIXES: Final = ("x_amz_",)

# ://user:pass@  The user-info ends at the LAST "@" before any "/", "?", "#" or space: a client
# splits the authority there (as urllib does), so a password holding an unencoded "@" is masked
# whole, and so is one holding a quote, "<", ">" or a backslash (urllib takes them too). So text
# such as ``"https://h","owner":"a@b"`` is masked as user-info: more is hidden, never less. One
# pass from each "://" to the end of its authority: linear.
_USERINFO: Final = re.compile(r"://[^/?#\s]*@")
_USERINFO_MASK: Final = "://" + REDACTED + "@"
# name=value pairs, found from their "=": the name is the run of name characters before it, so
# query strings without their "?" (``url.query``, form bodies, ``page=2&api_key=...``), fragments
# (``#access_token=``) and ``token=...`` in plain text are covered. The regex runs on the REVERSED
# text: it then starts with the literal "=" (which the engine searches for fast) and takes the
# name greedily; forwards, a regex starting with a character class is tried at every position.
# One pass: linear. The value ends at "&", "#", "?", ";", whitespace, a quote, or the
# truncation mark's "…" (a URL as a value: its own query is judged pair by pair).
_NAME_CHARS: Final = "[^=&#?;,\\s\"'<>\\\\(){}]+"  # brackets kept: token[]=, auth[token]=
_BRACKETED: Final = re.compile(r"[^\[\]]+")
_REVERSED_PAIR: Final = re.compile("=(" + _NAME_CHARS + ")")
# A quoted value: an optional string prefix (b'', r'', u'', f'' and their pairs), then a quote,
# perhaps escaped (\" inside JSON text or a repr).
_QUOTED: Final = re.compile(r"""[bBrRuUfF]{0,2}(\\?)(['"])""")


def _closing(text: str, start: int, escape: str, quote: str) -> int:
    """Where the quoted value starting at ``start`` ends: its closing quote (escaped the same
    way as the opening one), skipping quotes escaped inside it; the value's end when there is
    none."""
    closer = escape + quote
    position = start
    while True:
        found = text.find(closer, position)
        if found < 0:
            return _VALUE.match(text, start).end()  # type: ignore[union-attr]
        if escape or not _escaped(text, found, start):
            return found
        position = found + 1


def _escaped(text: str, index: int, start: int) -> bool:
    """Whether the character at ``index`` follows an odd run of backslashes (after ``start``)."""
    run = 0
    while index - run - 1 >= start and text[index - run - 1] == "\\":
        run += 1
    return run % 2 == 1


_VALUE: Final = re.compile("[^&#?;\\s\"'<>\\\\…]*")
# The same on a serialised line (reversed too), to tell whether it needs the slow walk at all.
# In a JSON line a quote or backslash of the text is escaped (\" \\ \u0001): a bare quote ends
# the JSON string the URL is in.
_LINE_USERINFO: Final = re.compile(rb'://(?:[^/?#\s"\\]|\\.)*@')
_LINE_REVERSED_PAIR: Final = re.compile(b"=(" + _NAME_CHARS.encode() + b")")
_EQUALS, _QUESTION, _AT, _SLASH = b"=?@/"


def line_may_hold_url_secrets(line: bytes) -> bool:
    """The cheap pre-check: a ``name=value`` pair needs ``=``, user-info ``/`` and ``@``.

    Three byte searches at most (an int searched in bytes is one ``memchr``); an ordinary line
    has neither ``=`` nor ``@`` and costs two.
    """
    return _EQUALS in line or (_AT in line and _SLASH in line)


class UrlScrubber:
    """Replaces user-info and the values of sensitive query parameters in text.

    Args:
        redactor: its key policy decides which query parameters are sensitive (its keys plus
            :data:`URL_QUERY_KEYS`); parameter decisions are cached.
    """

    __slots__ = ("_cache", "_redactor")

    def __init__(self, redactor: Redactor | None = None) -> None:
        self._redactor = redactor if redactor is not None else Redactor()
        self._cache: dict[str | bytes, bool] = {}

    def sensitive_param(self, name: str | bytes) -> bool:
        """Whether the value of the query parameter ``name`` is redacted."""
        if len(name) > _MAX_PARAM_NAME:
            # Not a parameter's name (base64 before its "=" padding, a hostile path): judged
            # by its length alone, neither normalised (a regex pass) nor kept in the cache.
            return False
        decision = self._cache.get(name)
        if decision is None:
            text = name.decode("latin-1") if isinstance(name, bytes) else name
            text = unquote_plus(text)
            normal = normalise(text)
            decision = (
                normal in URL_QUERY_KEYS
                or normal.startswith(_URL_QUERY_PREFIXES)
                or self._redactor.is_secret(text)
            )
            if not decision and "[" in text:  # token[]=, auth[token]=: each part judged
                decision = any(self.sensitive_param(p) for p in _BRACKETED.findall(text))
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[name] = decision
        return decision

    def text(self, text: str) -> str:
        """``text`` with user-info and sensitive ``name=value`` values replaced by
        :data:`REDACTED`."""
        if "@" in text:
            text = _USERINFO.sub(_USERINFO_MASK, text)
        if "=" in text:
            text = self._pairs(text)
        return text

    def _pairs(self, text: str) -> str:
        last = len(text) - 1
        sensitive = self.sensitive_param
        starts = [
            last - m.start() + 1  # where the value starts: after the "="
            for m in _REVERSED_PAIR.finditer(text[::-1])
            if sensitive(m[1][::-1])
        ]
        if not starts:
            return text
        parts: list[str] = []
        done = 0
        for at in reversed(starts):  # in text order
            if at < done:  # inside a value replaced already
                continue
            start = at
            quoted = _QUOTED.match(text, start)
            if quoted is not None:  # password='...', b'...', \"...\": the quoted text, quotes kept
                start = quoted.end()
                end = _closing(text, start, quoted[1], quoted[2])
            else:
                end = _VALUE.match(text, start).end()  # type: ignore[union-attr]
            parts += (text[done:start], REDACTED)
            done = end
        parts.append(text[done:])
        return "".join(parts)

    def line_needs_scrubbing(self, line: bytes) -> bool:
        """Whether a serialised line holds user-info or a sensitive ``name=value`` pair (callers
        run :func:`line_may_hold_url_secrets` first)."""
        if _AT in line and _LINE_USERINFO.search(line):
            return True
        if _EQUALS in line:
            sensitive = self.sensitive_param
            return any(sensitive(m[1][::-1]) for m in _LINE_REVERSED_PAIR.finditer(line[::-1]))
        return False

    def value(self, value: Any) -> Any:
        """A copy of a JSON value (as ``orjson.loads`` returns it) with its text scrubbed, keys
        included (a URL used as a dict key)."""
        if isinstance(value, str):
            return self.text(value) if "=" in value or "@" in value else value
        if isinstance(value, dict):
            text, walk = self.text, self.value
            return {
                (text(k) if type(k) is str and ("=" in k or "@" in k) else k): (
                    (text(v) if "=" in v or "@" in v else v)
                    if type(v) is str
                    else walk(v)
                    if isinstance(v, (dict, list, tuple))
                    else v
                )
                for k, v in value.items()
            }
        if isinstance(value, (list, tuple)):
            walk = self.value
            copy = [walk(v) if isinstance(v, (str, dict, list, tuple)) else v for v in value]
            return copy if isinstance(value, list) else tuple(copy)
        return value


_MASKER = UrlScrubber()


def mask_url(url: Any) -> Any:
    """``url`` with its user-info (``user:password@``) and secret query values masked, for
    printing; anything that is not a string is returned as it is.

    One URL (text without whitespace) is masked up to its last ``@``, since a password with an
    unencoded ``/``, ``#`` or ``?`` (a base64 token) would otherwise end the user-info early;
    so is a URL mistyped (``http:/u:p@h``, ``https//u:p@h``, ``u:p@h``): the part after the last
    ``/`` before that ``@``, or all of it, is the user-info a client would have sent.
    """
    if not isinstance(url, str):
        return url
    if any(c.isspace() for c in url.strip()):  # not one URL: each part that holds an "@"
        url = _WORD_WITH_AT.sub(lambda m: _masked_word(m[0]), url)
    else:
        url = _masked_word(url)
    return _MASKER.text(url)


_WORD_WITH_AT: Final = re.compile(r"[^\s@]*@\S*")


def _masked_word(url: str) -> str:
    parts = _userinfo(url)
    return url if parts is None else f"{parts[0]}{REDACTED}@{parts[2]}"


def url_secret(url: Any) -> str | None:
    """The text of ``url`` that :func:`mask_url` hides as user-info (to take out of error
    messages that quote the URL), or None."""
    if not isinstance(url, str):
        return None
    parts = _userinfo(url)
    return parts[1] if parts is not None else None


def _userinfo(url: str) -> tuple[str, str, str] | None:
    """``(before, user-info, after)`` of one URL, typed right or not; None without user-info."""
    text = url.strip()
    if "@" not in text or any(c.isspace() for c in text):
        return None
    head, _, host = text.rpartition("@")
    sep = head.find("://")
    if sep >= 0:
        kept = head[: sep + 3]
    elif ":" in head or "/" in head:
        kept = head[: head.rfind("/") + 1]  # http:/u:p, https//u:p, //u:p, or nothing
    else:
        return None  # user@host, an address: no password in it
    secret = head[len(kept) :]
    return (kept, secret, host) if secret else None


def scrub_text(text: str) -> str:
    """Text (an error message, a repr) with URL credentials masked (the default key policy)."""
    return _MASKER.text(text)
