"""The sandbox as tests and drills use it from Python: start (or attach to) one, point clients at it, inject faults.

    with Sandbox.start(tmp_path, cdk_json=Path("cdk.json")) as sandbox:
        s3 = sandbox.client("s3", "us-east-1")
        sandbox.seed(patients=10)
        sandbox.faults.region_down("us-east-1")
        subprocess.run(["drctl", ...], env={**os.environ, **sandbox.env})

`Sandbox.start` runs the endpoint in a thread of this process (one per process: moto's state is global);
`Sandbox.attach` talks to one that `drctl sandbox up` started in the background. Both give the same API, because
everything but starting goes through the endpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.runbooks.heartbeat import INTERVAL_SECONDS
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology, build_topology
from ehr_dr_sandbox.faults import FaultsClient, control_request
from ehr_dr_sandbox.state import read_state

SANDBOX_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class Sandbox:
    def __init__(self, endpoint_url: str, config: DeploymentConfig, state_dir: Path, server: Any = None):
        self.endpoint_url = endpoint_url
        self.config = config
        self.state_dir = state_dir
        self.faults = FaultsClient(endpoint_url)
        self._server = server

    @classmethod
    def start(cls, state_dir: Path, config: DeploymentConfig | None = None, *, cdk_json: Path = Path("cdk.json"),
              port: int = 0, heartbeat_seconds: float | None = INTERVAL_SECONDS,
              backup_plan_seconds: float | None = None) -> Sandbox:
        """A fresh, provisioned sandbox in this process; `config` defaults to `cdk_json`'s, in the sandbox account.
        It writes the heartbeat every `heartbeat_seconds` in the writing region (as AWS's schedule, every minute), and
        plays an hour of the backup plans' schedule every `backup_plan_seconds` (None: never; `backup_plans.py`)."""
        from ehr_dr_sandbox.provision import sandbox_config
        from ehr_dr_sandbox.server import start_in_thread

        config = config or sandbox_config(cdk_json)
        server = start_in_thread(config, state_dir, port, heartbeat_seconds, backup_plan_seconds)
        return cls(server.context.endpoint_url, config, state_dir, server)

    @classmethod
    def attach(cls, state_dir: Path) -> Sandbox:
        """The sandbox `drctl sandbox up` started with this state dir."""
        from ehr_dr_sandbox.provision import sandbox_config

        state = read_state(state_dir)
        if state is None:
            raise FileNotFoundError(f"no sandbox is up in {state_dir} (run: drctl sandbox up)")
        return cls(state.endpoint_url, sandbox_config(Path(state.cdk_json)), state_dir)

    @property
    def topology(self) -> Topology:
        return build_topology(self.config)

    @property
    def env(self) -> dict[str, str]:
        """The variables that point the AWS SDKs, the CLI and drctl at this sandbox."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            **SANDBOX_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.config.primary_region,
            "EHR_DR_ENV": self.config.env_name,
        }

    def client(self, service: str, region: str | None = None, **config: Any) -> Any:
        """A boto3 client of this sandbox; `config` goes to botocore's `Config` (e.g. `retries=`)."""
        return boto3.client(
            service, region_name=region or self.config.primary_region, endpoint_url=self.endpoint_url,
            aws_access_key_id=SANDBOX_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=SANDBOX_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(**config) if config else None,
        )

    def status(self) -> dict[str, Any]:
        return control_request(self.endpoint_url, "status")

    def role_credentials(self, role: str, service: str = "lambda.amazonaws.com") -> dict[str, str]:
        """Credentials of one of the stacks' roles as `service` gets them (Lambda runs a function under its execution
        role): every call with them is authorized against the role's policies."""
        return self.action("assume-service-role", role=role, service=service)

    def role_session(self, role: str, service: str = "lambda.amazonaws.com") -> AwsSession:
        """An `AwsSession` on `role_credentials(role, service)`: a function's steps run with it as on Lambda."""
        return AwsSession.from_credentials(self.role_credentials(role, service), endpoint_url=self.endpoint_url)

    def action(self, name: str, **arguments: Any) -> Any:
        return control_request(self.endpoint_url, f"actions/{name}", arguments)

    def seed(self, patients: int = 1000, files_per_patient: int = 5) -> Any:
        from ehr_dr_sandbox.seed import seed

        return seed(self, patients=patients, files_per_patient=files_per_patient)

    def stop(self) -> None:
        """Stop a sandbox this process started (an attached one is stopped with `drctl sandbox down`)."""
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
