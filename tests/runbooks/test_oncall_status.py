"""`drctl status` on an estate whose DR region lags beyond the RPO; and with a region dark."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator

import pytest
from click.testing import Result

from dr_runbooks.observe.estate import observe_estate
from dr_runbooks.runbooks.estate import load_topology_anywhere
from dr_runbooks.session import AwsSession, boto_session
from ehr_dr_sandbox.api import SANDBOX_CREDENTIALS, Sandbox
from ehr_dr_sandbox.faults import FaultsClient

from .conftest import MFA, estate_state, heartbeat, report_lag

SANDBOX_CREDENTIALS_ARGS = {
    "aws_access_key_id": SANDBOX_CREDENTIALS["AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": SANDBOX_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
}


@pytest.fixture(autouse=True)
def dr_lags_beyond_the_rpo(sandbox: Sandbox) -> None:
    report_lag(sandbox, "us-west-1", 4000)


def status(drctl: Callable[..., Result]) -> dict:
    result = drctl("status", "--output", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_status_names_the_writer_and_where_traffic_goes(drctl: Callable[..., Result]) -> None:
    report = status(drctl)
    assert report["writer_region"] == "us-east-1"
    assert report["traffic_region"] == "us-east-1"
    assert report["regions"]["us-west-1"]["probes"]["lag_seconds"]["value"] == 4000


def test_status_says_not_ready_and_why_when_the_dr_region_lags(drctl: Callable[..., Result]) -> None:
    report = status(drctl)
    assert report["ready"] is False
    assert "Aurora lag 4000 s exceeds the RPO of 900 s" in report["verdict"]


def test_failover_is_not_refused_for_the_lag_metric_it_shows_the_loss_the_heartbeat_bounds(
        drctl: Callable[..., Result], sandbox: Sandbox) -> None:
    heartbeat(sandbox)
    before = estate_state(sandbox)
    result = drctl("failover", "--to", "us-west-1", "--yes", *MFA)  # no --accept-data-loss: stops at the question
    assert result.exit_code == 2
    assert "lags 4000 s behind" not in result.output
    assert "expected data loss: up to" in result.output and "Aurora lag last reported: 4000.0 s" in result.output
    assert "add --accept-data-loss" in result.output
    assert estate_state(sandbox) == before


def test_status_answers_within_ten_seconds_with_a_region_dark_and_marks_it(
    drctl: Callable[..., Result], sandbox_faults: FaultsClient
) -> None:
    sandbox_faults.region_down("us-east-1")
    started = time.monotonic()
    result = drctl("status")
    assert time.monotonic() - started < 10
    assert result.exit_code == 0, result.output
    assert "us-east-1 is unreachable" in result.output
    assert "us-west-1 (dr)" in result.output


def test_status_in_json_marks_the_dark_region_unreachable(
    drctl: Callable[..., Result], sandbox_faults: FaultsClient
) -> None:
    sandbox_faults.region_down("us-east-1")
    report = status(drctl)
    assert report["regions"]["us-east-1"]["reachable"] is False
    assert report["regions"]["us-west-1"]["reachable"] is True
    assert report["writer_region"] == "us-east-1"  # as the surviving region's view of the global cluster says


@pytest.fixture
def black_hole() -> Iterator[str]:
    """An endpoint that accepts connections and never answers: a region whose endpoint hangs rather than refuses."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_status_gives_up_on_a_hanging_region_within_ten_seconds(sandbox: Sandbox, black_hole: str) -> None:
    aws = AwsSession(boto_session(**SANDBOX_CREDENTIALS_ARGS), endpoint_url=sandbox.endpoint_url,
                     endpoint_urls={"us-east-1": black_hole})
    started = time.monotonic()
    topology = load_topology_anywhere(aws, sandbox.config.env_name, ("us-east-1", "us-west-1"))
    report = observe_estate(aws, topology)
    assert time.monotonic() - started < 9
    assert report.regions["us-east-1"].reachable is False
    assert report.regions["us-west-1"].reachable is True
