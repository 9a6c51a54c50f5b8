"""The sandbox's seam: which AWS operation a request is, and who answers it instead of (or besides) moto.

Every request to the sandbox endpoint passes through `DispatchMiddleware`, a WSGI wrapper around moto's server app.
It reads the service signing name and the region from the SigV4 credential scope, resolves the botocore operation
name (query/ec2: `Action`; json: `X-Amz-Target`; rest-json/rest-xml: method + requestUri template of botocore's service
model, most specific match wins), and consults a `Registry`:

- **guards** run first, for every request (fault injection: a dark region, throttling). A guard returns `None` to let
  the request through, a `Reply` to answer it, or `DROP` to close the connection without an answer (an outage).
- **intercepts** answer an operation instead of moto, or around it: a handler gets the `Call` and a `forward()` that
  asks moto and returns its `Reply`, so one mechanism serves "moto lacks this API" (never call `forward`) and
  "moto's answer must be rewritten" (call it, change the reply). Several intercepts of one operation nest, first
  registered outermost.
- **observers** run after the operation succeeded (2xx), with the call and the reply (S3 replication enqueues the new
  version named in the reply's headers). They must be quick; an observer that raises is logged, the client still gets
  its reply.
- **reports** are named sections of the sandbox's status (JSON), e.g. the replication backlog.
- **actions** are named operations of the sandbox itself (not AWS), run through the control API (`drctl sandbox fault
  action NAME`), e.g. killing the primary database.

An emulation is a module with an `install(registry, context)` function, listed in `server.EMULATIONS`::

    from ehr_dr_sandbox.dispatch import Call, Forward, Registry, Reply
    from ehr_dr_sandbox.context import SandboxContext
    from ehr_dr_sandbox.emulated_api import answer

    def install(registry: Registry, context: SandboxContext) -> None:
        @registry.intercept("rds", "SwitchoverGlobalCluster")
        def switchover(call: Call, forward: Forward) -> Reply:
            target = call.param("TargetDbClusterIdentifier")          # query protocol: form field
            ...                                                         # drive moto's backend and the PostgreSQL pair
            return answer(call, lambda: {"GlobalCluster": {...}})      # serialized as AWS sends it

        @registry.intercept("rds", "DescribeDBClusters")
        def real_endpoints(call: Call, forward: Forward) -> Reply:
            reply = forward()                                           # moto's answer ...
            return reply.with_body(reply.body.replace(b"<Port>5432</Port>", b"<Port>54321</Port>"))  # ... rewritten

        @registry.observe("s3", "PutObject")
        def enqueue(call: Call, reply: Reply) -> None:
            context.log.info("new version %s of %s", reply.header("x-amz-version-id"), call.uri_params["Key"])

        @registry.report("postgres")
        def pair() -> dict:
            return {"primary": "us-east-1", "port": 54321}

        @registry.action("kill-primary-db")
        def kill(arguments: dict) -> dict:
            ...
            return {"killed": "us-east-1"}

        context.on_stop(lambda: ...)                                    # stop what you started

`context.backend("rds", region)` is moto's backend for the sandbox account (moto's state, in the server's process).
A handler's exception becomes an `InternalFailure` reply naming it, so a bug shows up in the client's error message;
`Reply.error(call, code, message, status)` is an AWS error in the call's protocol (what botocore raises as that code).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import cache, cached_property
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

import botocore.session
from botocore.model import OperationModel, ServiceModel

log = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_CREDENTIAL = re.compile(r"Credential=(?P<key>[^/&]+)/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")
_FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Call:
    """One request, as an AWS operation: who it is for and what it asks."""

    service: str
    region: str
    operation: str | None
    protocol: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    uri_params: dict[str, str] = field(default_factory=dict)
    #: The access key id the request is signed with (who calls: `iam_enforcement.py`).
    access_key: str | None = None

    def param(self, name: str) -> str | None:
        """A query-protocol parameter (form field or query string), e.g. `DBClusterIdentifier`."""
        values = self.query.get(name) or self.form().get(name)
        return values[0] if values else None

    def param_list(self, name: str) -> list[str]:
        """A query-protocol list parameter, in order: `Name.member.1`, `Name.member.2`, ..."""
        values = []
        while (value := self.param(f"{name}.member.{len(values) + 1}")) is not None:
            values.append(value)
        return values

    def form(self) -> dict[str, list[str]]:
        return self._form

    @cached_property
    def _form(self) -> dict[str, list[str]]:
        """The form fields, parsed once (guards, intercepts and IAM read them parameter by parameter)."""
        if not self.headers.get("content-type", "").startswith(_FORM):
            return {}
        return parse_qs(self.body.decode(), keep_blank_values=True)

    def json(self) -> Any:
        """The JSON body of a json/rest-json call ({} when empty)."""
        return json.loads(self.body) if self.body.strip() else {}


@dataclass(frozen=True)
class Reply:
    """An HTTP answer: what moto said, or what a handler says instead."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def with_body(self, body: bytes) -> Reply:
        """The same reply with another body (Content-Length follows)."""
        headers = [(k, v) for k, v in self.headers if k.lower() != "content-length"]
        return replace(self, body=body, headers=[*headers, ("Content-Length", str(len(body)))])

    @classmethod
    def error(cls, call: Call, code: str, message: str, status: int = 400) -> Reply:
        """An AWS error in the shape of the call's protocol, so botocore raises `ClientError` with this code."""
        request_id = str(uuid.uuid4())
        headers = [("x-amzn-RequestId", request_id), ("x-amz-request-id", request_id)]
        if call.protocol in ("json", "rest-json"):
            body = json.dumps({"__type": code, "message": message, "Message": message}).encode()
            headers += [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)]
        elif call.protocol == "ec2":
            body = (
                f"<Response><Errors><Error><Code>{code}</Code><Message>{escape(message)}</Message></Error></Errors>"
                f"<RequestID>{request_id}</RequestID></Response>"
            ).encode()
            headers.append(("Content-Type", "text/xml"))
        elif call.service == "s3":
            body = (
                f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>"
                f"<RequestId>{request_id}</RequestId></Error>"
            ).encode()
            headers.append(("Content-Type", "application/xml"))
        else:  # query and the other rest-xml services (route53)
            body = (
                f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{escape(message)}</Message>"
                f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            ).encode()
            headers.append(("Content-Type", "text/xml"))
        return cls(status, [*headers, ("Content-Length", str(len(body)))], body)


class _Drop:
    """The guard verdict "close the connection, answer nothing": what a client sees of a dark region."""


DROP = _Drop()

Forward = Callable[[], Reply]
Intercept = Callable[[Call, Forward], Reply]
Observer = Callable[[Call, Reply], None]
Guard = Callable[[Call], "Reply | _Drop | None"]
Action = Callable[[dict[str, Any]], Any]


class Registry:
    """Who answers what: guards, intercepts, observers and named actions (see the module docstring)."""

    def __init__(self) -> None:
        self.guards: list[Guard] = []
        self.intercepts: dict[tuple[str, str], list[Intercept]] = {}
        self.observers: dict[tuple[str, str], list[Observer]] = {}
        self.actions: dict[str, Action] = {}
        self.reports: dict[str, Callable[[], Any]] = {}

    def guard(self, handler: Guard) -> Guard:
        self.guards.append(handler)
        return handler

    def intercept(self, service: str, operation: str) -> Callable[[Intercept], Intercept]:
        def register(handler: Intercept) -> Intercept:
            self.intercepts.setdefault((service, operation), []).append(handler)
            return handler

        return register

    def observe(self, service: str, operation: str) -> Callable[[Observer], Observer]:
        def register(handler: Observer) -> Observer:
            self.observers.setdefault((service, operation), []).append(handler)
            return handler

        return register

    def action(self, name: str) -> Callable[[Action], Action]:
        def register(handler: Action) -> Action:
            if name in self.actions:
                raise ValueError(f"sandbox action {name!r} is registered twice")
            self.actions[name] = handler
            return handler

        return register

    def report(self, name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
        """A section of `drctl sandbox status` (JSON-able), e.g. the active faults or the replication backlog."""

        def register(handler: Callable[[], Any]) -> Callable[[], Any]:
            self.reports[name] = handler
            return handler

        return register

    def run_action(self, name: str, arguments: dict[str, Any]) -> Any:
        try:
            handler = self.actions[name]
        except KeyError:
            raise KeyError(f"no sandbox action {name!r} (known: {', '.join(sorted(self.actions)) or 'none'})") from None
        return handler(arguments)


# ---------------------------------------------------------------------------------------------- operation resolution


@cache
def _service_model(signing_name: str) -> ServiceModel | None:
    """botocore's model of the service; rest services (the only ones resolved from it) sign with their own name."""
    try:
        return botocore.session.get_session().get_service_model(signing_name)
    except botocore.exceptions.UnknownServiceError:
        return None


@dataclass(frozen=True)
class _Route:
    operation: str
    method: str
    pattern: re.Pattern[str]
    literal_query: tuple[tuple[str, str | None], ...]
    required_query: tuple[str, ...]
    required_headers: tuple[str, ...]
    specificity: tuple[int, int]


def _route(operation: OperationModel) -> _Route:
    uri = operation.http["requestUri"]
    path, _, query = uri.partition("?")
    regex = ""
    for literal, name, greedy in re.findall(r"([^{]*)(?:\{([^}+]+)(\+)?\})?", path):
        regex += re.escape(literal)
        if name:
            group = re.sub(r"\W", "_", name)
            regex += f"(?P<{group}>{'.+' if greedy else '[^/]+'})"
    literal_query = tuple(
        (key, value or None) for key, _, value in (part.partition("=") for part in query.split("&") if part)
    )
    shape = operation.input_shape
    required = [shape.members[name] for name in (shape.required_members if shape else [])]
    required_query = tuple(
        m.serialization["name"] for m in required if m.serialization.get("location") == "querystring"
    )
    required_headers = tuple(
        m.serialization["name"].lower() for m in required if m.serialization.get("location") == "header"
    )
    literal_chars = len(re.sub(r"\{[^}]*\}", "", path))
    return _Route(
        operation=operation.name,
        method=operation.http["method"],
        pattern=re.compile(f"^{regex}/?$"),
        literal_query=literal_query,
        required_query=required_query,
        required_headers=required_headers,
        specificity=(len(literal_query) + len(required_query) + len(required_headers), literal_chars),
    )


@cache
def _routes(signing_name: str) -> tuple[_Route, ...]:
    model = _service_model(signing_name)
    if model is None:
        return ()
    return tuple(_route(model.operation_model(name)) for name in model.operation_names)


def resolve_rest(service: str, method: str, path: str, query: dict[str, list[str]],
                 headers: dict[str, str]) -> tuple[str | None, dict[str, str]]:
    """The operation a rest-json/rest-xml request is, and its URI parameters; most specific template wins."""
    best: tuple[tuple[int, int], str, dict[str, str]] | None = None
    for route in _routes(service):
        if route.method != method:
            continue
        match = route.pattern.match(path)
        if not match:
            continue
        if any(key not in query or (value and query[key][0] != value) for key, value in route.literal_query):
            continue
        if any(key not in query for key in route.required_query):
            continue
        if any(key not in headers for key in route.required_headers):
            continue
        if best is None or route.specificity > best[0]:
            params = {name: unquote(value) for name, value in match.groupdict().items()}
            best = (route.specificity, route.operation, params)
    return (best[1], best[2]) if best else (None, {})


def describe(environ: dict[str, Any], body: bytes) -> Call | None:
    """The `Call` a WSGI request is, or None when it is not a SigV4-signed AWS call (moto's own API, a browser, an
    S3 URL presigned with signature version 2, which names no region): those go to moto without guards or handlers."""
    # A header signature, or a presigned URL's (its X-Amz-Credential is URL-encoded in the query string).
    scope = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", "") or unquote(environ.get("QUERY_STRING", "")))
    if not scope:
        return None
    service, region = scope["service"], scope["region"]
    headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items() if key.startswith("HTTP_")}
    if "CONTENT_TYPE" in environ:
        headers["content-type"] = environ["CONTENT_TYPE"]
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "/")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    call = Call(service, region, None, "rest", method, path, query, headers, body, access_key=scope["key"])
    if target := headers.get("x-amz-target"):
        return replace(call, operation=target.rpartition(".")[2], protocol="json")
    if action := call.param("Action"):
        return replace(call, operation=action, protocol="ec2" if service == "ec2" else "query")
    model = _service_model(service)
    operation, params = resolve_rest(service, method, path, query, headers)
    protocol = model.protocol if model else "rest-xml"
    return replace(call, operation=operation, protocol=protocol, uri_params=params)


# ------------------------------------------------------------------------------------------------------ the middleware


class DispatchMiddleware:
    """WSGI: guards, then intercepts around moto, then observers (see the module docstring)."""

    def __init__(self, moto_app: WSGIApp, registry: Registry):
        self.moto_app = moto_app
        self.registry = registry

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = _read_body(environ)
        call = describe(environ, body)
        if call is None:
            return self._send(self._moto(environ, body), start_response)
        for guard in self.registry.guards:
            verdict = guard(call)
            if isinstance(verdict, _Drop):
                return _drop(environ, call, start_response)
            if verdict is not None:
                return self._send(verdict, start_response)
        reply = self._answer(call, environ, body)
        if reply.ok:
            for observer in self.registry.observers.get((call.service, call.operation or ""), []):
                try:
                    observer(call, reply)
                except Exception:
                    log.exception("sandbox observer %s failed on %s %s", observer, call.service, call.operation)
        return self._send(reply, start_response)

    def _answer(self, call: Call, environ: dict[str, Any], body: bytes) -> Reply:
        def forward() -> Reply:
            return self._moto(environ, body)

        for handler in reversed(self.registry.intercepts.get((call.service, call.operation or ""), [])):
            forward = _bind(handler, call, forward)
        try:
            return forward()
        except Exception as error:
            log.exception("sandbox handler failed on %s %s", call.service, call.operation)
            return Reply.error(call, "InternalFailure", f"sandbox: {type(error).__name__}: {error}", 500)

    def _moto(self, environ: dict[str, Any], body: bytes) -> Reply:
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            captured["status"], captured["headers"] = int(status.split()[0]), headers

        fresh = {**environ, "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))}
        fresh.pop("wsgi.input_terminated", None)
        chunks = self.moto_app(fresh, start_response)
        try:
            content = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()
        return Reply(captured["status"], list(captured["headers"]), content)

    @staticmethod
    def _send(reply: Reply, start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Always with a Content-Length: the server keeps connections alive, so the length ends the answer."""
        headers = reply.headers
        if reply.header("content-length") is None:
            headers = [*headers, ("Content-Length", str(len(reply.body)))]
        start_response(f"{reply.status} {HTTPStatus(reply.status).phrase}", headers)
        return [reply.body]


def _bind(handler: Intercept, call: Call, forward: Forward) -> Forward:
    return lambda: handler(call, forward)


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):
        return stream.read()
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return stream.read(length) if length else b""


def _drop(environ: dict[str, Any], call: Call, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Close the client's connection without an answer; without a socket (in-process WSGI) answer 503 instead."""
    connection = environ.get("werkzeug.socket")
    if connection is None:
        return DispatchMiddleware._send(
            Reply.error(call, "ServiceUnavailable", f"sandbox: region {call.region} is down", 503), start_response
        )
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
    raise ConnectionAbortedError(f"sandbox: region {call.region} is down")

