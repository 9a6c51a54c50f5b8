"""The run context: everything a step needs, rebuildable from the run id, the journal and the topology.

A step action gets only this object. It holds no process state that could not be rebuilt in another process (a resumed
run, or a Lambda task of the Step Functions version): the parameters come from the journal's run record, the outputs of
earlier steps from its step records, the clients from a fresh `AwsSession`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dr_runbooks.topology import RegionalResources, Topology

if TYPE_CHECKING:
    from dr_runbooks.engine.journal import Journal, RunRecord
    from dr_runbooks.engine.plan import Step
    from dr_runbooks.session import AwsSession


@dataclass(frozen=True)
class RunContext:
    run: RunRecord
    topology: Topology
    aws: AwsSession
    journal: Journal
    step: Step | None = None
    #: When the current step must be done (epoch seconds): its first start plus its timeout; waits stop there.
    deadline: float = field(default=float("inf"))
    #: When this process must hand control back (epoch seconds): a Lambda invocation's end, less a margin. A wait
    #: still unmet then raises `StepPending` instead of holding on; the local engine never has to hand back.
    invocation_deadline: float = field(default=float("inf"))

    @property
    def params(self) -> dict[str, Any]:
        return self.run.params

    @property
    def target(self) -> RegionalResources:
        """The region the runbook moves the estate to (the only one whose APIs a failover calls)."""
        return self.topology.in_region(self.run.target_region)

    @property
    def source(self) -> RegionalResources:
        """The region the estate moves away from (a failover never calls its APIs)."""
        return self.topology.in_region(self.topology.partner(self.run.target_region))

    def client(self, service: str, region: str | None = None) -> Any:
        return self.aws.client(service, region or self.run.target_region)

    def output(self, step_name: str) -> dict[str, Any]:
        """The outputs an earlier step recorded in the journal (it must be among this step's dependencies)."""
        return self.journal.step_outputs(self.run.run_id, step_name)

    def for_step(self, step: Step, started_at: float | None = None) -> RunContext:
        """The context of `step`, whose deadline counts from `started_at` (its first invocation's start)."""
        started_at = time.time() if started_at is None else started_at
        return dataclasses.replace(self, step=step, deadline=started_at + step.timeout_seconds)

    def checkpoint(self, **values: Any) -> None:
        """Journal progress the step's next invocation needs (e.g. the id of the job it started), written now."""
        assert self.step is not None, "checkpoint runs inside a step"
        self.journal.checkpoint(self.run.run_id, self.step.name, values)

    def checkpointed(self, key: str) -> Any:
        """A value this step checkpointed in an earlier invocation (or earlier in this one); None if none."""
        assert self.step is not None, "checkpointed runs inside a step"
        record = self.journal.step_record(self.run.run_id, self.step.name)
        return None if record is None else record.progress.get(key)

    def template_vars(self) -> dict[str, Any]:
        """Names a step's `calls` templates may use, for dry runs and plan listings."""
        target, source = self.target, self.source
        return {
            **self.params,
            "env": self.topology.env_name,
            "target_region": target.region,
            "source_region": source.region,
            "global_cluster_id": self.topology.global_cluster_id,
            "target_cluster_id": target.db_cluster_id,
            "source_cluster_id": source.db_cluster_id,
            "target_bucket": target.chart_bucket,
            "source_bucket": source.chart_bucket,
            "runbook_table": target.runbook_table,
            "db_secret_name": self.topology.db_secret_name,
            "run_id": self.run.run_id,
        }
