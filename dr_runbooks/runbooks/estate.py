"""Reading the published topology from SSM: in the region the command targets, so a dark partner does not matter."""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, wait
from functools import partial

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from dr_runbooks.config import known_regions
from dr_runbooks.observe import race
from dr_runbooks.session import AwsSession
from dr_runbooks.topology import Topology, parameter_name


class Refused(Exception):
    """Refused before changing anything (exit code 2); `str()` is the one line the operator reads."""


def check_region(region: str) -> str:
    if region not in known_regions():
        raise Refused(f"{region!r} is not an AWS region name (e.g. us-west-1)")
    return region


def load_topology(aws: AwsSession, env_name: str, region: str) -> Topology:
    """The topology of `env_name` as published in `region`, or a one-line reason why there is none.

    Read on a probe client (short timeouts, two attempts): it is every command's first call, so a region that does
    not answer is a one-line refusal within seconds, not minutes of retries."""
    check_region(region)
    name = parameter_name(env_name)
    try:
        text = aws.client("ssm", region, probe=True).get_parameter(Name=name)["Parameter"]["Value"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ParameterNotFound":
            raise Refused(
                f"no topology for environment {env_name!r} in {region} (SSM parameter {name}): "
                "check --env/EHR_DR_ENV, or deploy the stacks"
            ) from None
        raise Refused(f"cannot read the topology in {region}: {error}") from None
    except BotoCoreError as error:
        raise Refused(f"cannot reach {region} to read the topology: {error}") from None
    try:
        topology = Topology.from_json(text)
    except (ValidationError, ValueError) as error:
        first = str(error).splitlines()[0]
        raise Refused(f"the topology in {region} ({name}) is not valid: {first}") from None
    try:
        topology.in_region(region)
    except ValueError as error:
        raise Refused(str(error)) from None
    return topology


def load_topology_anywhere(
    aws: AwsSession, env_name: str, regions: tuple[str, ...], budget_seconds: float = 2.5
) -> Topology:
    """The first topology any of `regions` answers with within the budget (status reads it while one may be dark)."""
    deadline = time.monotonic() + budget_seconds
    pending = set(race.start({region: partial(load_topology, aws, env_name, region) for region in regions})
                  .values())
    errors: list[str] = []
    while pending:
        done, pending = wait(pending, timeout=max(deadline - time.monotonic(), 0.0), return_when=FIRST_COMPLETED)
        if not done:
            break
        for future in done:
            try:
                return future.result()
            except Refused as error:
                errors.append(str(error))
    raise Refused("; ".join(errors) or f"no region answered within {budget_seconds:.0f} s: {', '.join(regions)}")
