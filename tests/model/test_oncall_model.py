"""Random sequences of on-call life on the sandbox keep the on-call invariants (`oncall_model.py` says which).

CI runs a few sequences of full length from a fixed seed, so a red CI is reproducible; `benchmarks/model_campaign.py`
runs long campaigns (`EHR_DR_MODEL_EXAMPLES` sequences of `EHR_DR_MODEL_STEPS` steps from `EHR_DR_MODEL_SEED`) and
reports what they found.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis.stateful import get_state_machine_test

from ehr_dr_sandbox.api import Sandbox

from .oncall_model import OnCallModel, World

EXAMPLES = int(os.environ.get("EHR_DR_MODEL_EXAMPLES", "2"))
STEPS = int(os.environ.get("EHR_DR_MODEL_STEPS", "6"))
SEED = int(os.environ.get("EHR_DR_MODEL_SEED", "20261129"))


@pytest.fixture
def world(sandbox: Sandbox, tmp_path: Path) -> Iterator[World]:
    bound = World(sandbox=sandbox, workdir=tmp_path)
    OnCallModel.WORLD = bound
    yield bound
    OnCallModel.WORLD = None
    sandbox.faults.clear()
    sandbox.faults.resume_replication()


def test_random_on_call_sequences_keep_the_invariants(world: World) -> None:
    try:
        sequences = get_state_machine_test(OnCallModel, _min_steps=STEPS, settings=settings(
            max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, suppress_health_check=list(HealthCheck),
            # No shrinking: the sandbox carries its state from one sequence to the next, so a replay is not the same
            # experiment; the log below is the sequence that failed.
            database=None, phases=[Phase.generate]))
        seed(SEED)(sequences)()
    except BaseException:
        if world.violations:
            pytest.fail(world.violations[0], pytrace=False)
        raise
    finally:
        print("\n".join(world.log))  # what was tried (pytest shows it on failure, or with -s)
