"""What every on-call command shares: the AWS options, MFA, output for people or machines, and the exit codes.

Exit codes (documented in `drctl --help` and docs/runbooks.md): 0 done; 1 the runbook ran and failed; 2 refused before
changing anything. Every refusal is one line on stderr (or `{"refused": ...}` with `--output json`), because the reader
is at a prompt at 3 a.m.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
from rich.console import Console

from dr_runbooks.engine.lock import LockHeld
from dr_runbooks.runbooks.estate import Refused
from dr_runbooks.session import AwsSession, MfaRequired, SessionError

EXIT_DONE, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2


@dataclass
class Options:
    env_name: str
    profile: str | None
    endpoint_url: str | None
    output: str

    @property
    def as_json(self) -> bool:
        return self.output == "json"

    def session(self) -> AwsSession:
        return AwsSession.from_options(self.profile, self.endpoint_url)


def aws_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--env, --profile, --endpoint-url, --output; the command receives them as `options`."""

    @click.option("--env", "env_name", envvar="EHR_DR_ENV", required=True, help="environment (or EHR_DR_ENV)")
    @click.option("--profile", envvar="AWS_PROFILE", default=None, help="AWS profile (or AWS_PROFILE)")
    @click.option("--endpoint-url", envvar="AWS_ENDPOINT_URL", default=None,
                  help="one endpoint for every service, e.g. the sandbox's (or AWS_ENDPOINT_URL)")
    @click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
    @functools.wraps(command)
    def wrapper(env_name: str, profile: str | None, endpoint_url: str | None, output: str, **kwargs: Any) -> Any:
        return command(options=Options(env_name, profile, endpoint_url, output), **kwargs)

    return wrapper


def mfa_options(command: Callable[..., Any]) -> Callable[..., Any]:
    @click.option("--mfa-serial", envvar="EHR_DR_MFA_SERIAL", default=None,
                  help="MFA device ARN (or EHR_DR_MFA_SERIAL)")
    @click.option("--mfa-code", default=None, help="the current 6-digit code")
    @click.option("--assume-operator", is_flag=True,
                  help="assume the topology's dr-operator role with MFA instead of a plain MFA session token")
    @functools.wraps(command)
    def wrapper(mfa_serial: str | None, mfa_code: str | None, assume_operator: bool, **kwargs: Any) -> Any:
        return command(mfa=Mfa(mfa_serial, mfa_code, assume_operator), **kwargs)

    return wrapper


@dataclass
class Mfa:
    serial: str | None
    code: str | None
    assume_operator: bool

    def session(self, aws: AwsSession, region: str, operator_role_arn: str | None, what: str) -> AwsSession:
        """An MFA session in `region`, or a refusal: commands that change anything never run without one."""
        if not (self.serial and self.code):
            aws.require_mfa(what)
        assert self.serial and self.code
        return aws.with_mfa(self.serial, self.code, region, operator_role_arn if self.assume_operator else None)


def refusals(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every 'refused before changing anything' into exit code 2 and one line."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (Refused, MfaRequired, SessionError, LockHeld, ValueError) as error:
            message = str(error).splitlines()[0]
            as_json = "options" in kwargs and kwargs["options"].as_json
            if as_json:
                click.echo(json.dumps({"refused": message}))
            else:
                Console(stderr=True).print(f"[bold red]refused:[/] {message}", highlight=False, soft_wrap=True)
            sys.exit(EXIT_REFUSED)

    return wrapper


def confirm(prompt_word: str, yes: bool) -> None:
    """Typed confirmation for people; `--yes` for automation (it never replaces MFA or --accept-data-loss)."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise Refused(f"confirmation needed: run interactively and type {prompt_word!r}, or pass --yes")
    typed = click.prompt(f"Type {prompt_word!r} to proceed", default="", show_default=False)
    if typed != prompt_word:
        raise Refused("not confirmed: nothing changed")
