"""The state dir of a sandbox started by `drctl sandbox up`: what runs, where, so `status` and `down` can find it.

One JSON file (`sandbox.json`) written by the server process once it listens, plus its log. A state file whose pid is
no longer alive is *stale* (the machine rebooted, the process was killed): `up` refuses it with a one-line error
instead of guessing, and `down` cleans it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil
from pydantic import BaseModel

DEFAULT_STATE_DIR = Path(".ehr-dr/sandbox")
STATE_FILE = "sandbox.json"
LOG_FILE = "server.log"


class SandboxState(BaseModel):
    pid: int
    endpoint_url: str
    port: int
    cdk_json: str
    started_at: str


def state_file(state_dir: Path) -> Path:
    return state_dir / STATE_FILE


def read_state(state_dir: Path) -> SandboxState | None:
    path = state_file(state_dir)
    if not path.exists():
        return None
    return SandboxState.model_validate_json(path.read_text())


def write_state(state_dir: Path, state: SandboxState) -> None:
    """Atomic (write then rename): a reader never sees half a file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    partial = state_dir / f".{STATE_FILE}.{os.getpid()}"
    partial.write_text(json.dumps(state.model_dump(), indent=2))
    partial.replace(state_file(state_dir))


def pid_alive(pid: int) -> bool:
    """Alive and not a zombie (an orphaned server that died may linger as one until someone reaps it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
