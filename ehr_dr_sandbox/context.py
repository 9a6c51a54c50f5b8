"""What an emulation gets when it is installed: the estate's config and names, moto's state, and a place to clean up.

Emulations run in the sandbox server's process (where moto's backends live), so they read and change moto's state
directly through `backend()` instead of calling the endpoint (a call through the endpoint would pass the guards and
observers again: a replica written that way would be replicated back). An emulation that writes a new S3 object
version directly (a restore, the seed) announces it with `new_version()`, so replication treats it as any write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moto.backends import get_backend

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.runbooks.heartbeat import INTERVAL_SECONDS
from dr_runbooks.topology import Topology, build_topology


@dataclass
class SandboxContext:
    config: DeploymentConfig
    state_dir: Path
    endpoint_url: str = ""
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("ehr_dr_sandbox"))
    #: Regions whose endpoints are dark (the faults emulation sets it; traffic health checks read it).
    down_regions: set[str] = field(default_factory=set)
    #: Seconds between heartbeats (`heartbeat.py`): AWS's schedule beats every minute; None: no heartbeat.
    heartbeat_seconds: float | None = INTERVAL_SECONDS
    #: Seconds that stand for one hour of the backup plans' schedule (`backup_plans.py`); None: the plans never run.
    backup_plan_seconds: float | None = None
    _ready: list[Callable[[], None]] = field(default_factory=list)
    _stoppers: list[Callable[[], None]] = field(default_factory=list)
    _version_listeners: list[Callable[[str, str, str], None]] = field(default_factory=list)

    @property
    def topology(self) -> Topology:
        return build_topology(self.config)

    @property
    def cdk_context(self) -> dict[str, Any]:
        """The CDK context that deploys this sandbox's config (the stacks' IAM is read from its synth)."""
        from ehr_dr_sandbox.deployed_iam import synth_context

        return synth_context(self.config)

    def backend(self, service: str, region: str) -> Any:
        """moto's backend of `service` in `region` for the sandbox account, e.g. `backend("s3", "us-east-1")`.

        Global services (S3, Route 53, IAM) have one backend under the partition name ("aws"): any region gives it.
        """
        backend_dict = get_backend(service)  # type: ignore[call-overload]
        global_service = not backend_dict._use_boto3_regions
        return backend_dict[self.config.account]["aws" if global_service else region]

    def on_stop(self, stopper: Callable[[], None]) -> None:
        """Run `stopper` when the sandbox stops (last registered runs first): threads, processes, temp files."""
        self._stoppers.append(stopper)

    def on_ready(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the estate is provisioned and the endpoint serves (what needs the estate to exist)."""
        self._ready.append(callback)

    def ready(self) -> None:
        for callback in self._ready:
            callback()

    def on_new_version(self, listener: Callable[[str, str, str], None]) -> None:
        """Hear of object versions an emulation wrote into moto's S3 directly (bucket, key, version id)."""
        self._version_listeners.append(listener)

    def new_version(self, bucket: str, key: str, version_id: str) -> None:
        """Announce a version written directly into moto's S3 (no observer saw it): replication picks it up."""
        for listener in self._version_listeners:
            listener(bucket, key, version_id)

    def stop(self) -> None:
        while self._stoppers:
            stopper = self._stoppers.pop()
            try:
                stopper()
            except Exception:
                self.log.exception("sandbox: a stop hook failed")
