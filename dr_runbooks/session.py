"""AWS clients per region from one boto3 session: retries, timeouts, the sandbox endpoint, MFA.

Everything a runbook does goes through `AwsSession.client(service, region)`, so three concerns live in one place:
the usual AWS conventions (profile, `AWS_ENDPOINT_URL` or `--endpoint-url` for the sandbox), botocore's retry
modes for throttling and transient errors (no hand-written loops), and the call recording of the journal. Probes that
must answer while a region is dark (`drctl status`) ask for `probe=True` clients: short connect/read timeouts and few
attempts, so an unreachable region costs seconds, not minutes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.loaders import Loader, create_loader

from dr_runbooks.engine.calls import CallHooks

#: Runbook steps: standard mode retries throttling and transient errors with jittered exponential backoff. (Adaptive
#: mode adds client-side rate limiting, which costs seconds after one throttle: wrong for a handful of runbook calls.)
RUNBOOK_RETRIES = {"mode": "standard", "max_attempts": 10}
#: Status probes: answer fast; a region that does not answer in two short attempts is reported unreachable.
PROBE_RETRIES = {"mode": "standard", "max_attempts": 2}


#: botocore parses each service's JSON model once per loader; a fresh session (the MFA one) would parse them all again,
#: which costs ~0.8 s of a runbook run for its ~10 clients. Every session made here shares this one.
_LOADER: Loader = create_loader()


def boto_session(**arguments: Any) -> boto3.session.Session:
    """A boto3 session (credentials, profile, region as boto3 takes them) sharing the parsed service models."""
    core = botocore.session.Session(profile=arguments.pop("profile_name", None))
    core.register_component("data_loader", _LOADER)
    return boto3.session.Session(botocore_session=core, **arguments)


class MfaRequired(Exception):
    """A command that changes something was asked to run without an MFA session."""


class SessionError(Exception):
    """The credentials could not be turned into an MFA session (wrong code, unknown device, no credentials)."""


@dataclass(frozen=True)
class Identity:
    """Who runs the runbook, for the journal and the evidence."""

    arn: str
    mfa: bool


class AwsSession:
    """Clients per (service, region, probe) from one boto3 session, created once and shared across threads."""

    def __init__(
        self,
        session: boto3.session.Session | None = None,
        endpoint_url: str | None = None,
        endpoint_urls: dict[str, str] | None = None,
        mfa: bool = False,
    ) -> None:
        self.boto = session or boto_session()
        self.endpoint_url = endpoint_url
        #: Per-region endpoint overrides (tests point one region at a dead address to play "region is down").
        self.endpoint_urls = dict(endpoint_urls or {})
        self.mfa = mfa
        self._clients: dict[tuple[str, str, bool], Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_options(
        cls, profile: str | None = None, endpoint_url: str | None = None, region: str | None = None
    ) -> AwsSession:
        """What `drctl` builds from `--profile`/`AWS_PROFILE` and `--endpoint-url`/`AWS_ENDPOINT_URL`."""
        return cls(boto_session(profile_name=profile, region_name=region), endpoint_url=endpoint_url)

    def client(self, service: str, region: str, probe: bool = False) -> Any:
        key = (service, region, probe)
        with self._lock:
            if key not in self._clients:
                self._clients[key] = self._new_client(service, region, probe)
            return self._clients[key]

    def _new_client(self, service: str, region: str, probe: bool) -> Any:
        config = Config(
            retries=PROBE_RETRIES if probe else RUNBOOK_RETRIES,
            connect_timeout=2 if probe else 5,
            read_timeout=3 if probe else 60,
            max_pool_connections=20,
        )
        endpoint = self.endpoint_urls.get(region, self.endpoint_url)
        client = self.boto.client(service, region_name=region, config=config, endpoint_url=endpoint)
        CallHooks(service, region).register(client.meta.events)
        return client

    def with_mfa(self, serial: str, code: str, region: str, role_arn: str | None = None) -> AwsSession:
        """A new session on temporary MFA credentials: a session token, or the role `role_arn` assumed with MFA.

        STS is called in `region` (the one the runbook targets): its regional endpoint keeps working when the other
        region is dark. Only a session built here has `mfa=True`, which the changing commands require.
        """
        sts = self.client("sts", region)
        try:
            if role_arn:
                credentials = sts.assume_role(
                    RoleArn=role_arn, RoleSessionName="drctl", SerialNumber=serial, TokenCode=code,
                    DurationSeconds=3600,
                )["Credentials"]
            else:
                credentials = sts.get_session_token(SerialNumber=serial, TokenCode=code, DurationSeconds=3600)[
                    "Credentials"
                ]
        except (ClientError, BotoCoreError) as error:
            raise SessionError(f"MFA session refused by STS in {region}: {error}") from None
        return AwsSession.from_credentials(credentials, self.endpoint_url, self.endpoint_urls, mfa=True,
                                           region_name=self.boto.region_name)

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any], endpoint_url: str | None = None,
                         endpoint_urls: dict[str, str] | None = None, mfa: bool = False,
                         region_name: str | None = None) -> AwsSession:
        """A session on temporary credentials as STS returns them (`AccessKeyId`, `SecretAccessKey`,
        `SessionToken`): an assumed role's, or those Lambda hands a function."""
        boto = boto_session(aws_access_key_id=credentials["AccessKeyId"],
                            aws_secret_access_key=credentials["SecretAccessKey"],
                            aws_session_token=credentials["SessionToken"], region_name=region_name)
        return cls(boto, endpoint_url, endpoint_urls, mfa=mfa)

    def identity(self, region: str) -> Identity:
        arn = self.client("sts", region).get_caller_identity()["Arn"]
        return Identity(arn=arn, mfa=self.mfa)

    def require_mfa(self, what: str) -> None:
        if not self.mfa:
            raise MfaRequired(
                f"{what} changes the estate and needs an MFA session: give --mfa-serial and --mfa-code "
                "(the sandbox accepts any 6-digit code)"
            )
