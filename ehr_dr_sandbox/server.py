"""The sandbox endpoint: moto's server app behind the dispatch seam, one HTTP port for both regions.

`SandboxServer` runs it in a thread of the current process (the pytest fixture: fast, no process to spawn);
`python -m ehr_dr_sandbox.server` runs it as the background process of `drctl sandbox up`, which writes the
state file once it listens and removes it when it stops (SIGTERM, SIGINT or `POST /_sandbox/shutdown`).

moto keeps its state in module globals, so one process holds at most one sandbox at a time: a second `start()` is
refused instead of silently sharing state. Each start resets moto, so every sandbox begins empty.

Besides AWS, the endpoint answers the sandbox's control API under `/_sandbox/`: `GET status` (the reports of every
emulation) and `POST actions/<name>` (faults and other named actions, JSON arguments in, JSON result out).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from moto.moto_api._internal import moto_api_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import BaseWSGIServer, make_server

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.runbooks.heartbeat import INTERVAL_SECONDS
from ehr_dr_sandbox.context import SandboxContext
from ehr_dr_sandbox.dispatch import DispatchMiddleware, Registry, WSGIApp
from ehr_dr_sandbox.faults import CONTROL_PREFIX
from ehr_dr_sandbox.state import SandboxState, read_state, state_file, write_state

#: The emulations installed into every sandbox, in order (each module has `install(registry, context)`, and may have
#: `remove_leftovers(state_dir) -> bool` for what outlives a killed server). Guards run in this order, faults first.
EMULATIONS = (
    "ehr_dr_sandbox.faults",
    "ehr_dr_sandbox.iam_enforcement",
    "ehr_dr_sandbox.s3_replication",
    "ehr_dr_sandbox.object_lock",
    "ehr_dr_sandbox.traffic",
    "ehr_dr_sandbox.records_db",
    "ehr_dr_sandbox.seed",
    "ehr_dr_sandbox.heartbeat",
)

_one_per_process = threading.Lock()
#: The stacks attach AWS managed policies (AWS Backup's service role policies, AdministratorAccess): moto knows them
#: only when asked to load them.
os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
#: The endpoint's request log is werkzeug's INFO; keep it out of test output and the server log.
logging.getLogger("werkzeug").setLevel(logging.WARNING)


class _Dispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering which backend serves a host: moto scans its package directory for every
    request otherwise (a third of a PutObject's server time)."""

    def __init__(self) -> None:
        super().__init__(create_backend_app)
        self._backend_for_host: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        if host not in self._backend_for_host:
            self._backend_for_host[host] = super().get_backend_for_host(host)
        return self._backend_for_host[host]


class SandboxServer:
    """The endpoint in a thread: `start()` listens (port 0 picks a free one), `stop()` undoes everything."""

    def __init__(self, context: SandboxContext, host: str = "127.0.0.1", port: int = 0):
        self.context = context
        self.registry = Registry()
        self._host, self._port = host, port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.stopped = threading.Event()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() first"
        return self._server.server_address[1]

    def start(self, prepare: Callable[[SandboxContext], None] | None = None) -> SandboxServer:
        """Listen and serve, install the emulations, and meanwhile run `prepare` (provisioning) in a thread.

        The two overlap because the slow part of installing is the PostgreSQL pair's initdb and base backup, which
        run as subprocesses while provisioning keeps this process busy. So an emulation's `install` must not rely on
        the provisioned estate (read it lazily, when a request comes), and its handlers see provisioning's calls
        only once registered. Any failure stops everything before it is raised.
        """
        if not _one_per_process.acquire(blocking=False):
            raise RuntimeError("a sandbox is already running in this process (moto's state is per process)")
        try:
            self._server = make_server(
                self._host, self._port, self.app(), threaded=True, request_handler=MotoRequestHandler
            )
        except OSError as error:
            _one_per_process.release()
            raise OSError(f"cannot listen on {self._host}:{self._port}: {error.strerror or error}") from None
        self.context.endpoint_url = f"http://{self._host}:{self.port}"
        moto_api_backend.reset()
        self._thread = threading.Thread(target=self._server.serve_forever, name="sandbox-endpoint", daemon=True)
        self._thread.start()
        try:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sandbox-prepare") as pool:
                prepared = pool.submit(prepare, self.context) if prepare else None
                for name in EMULATIONS:
                    importlib.import_module(name).install(self.registry, self.context)
                if prepared:
                    prepared.result()
            self.context.ready()
        except BaseException:
            self.stop()
            raise
        return self

    def app(self) -> WSGIApp:
        return _ControlApp(DispatchMiddleware(_Dispatcher(), self.registry), self)

    def status(self) -> dict[str, Any]:
        reports = {name: report() for name, report in self.registry.reports.items()}
        return {"endpoint_url": self.context.endpoint_url, "pid": os.getpid(), "env_name": self.context.config.env_name,
                "regions": list(self.context.config.regions), "actions": sorted(self.registry.actions), **reports}

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        if self._thread:
            self._thread.join()
        self._server.server_close()
        self._server = None
        self.context.stop()
        moto_api_backend.reset()
        _one_per_process.release()
        self.stopped.set()


class _ControlApp:
    """`/_sandbox/...` answered here; everything else goes to the AWS side."""

    def __init__(self, aws: WSGIApp, server: SandboxServer):
        self.aws, self.server = aws, server

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path: str = environ.get("PATH_INFO", "")
        if not path.startswith(CONTROL_PREFIX + "/"):
            return self.aws(environ, start_response)
        route = path.removeprefix(CONTROL_PREFIX + "/")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        arguments = json.loads(environ["wsgi.input"].read(length) or b"{}") if length else {}
        try:
            if route == "status":
                status, result = 200, self.server.status()
            elif route.startswith("actions/"):
                name = route.removeprefix("actions/")
                status, result = 200, self.server.registry.run_action(name, arguments)
            elif route == "shutdown":
                threading.Thread(target=self.server.stop, daemon=True).start()
                status, result = 202, {"stopping": True}
            else:
                status, result = 404, {"error": f"no sandbox control route {route!r}"}
        except (KeyError, ValueError) as error:
            status, result = 400, {"error": str(error.args[0] if error.args else error)}
        body = json.dumps(result, default=str).encode()
        start_response(f"{status} Sandbox", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]


def remove_leftovers(state_dir: Path) -> list[str]:
    """What a killed server's emulations left running or on disk, removed by each emulation's own
    `remove_leftovers(state_dir)`; the emulations that found something."""
    removed = []
    for name in EMULATIONS:
        cleaner = getattr(importlib.import_module(name), "remove_leftovers", None)
        if cleaner is not None and cleaner(state_dir):
            removed.append(name)
    return removed


def start_in_thread(config: DeploymentConfig, state_dir: Path, port: int = 0,
                    heartbeat_seconds: float | None = INTERVAL_SECONDS,
                    backup_plan_seconds: float | None = None) -> SandboxServer:
    """Listen, install the emulations and provision the estate; on any failure leave nothing running.
    `heartbeat_seconds`: how often the sandbox writes the heartbeat in the writing region (None: never);
    `backup_plan_seconds`: the seconds that stand for one hour of the backup plans' schedule (None: they never run)."""
    from ehr_dr_sandbox.provision import provision

    context = SandboxContext(config=config, state_dir=state_dir, heartbeat_seconds=heartbeat_seconds,
                             backup_plan_seconds=backup_plan_seconds)
    return SandboxServer(context, port=port).start(prepare=provision)


def main(argv: list[str] | None = None) -> int:
    """The background process of `drctl sandbox up`: serve until told to stop, then remove the state file.

    Its stdout and stderr are the state dir's log (`drctl sandbox up` opens it); a start that fails ends with one
    `error: ...` line there, which `up` shows.
    """
    parser = argparse.ArgumentParser(prog="python -m ehr_dr_sandbox.server")
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--cdk-json", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--heartbeat-seconds", type=float, default=INTERVAL_SECONDS,
                        help="seconds between heartbeats (0: none)")
    parser.add_argument("--backup-plan-seconds", type=float, default=0,
                        help="seconds that stand for one hour of the backup plans' schedule (0: the plans never run)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from ehr_dr_sandbox.provision import sandbox_config

    try:
        server = start_in_thread(sandbox_config(args.cdk_json), args.state_dir, args.port,
                                 args.heartbeat_seconds or None, args.backup_plan_seconds or None)
    except Exception as error:
        logging.getLogger("ehr_dr_sandbox").debug("start failed", exc_info=True)
        print(f"error: {error}".splitlines()[0], file=sys.stderr, flush=True)
        return 1
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: threading.Thread(target=server.stop, daemon=True).start())
    write_state(
        args.state_dir,
        SandboxState(pid=os.getpid(), endpoint_url=server.context.endpoint_url, port=server.port,
                     cdk_json=str(args.cdk_json), started_at=datetime.now(UTC).isoformat(timespec="seconds")),
    )
    server.stopped.wait()
    current = read_state(args.state_dir)
    if current and current.pid == os.getpid():
        state_file(args.state_dir).unlink()
    return 0


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Everything is stopped and written; skip the interpreter's teardown of moto's state (seconds, for nothing).
    os._exit(code)
