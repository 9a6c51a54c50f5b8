"""`build_estate`: every stack of both regions, and the order CloudFormation must create them in.

Dependencies between stacks of different regions only order deployment (`cdk deploy --all`); they carry no values.
Within a region, stacks share the region's data key through CloudFormation exports.
"""

from __future__ import annotations

import aws_cdk as cdk

from dr_runbooks.config import DeploymentConfig
from dr_runbooks.topology import build_topology
from stacks.access import AccessStack
from stacks.archive import ArchiveStack
from stacks.archive_return import ArchiveReturnStack
from stacks.audit import AuditStack
from stacks.backup import BackupStack
from stacks.compliance_acknowledgments import acknowledge_findings
from stacks.database import DatabaseStack
from stacks.keys import KeysStack
from stacks.monitoring import MonitoringStack
from stacks.orchestration import OrchestrationStack
from stacks.runbook_support import RunbookSupportStack
from stacks.site import Site
from stacks.traffic import TrafficGateStack, TrafficStack


def build_estate(app: cdk.App, config: DeploymentConfig) -> list[Site]:
    """Both regions' stacks under `app`; returns the two sites, primary first."""
    topology = build_topology(config)
    primary, dr = sites = [Site(config, topology, region) for region in config.regions]
    keys = {site.region: KeysStack(app, site) for site in sites}
    stacks: dict[str, dict[str, cdk.Stack]] = {}
    for site in sites:
        key = keys[site.region].key
        archive = ArchiveStack(app, site, key, replicate=site.is_primary)
        runbooks = RunbookSupportStack(app, site, key)
        monitoring = MonitoringStack(app, site, key)
        database = DatabaseStack(app, site, key)
        backup = BackupStack(app, site, key)
        audit = AuditStack(app, site, key)
        # Named, not referenced: log bucket before everything that logs to it, topic before alarms, data before
        # the backup selection that names it, evidence bucket before the Config delivery channel writing there.
        for stack in (runbooks, database, audit):
            stack.add_stack_dependency(archive)
        audit.add_stack_dependency(runbooks)
        audit.add_stack_dependency(monitoring)
        for data in (archive, runbooks, database):
            backup.add_stack_dependency(data)
        orchestration = OrchestrationStack(app, site, key, database.vpc, database.cidr)
        for needed in (runbooks, monitoring):  # its steps use the table, topology and topic by name
            orchestration.add_stack_dependency(needed)
        stacks[site.region] = {"archive": archive, "database": database, "monitoring": monitoring, "audit": audit}
    # S3 checks that a replication destination exists: the DR bucket first, and the DR bucket's way-back rule once
    # both exist (see stacks/archive_return.py).
    stacks[primary.region]["archive"].add_stack_dependency(stacks[dr.region]["archive"])
    archive_return = ArchiveReturnStack(app, dr, keys[dr.region].key)
    for region in config.regions:
        archive_return.add_stack_dependency(stacks[region]["archive"])
    # The primary's trail bucket replicates into the DR trail bucket (see stacks/audit.py).
    stacks[primary.region]["audit"].add_stack_dependency(stacks[dr.region]["audit"])
    # The secondary joins the global cluster; the primary's secret replicates with the DR key.
    stacks[dr.region]["database"].add_stack_dependency(stacks[primary.region]["database"])
    stacks[primary.region]["database"].add_stack_dependency(keys[dr.region])
    AccessStack(app, primary)
    if topology.traffic is not None:
        traffic = TrafficStack(app, primary)
        for site in sites:
            gate = TrafficGateStack(app, site)
            gate.add_stack_dependency(stacks[site.region]["monitoring"])  # its alarm notifies the on-call topic
            traffic.add_stack_dependency(gate)  # a metric health check needs its alarm to exist
    acknowledge_findings(app, sites)
    return sites
