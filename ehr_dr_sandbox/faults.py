"""Fault injection: rehearse an outage against the sandbox (a dark region, throttled APIs).

Server side, `install` registers a guard that runs before anything else on every request and the actions that set the
faults; client side, `FaultsClient` sets them through the control API, from a test or from `drctl sandbox fault`:

- **region down**: every request signed for that region is dropped without an answer (the connection closes), which
  is what a client sees when a regional endpoint is dark: botocore raises a connection error after its retries, at
  once, with no timeout to wait for. With `hang`, the region is black-holed instead: the connection is accepted and
  nothing is answered (for `HANG_LIMIT_SECONDS`, or until the region is up again), so only the client's own read
  timeout ends the call, which is how an outage that drops packets looks from outside (AWS's "Timeouts and retries
  for latency-sensitive applications", Builders' Library: a client without timeouts waits forever). Global data
  planes the runbooks may use (Route 53 signs for us-east-1) go dark with us-east-1, as they would for a client
  whose only path is through that region's endpoint.
- **throttle**: the next `calls` calls of a service, or `percent` % of them, get AWS's throttling error in the shape of
  the service's protocol (`Throttling`, S3 `SlowDown` 503, EC2 `RequestLimitExceeded`), which botocore's retry modes
  recognise and retry.

Other emulations register their own faults as actions (`replication-pause`, sandbox-db's `kill-primary-db`);
`FaultsClient.action(name, **arguments)` runs any of them.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from ehr_dr_sandbox.context import SandboxContext
from ehr_dr_sandbox.dispatch import DROP, Call, Registry, Reply

CONTROL_PREFIX = "/_sandbox"

#: The throttling error of each protocol, as AWS sends it and botocore's retry handler recognises it.
_THROTTLE_ERRORS = {
    "s3": ("SlowDown", 503),
    "ec2": ("RequestLimitExceeded", 503),
    "json": ("ThrottlingException", 400),
    "rest-json": ("ThrottlingException", 429),
}


@dataclass
class Throttle:
    calls: int | None = None
    percent: float = 0.0

    def hit(self) -> bool:
        if self.calls is not None:
            if self.calls <= 0:
                return False
            self.calls -= 1
            return True
        return random.random() * 100 < self.percent


#: How long a black-holed region holds a request before closing it (a client's read timeout should end it first).
HANG_LIMIT_SECONDS = 300


@dataclass
class FaultState:
    down_regions: set[str] = field(default_factory=set)
    #: The down regions that hang (accept and never answer) rather than close connections.
    hanging_regions: set[str] = field(default_factory=set)
    throttles: dict[str, Throttle] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def verdict(self, call: Call) -> Reply | object | None:
        with self.lock:
            hangs = call.region in self.hanging_regions
            if call.region in self.down_regions and not hangs:
                return DROP
        if hangs:
            self._hang(call.region)
            return DROP
        with self.lock:
            throttle = self.throttles.get(call.service)
            throttled = throttle is not None and throttle.hit()
        if not throttled:
            return None
        code, status = _THROTTLE_ERRORS.get(call.service, _THROTTLE_ERRORS.get(call.protocol, ("Throttling", 400)))
        return Reply.error(call, code, "Rate exceeded (sandbox fault)", status)

    def _hang(self, region: str) -> None:
        """Hold the request (its server thread) while `region` stays black-holed, at most `HANG_LIMIT_SECONDS`."""
        deadline = time.monotonic() + HANG_LIMIT_SECONDS
        while time.monotonic() < deadline:
            with self.lock:
                if region not in self.hanging_regions:
                    return
            time.sleep(0.2)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "down_regions": sorted(self.down_regions),
                "hanging_regions": sorted(self.hanging_regions),
                "throttles": {name: vars(t) for name, t in self.throttles.items() if t.calls != 0},
            }


def install(registry: Registry, context: SandboxContext) -> None:
    state = FaultState(down_regions=context.down_regions)
    regions = set(context.config.regions)

    def region_of(arguments: dict[str, Any]) -> str:
        region = arguments.get("region")
        if region not in regions:
            raise ValueError(f"region {region!r} is not one of this sandbox's regions ({', '.join(sorted(regions))})")
        return region

    registry.guard(state.verdict)

    @registry.action("region-down")
    def region_down(arguments: dict[str, Any]) -> dict[str, Any]:
        region = region_of(arguments)
        with state.lock:
            state.down_regions.add(region)
            if arguments.get("hang"):
                state.hanging_regions.add(region)
            else:
                state.hanging_regions.discard(region)
        return state.snapshot()

    @registry.action("region-up")
    def region_up(arguments: dict[str, Any]) -> dict[str, Any]:
        region = region_of(arguments)
        with state.lock:
            state.down_regions.discard(region)
            state.hanging_regions.discard(region)
        return state.snapshot()

    @registry.action("throttle")
    def throttle(arguments: dict[str, Any]) -> dict[str, Any]:
        service, calls, percent = arguments.get("service"), arguments.get("calls"), arguments.get("percent")
        if not service or (calls is None) == (percent is None):
            raise ValueError("throttle needs a service and exactly one of calls (the next N) or percent (0-100)")
        if percent is not None and not 0 <= float(percent) <= 100:
            raise ValueError(f"throttle percent must be 0-100 (got {percent})")
        with state.lock:
            state.throttles[service] = Throttle(int(calls) if calls is not None else None, float(percent or 0))
        return state.snapshot()

    @registry.action("clear")
    def clear(arguments: dict[str, Any]) -> dict[str, Any]:
        with state.lock:
            state.down_regions.clear()
            state.hanging_regions.clear()
            state.throttles.clear()
        return state.snapshot()

    registry.report("faults")(state.snapshot)


class SandboxControlError(RuntimeError):
    """The sandbox refused a control request (an unknown action, a bad argument): the message says why."""


class FaultsClient:
    """Set the sandbox's faults from a test, a drill or the CLI, through the control API of its endpoint."""

    def __init__(self, endpoint_url: str):
        self.endpoint_url = endpoint_url.rstrip("/")

    def action(self, name: str, **arguments: Any) -> Any:
        return control_request(self.endpoint_url, f"actions/{name}", arguments)

    def region_down(self, region: str, hang: bool = False) -> Any:
        return self.action("region-down", region=region, hang=hang)

    def region_up(self, region: str) -> Any:
        return self.action("region-up", region=region)

    def throttle(self, service: str, *, calls: int | None = None, percent: float | None = None) -> Any:
        return self.action("throttle", service=service, calls=calls, percent=percent)

    def pause_replication(self) -> Any:
        return self.action("replication-pause")

    def resume_replication(self) -> Any:
        return self.action("replication-resume")

    def clear(self) -> Any:
        return self.action("clear")


def control_request(endpoint_url: str, path: str, body: dict[str, Any] | None = None, timeout: float = 300) -> Any:
    """GET (no body) or POST a JSON document to the control API; its error message becomes the exception's."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{endpoint_url.rstrip('/')}{CONTROL_PREFIX}/{path}", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        detail = json.loads(error.read() or b"{}").get("error", error.reason)
        raise SandboxControlError(detail) from None
