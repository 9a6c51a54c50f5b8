"""The runbooks on AWS's own engines, in each region: two Lambda functions of one package (the `dr_runbooks` step code
`drctl` runs), one Step Functions state machine per runbook generated from its plan, an alarm on every failed
execution, and the EventBridge Scheduler schedules: the drills in the DR region, the retention sync in both.

The *runbook* function runs every task. It is outside any VPC: a planned switchover writes in both regions, a game day's
second leg runs toward the other region, and Step Functions cannot invoke another region's function, so it calls both
regions' APIs through their public endpoints (TLS, SigV4). The *database* function is in the records VPC's isolated
subnets and runs only the steps that connect to that region's database (canary rows, restored-data validation); the
runbook function of either region invokes it. Each role names each resource its steps touch.

The *heartbeat*: in each region, EventBridge Scheduler invokes the database function every minute with
`{"action": "heartbeat"}`; it writes a `dr_heartbeat` row and a `dr-heartbeat/<UTC timestamp>` object in its own
region only when its own cluster writes (`dr_runbooks/runbooks/heartbeat.py`). The database function, because the row
must reach the writer's database, which only the records VPC reaches; everything else it calls (DescribeGlobalClusters,
DescribeDBClusters, the secret, PutObject into its own chart bucket) is its own region's, through the VPC endpoints
it already has. The runbook function could write the object but never the row.

The *readiness evaluation*: in each region, EventBridge Scheduler invokes the runbook function every hour with
`{"action": "evaluate"}` (`dr_runbooks/readiness/scheduled.py`): the checks of `drctl evaluate` from that region, its
`Ready` metric here and an alarm to on-call when it is 0 or missing, a readiness record in this region's evidence.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from dr_runbooks.drills.plans import GAME_DAY, RESTORE_DRILL
from dr_runbooks.orchestration.catalog import EVALUATION_RATE, SCHEDULED, deployed_in
from dr_runbooks.orchestration.definition import LAMBDA_MAX_SECONDS, definition
from dr_runbooks.topology import (
    FUNCTION_ENV_VARIABLE,
    GATE_RECORD_PREFIX,
    READINESS_NAMESPACE,
    READY_METRIC,
    TRAFFIC_GATE_NAMESPACE,
    alarm_name,
    database_function_name,
    drill_scratch_prefix,
    evaluation_schedule_name,
    heartbeat_schedule_name,
    parameter_name,
    runbook_function_name,
    state_machine_arn,
    state_machine_name,
)
from stacks.drill_permissions import restore_drill_permissions, scratch_master_password
from stacks.lambda_asset import RDS_CA_BUNDLE
from stacks.lambda_zip import asset_hash, asset_zip
from stacks.managed_policies import managed_policies
from stacks.site import Site

#: How often the heartbeat beats (EventBridge Scheduler rate expression): the freshness a failover can be sure of.
HEARTBEAT_RATE = "rate(1 minute)"
#: Interface endpoints the database function needs in the isolated subnets (Secrets Manager's is the database stack's).
INTERFACE_ENDPOINTS = ("ssm", "rds")
LOG_RETENTION = logs.RetentionDays.TEN_YEARS
#: Runs are rare and take the runbook lock: a handful of concurrent steps is the most any plan starts.
RESERVED_CONCURRENCY = 10
HANDLER = "dr_runbooks.orchestration.handler.handler"
#: Where Lambda unpacks the asset.
LAMBDA_TASK_ROOT = "/var/task"


class OrchestrationStack(cdk.Stack):
    """`function`, `database_function`, `state_machines` (runbook -> state machine), `schedules`."""

    def __init__(self, scope: Construct, site: Site, key: kms.IKey, vpc: ec2.IVpc, vpc_cidr: str,
                 code: lambda_.Code | None = None) -> None:
        super().__init__(scope, site.stack_name("orchestration"), env=site.env,
                         description=f"{site.prefix} runbooks on Step Functions and Lambda")
        self.site = site
        self.key = key
        self.topic = sns.Topic.from_topic_arn(self, "OnCall", site.here.oncall_topic_arn)
        self.runbooks = deployed_in(site.region, site.config.dr_region)
        self._endpoints(vpc, vpc_cidr)
        code = code or _code()
        name = runbook_function_name(site.config.env_name)
        self.function = self._function("Function", name, code, _runbook_permissions(site, key, name),
                                       "every task of the runbook state machines, outside any VPC")
        db_name = database_function_name(site.config.env_name)
        self.database_function = self._function(
            "DatabaseFunction", db_name, code, _database_permissions(site, key, db_name),
            "the steps that connect to this region's records database, in its VPC",
            vpc=vpc, security_group=self._database_security_group(vpc, vpc_cidr),
            # Aurora's TLS certificate is verified against the RDS certificate authorities the asset carries.
            environment={"PGSSLROOTCERT": f"{LAMBDA_TASK_ROOT}/{RDS_CA_BUNDLE}"})
        self.state_machine_role = self._state_machine_role()
        self.state_machines = {runbook: self._state_machine(runbook) for runbook in self.runbooks}
        self.schedules = self._schedules()
        self.heartbeat = self._heartbeat_schedule()
        self.evaluation, self.not_ready = self._evaluation()

    def _endpoints(self, vpc: ec2.IVpc, cidr: str) -> None:
        isolated = [ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)]
        for service in (ec2.GatewayVpcEndpointAwsService.S3, ec2.GatewayVpcEndpointAwsService.DYNAMODB):
            ec2.GatewayVpcEndpoint(self, f"{service.name.rsplit('.', 1)[1].capitalize()}Endpoint", vpc=vpc,
                                   service=service, subnets=isolated)
        group = ec2.SecurityGroup(self, "EndpointSecurityGroup", vpc=vpc, allow_all_outbound=False,
                                  description="HTTPS from the VPC to the AWS API endpoints the database function calls")
        group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), "HTTPS from the VPC")
        # The writer's heartbeat reads and sets the traffic gate kept here (CloudWatch), when traffic is managed.
        for service in (*INTERFACE_ENDPOINTS, *(("monitoring",) if self.site.topology.traffic else ())):
            ec2.InterfaceVpcEndpoint(self, f"{service.capitalize()}Endpoint", vpc=vpc, open=False,
                                     service=ec2.InterfaceVpcEndpointAwsService(service), private_dns_enabled=True,
                                     subnets=isolated[0], security_groups=[group])

    def _database_security_group(self, vpc: ec2.IVpc, cidr: str) -> ec2.SecurityGroup:
        group = ec2.SecurityGroup(self, "FunctionSecurityGroup", vpc=vpc, allow_all_outbound=False,
                                  description="the database function: HTTPS to endpoints, PostgreSQL, in the VPC")
        group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443),
                              "AWS APIs: the isolated subnets route only to the VPC endpoints")
        group.add_egress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(5432), "the records database")
        return group

    def _function(self, label: str, name: str, code: lambda_.Code, statements: list[iam.PolicyStatement],
                  what: str, vpc: ec2.IVpc | None = None, security_group: ec2.ISecurityGroup | None = None,
                  environment: dict[str, str] | None = None) -> lambda_.Function:
        log_group = logs.LogGroup(self, f"{label}Logs", log_group_name=f"/aws/lambda/{name}",
                                  encryption_key=self.key, retention=LOG_RETENTION,
                                  removal_policy=cdk.RemovalPolicy.RETAIN)
        role = iam.Role(self, f"{label}Role", role_name=f"{name}-{self.site.region}",
                        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), description=what)
        managed_policies(self, f"{label}Policy", statements, roles=[role])
        placement = ({"vpc": vpc, "security_groups": [security_group],
                      "vpc_subnets": ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)}
                     if vpc is not None else {})
        return lambda_.Function(
            # The managed policies above are the whole of the role: CDK's own grants would add an inline duplicate.
            self, label, function_name=name, role=role.without_policy_updates(), log_group=log_group, code=code,
            handler=HANDLER, runtime=lambda_.Runtime.PYTHON_3_11, architecture=lambda_.Architecture.X86_64,
            memory_size=512, timeout=cdk.Duration.seconds(LAMBDA_MAX_SECONDS), description=what,
            environment={FUNCTION_ENV_VARIABLE: self.site.config.env_name, **(environment or {})},
            environment_encryption=self.key,
            tracing=lambda_.Tracing.ACTIVE, reserved_concurrent_executions=RESERVED_CONCURRENCY, **placement,
        )

    def _children(self) -> list[str]:
        return sorted({step.child.runbook for runbook in self.runbooks.values() for step in runbook.plan().steps
                       if step.child is not None})

    def _state_machine_role(self) -> iam.IRole:
        """One role for the region's state machines: invoke the runbook function, start the child machines (a game
        day's legs) and follow them, deliver logs, trace; nothing else."""
        site = self.site
        role = iam.Role(self, "StateMachineRole", assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
                        description="the runbook state machines: invoke the runbook function, nested runs, logs")
        children = self._children()
        statements = [
            iam.PolicyStatement(sid="InvokeRunbookFunction", actions=["lambda:InvokeFunction"],
                                resources=[self.function.function_arn]),
            # CloudWatch Logs' log delivery and X-Ray have no resource-level permissions.
            iam.PolicyStatement(sid="VendedLogs", resources=["*"], actions=[
                "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
                "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies",
                "logs:DescribeLogGroups"]),
            iam.PolicyStatement(sid="Tracing", resources=["*"], actions=[
                "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules",
                "xray:GetSamplingTargets"]),
        ]
        if children:
            account, region, env_name = site.config.account, site.region, site.config.env_name
            statements += [
                iam.PolicyStatement(sid="StartChildRuns", actions=["states:StartExecution"], resources=[
                    state_machine_arn(site.topology, region, child) for child in children]),
                iam.PolicyStatement(sid="FollowChildRuns", actions=["states:DescribeExecution",
                                                                    "states:StopExecution"], resources=[
                    f"arn:aws:states:{region}:{account}:execution:{state_machine_name(env_name, child)}:*"
                    for child in children]),
                # How Step Functions learns that a nested execution ended (`.sync`): its own managed rule.
                iam.PolicyStatement(sid="ChildRunEvents", actions=["events:PutTargets", "events:PutRule",
                                                                   "events:DescribeRule"], resources=[
                    f"arn:aws:events:{region}:{account}:rule/StepFunctionsGetEventsForStepFunctionsExecutionRule"]),
            ]
        iam.ManagedPolicy(self, "StateMachinePolicy", roles=[role], statements=statements)
        return role.without_policy_updates()

    def _state_machine(self, runbook: str) -> sfn.StateMachine:
        site = self.site
        name = state_machine_name(site.config.env_name, runbook)
        label = "".join(part.capitalize() for part in runbook.split("-"))
        log_group = logs.LogGroup(self, f"{label}Logs", log_group_name=f"/aws/vendedlogs/states/{name}",
                                  encryption_key=self.key, retention=LOG_RETENTION,
                                  removal_policy=cdk.RemovalPolicy.RETAIN)
        machines = {child: state_machine_arn(site.topology, site.region, child) for child in self._children()}
        body = definition(self.runbooks[runbook].plan(), self.function.function_arn, machines)
        machine = sfn.StateMachine(
            self, f"{label}StateMachine", state_machine_name=name,
            definition_body=sfn.DefinitionBody.from_string(json.dumps(body)),
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            tracing_enabled=True, role=self.state_machine_role,
        )
        alarm = cloudwatch.Alarm(
            self, f"{label}Failed", alarm_name=alarm_name(site.config, f"runbook-failed-{runbook}"),
            alarm_description=f"a {runbook} run failed: its journal and evidence say where",
            metric=machine.metric_failed(period=cdk.Duration.minutes(5), statistic="Sum"),
            threshold=0, evaluation_periods=1, comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))
        return machine

    def _schedules(self) -> dict[str, scheduler.CfnSchedule]:
        site, config = self.site, self.site.config
        scheduled = [(runbook, key) for runbook, key in SCHEDULED if runbook in self.runbooks]
        targets = [state_machine_arn(site.topology, site.region, runbook) for runbook, _ in scheduled]
        role = iam.Role(self, "SchedulerRole", assumed_by=iam.ServicePrincipal(
            "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": config.account}}),
            description="EventBridge Scheduler starts the scheduled runbooks, and nothing else")
        iam.ManagedPolicy(self, "SchedulerPolicy", roles=[role], statements=[
            iam.PolicyStatement(actions=["states:StartExecution"], resources=targets)])
        schedules = {}
        for (runbook, key), target in zip(scheduled, targets, strict=True):
            schedules[runbook] = scheduler.CfnSchedule(
                self, "".join(part.capitalize() for part in runbook.split("-")) + "Schedule",
                name=state_machine_name(config.env_name, runbook),
                schedule_expression=getattr(config, f"{key}_schedule"),
                schedule_expression_timezone=config.schedule_timezone,
                flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
                state="ENABLED" if getattr(config, f"{key}_enabled") else "DISABLED",
                description=f"{runbook} in {site.region}",
                target=scheduler.CfnSchedule.TargetProperty(
                    arn=target, role_arn=role.role_arn,
                    input=json.dumps({"target_region": site.region, "operator": "eventbridge-scheduler"}),
                    retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(maximum_retry_attempts=0),
                ),
            )
        return schedules

    def _heartbeat_schedule(self) -> scheduler.CfnSchedule:
        """Every minute, in each region: the database function writes the heartbeat if this region writes. A missed
        beat is not retried (the next minute's is the retry) and an event older than a minute is dropped: a late
        heartbeat would claim freshness it does not have."""
        site, config = self.site, self.site.config
        role = iam.Role(self, "HeartbeatSchedulerRole", assumed_by=iam.ServicePrincipal(
            "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": config.account}}),
            description="EventBridge Scheduler invokes the database function for the heartbeat, and nothing else")
        iam.ManagedPolicy(self, "HeartbeatSchedulerPolicy", roles=[role], statements=[
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.database_function.function_arn])])
        return scheduler.CfnSchedule(
            self, "HeartbeatSchedule", name=heartbeat_schedule_name(config.env_name),
            schedule_expression=HEARTBEAT_RATE,
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"), state="ENABLED",
            description=f"the DR heartbeat in {site.region} (written only while this region writes)",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=self.database_function.function_arn, role_arn=role.role_arn,
                input=json.dumps({"action": "heartbeat"}),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(maximum_retry_attempts=0,
                                                                       maximum_event_age_in_seconds=60),
            ),
        )


    def _evaluation(self) -> tuple[scheduler.CfnSchedule, cloudwatch.Alarm]:
        """Every hour, in each region: the runbook function evaluates readiness (`drctl evaluate` on AWS) and puts
        `Ready` into CloudWatch here; the alarm tells on-call when it is 0, or when no evaluation reported for an
        hour (missing data breaches: an evaluation that stopped is no proof of readiness)."""
        site, config = self.site, self.site.config
        role = iam.Role(self, "EvaluationSchedulerRole", assumed_by=iam.ServicePrincipal(
            "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": config.account}}),
            description="EventBridge Scheduler invokes the runbook function for the readiness evaluation, nothing else")
        iam.ManagedPolicy(self, "EvaluationSchedulerPolicy", roles=[role], statements=[
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[self.function.function_arn])])
        schedule = scheduler.CfnSchedule(
            self, "EvaluationSchedule", name=evaluation_schedule_name(config.env_name),
            schedule_expression=EVALUATION_RATE,
            flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"), state="ENABLED",
            description=f"the readiness evaluation from {site.region}",
            target=scheduler.CfnSchedule.TargetProperty(
                arn=self.function.function_arn, role_arn=role.role_arn, input=json.dumps({"action": "evaluate"}),
                retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(maximum_retry_attempts=0)),
        )
        alarm = cloudwatch.Alarm(
            self, "NotReady", alarm_name=alarm_name(config, "not-ready"),
            alarm_description="the hourly readiness evaluation found a failover would not work (or did not run): "
                              "drctl evaluate says which check and why",
            metric=cloudwatch.Metric(namespace=READINESS_NAMESPACE, metric_name=READY_METRIC,
                                     dimensions_map={"EvaluatedIn": site.region}, statistic="Minimum",
                                     period=cdk.Duration.hours(1)),
            threshold=1, evaluation_periods=1, comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.topic))
        return schedule, alarm


def _code() -> lambda_.Code:
    """One zip of the asset for both functions, named after the hash of its content: synth stages one file, and CDK
    need not fingerprint 10 MB again each synth."""
    archive = asset_zip()
    return lambda_.Code.from_asset(str(archive), asset_hash=asset_hash(archive),
                                   asset_hash_type=cdk.AssetHashType.CUSTOM)


def _runbook_permissions(site: Site, key: kms.IKey, function_name: str) -> list[iam.PolicyStatement]:
    """What the tasks, the journal, the lock and the evidence need, resource by resource from the topology. Journal,
    lock, evidence and on-call are in both regions: a run writes them in the region it targets, and a switchover or
    failback may be run from either region's machine (a game day's second leg)."""
    topology, account, regions = site.topology, site.config.account, site.config.regions
    partner = site.partner
    both = [topology.in_region(r) for r in regions]
    global_cluster = f"arn:aws:rds::{account}:global-cluster:{topology.global_cluster_id}"
    statements = [
        _read_topology(site),
        iam.PolicyStatement(sid="JournalAndLock", actions=[
            "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"],
            resources=[site.table_arn(r) for r in regions]),
        iam.PolicyStatement(sid="DataKey", actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                            resources=[key.key_arn]),
        iam.PolicyStatement(sid="PartnerDataKey", actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                            resources=[f"arn:aws:kms:{site.partner_region}:{account}:key/*"],
                            conditions={"ForAnyValue:StringEquals": {"kms:ResourceAliases": partner.kms_key_alias}}),
        iam.PolicyStatement(sid="Evidence", actions=["s3:PutObject", "s3:PutObjectRetention", "s3:GetObject",
                                                     "s3:ListBucket"],
                            resources=[arn for r in both for arn in (site.bucket_arn(r.evidence_bucket),
                                                                     f"{site.bucket_arn(r.evidence_bucket)}/*")]),
        iam.PolicyStatement(sid="ChartCanaries", actions=["s3:PutObject", "s3:GetObject", "s3:ListBucket",
                                                          "s3:GetReplicationConfiguration"],
                            resources=[arn for r in both for arn in (site.bucket_arn(r.chart_bucket),
                                                                     f"{site.bucket_arn(r.chart_bucket)}/dr-canary/*")]),
        # The retention sync's `extend-retention` (docs/lifecycle.md): the retention of each version of the moved
        # patients' charts, read (GetObjectRetention, not HeadObject: that is s3:GetObject, the chart itself) and
        # extended, in both regions; the versions listed. Never a chart's content, never a legal hold or deletion.
        iam.PolicyStatement(sid="RetentionSyncCharts", actions=["s3:GetObjectRetention", "s3:PutObjectRetention"],
                            resources=[f"{site.bucket_arn(r.chart_bucket)}/charts/*" for r in both]),
        iam.PolicyStatement(sid="RetentionSyncVersions", actions=["s3:ListBucketVersions"],
                            resources=[site.bucket_arn(r.chart_bucket) for r in both]),
        # A failover's proof that the target's archive takes writes: its own prefix, never listed as freshness.
        iam.PolicyStatement(sid="ChartWriteProbes", actions=["s3:PutObject"], resources=[
            f"{site.bucket_arn(r.chart_bucket)}/dr-probe/*" for r in both]),
        iam.PolicyStatement(sid="RecordsDatabase", actions=[
            "rds:DescribeGlobalClusters", "rds:DescribeDBClusters", "rds:SwitchoverGlobalCluster",
            "rds:FailoverGlobalCluster"], resources=[global_cluster, *(site.cluster_arn(r) for r in regions)]),
        # Failback keeps AWS's unplanned-global-failover snapshot of the returned cluster as a tagged manual copy,
        # encrypted with that region's data key (RDS makes a grant on it), in either region (the target's).
        iam.PolicyStatement(sid="KeepFailoverSnapshots", actions=[
            "rds:DescribeDBClusterSnapshots", "rds:CopyDBClusterSnapshot", "rds:AddTagsToResource"],
            resources=[arn for r in regions for arn in (site.failover_snapshot_arn(r), site.kept_snapshot_arn(r))]),
        iam.PolicyStatement(sid="FindFailoverSnapshots", actions=["rds:DescribeDBClusterSnapshots"],
                            resources=[site.cluster_arn(r) for r in regions]),
        iam.PolicyStatement(sid="EncryptKeptSnapshots", actions=["kms:CreateGrant", "kms:DescribeKey"],
                            resources=[f"arn:aws:kms:{r}:{account}:key/*" for r in regions],
                            conditions={"ForAnyValue:StringEquals": {"kms:ResourceAliases": sorted(
                                {topology.in_region(r).kms_key_alias for r in regions})},
                                "StringLike": {"kms:ViaService": "rds.*.amazonaws.com"}}),
        iam.PolicyStatement(sid="DatabaseSteps", actions=["lambda:InvokeFunction"], resources=[
            f"arn:aws:lambda:{r}:{account}:function:{database_function_name(site.config.env_name)}"
            for r in regions]),
        iam.PolicyStatement(sid="Alarms", actions=["cloudwatch:DescribeAlarms"], resources=[
            f"arn:aws:cloudwatch:{r}:{account}:alarm:{site.prefix}-*" for r in regions]),
        iam.PolicyStatement(sid="TrafficGates", actions=["cloudwatch:PutMetricData"], resources=["*"],
                            conditions={"StringEquals": {"cloudwatch:namespace": TRAFFIC_GATE_NAMESPACE}}),
        iam.PolicyStatement(sid="ReplicationLag", actions=["cloudwatch:GetMetricStatistics"], resources=["*"]),
        iam.PolicyStatement(sid="ConfirmDns", actions=["route53:ListHostedZonesByName", "route53:TestDNSAnswer"],
                            resources=["*"]),
        iam.PolicyStatement(sid="OnCall", actions=["sns:Publish"], resources=[r.oncall_topic_arn for r in both]),
        *_function_basics(site, function_name),
        *_evaluation_permissions(site),
    ]
    if not site.is_primary:
        statements += restore_drill_permissions(site, [key.key_arn])
    return statements


def _evaluation_permissions(site: Site) -> list[iam.PolicyStatement]:
    """The hourly readiness evaluation (`dr_runbooks.readiness`): reads of both regions' resources by name, the
    simulation of the plans' calls for the roles that make them, and its own metrics."""
    topology, account, env_name = site.topology, site.config.account, site.config.env_name
    regions = site.config.regions
    both = [topology.in_region(r) for r in regions]
    roles = [topology.role_arns["dr-operator"], *(
        f"arn:aws:iam::{account}:role/{name}-{r}" for r in regions
        for name in (runbook_function_name(env_name), database_function_name(env_name)))]
    return [
        iam.PolicyStatement(sid="EvaluateTopology", actions=["ssm:GetParameter"], resources=[
            f"arn:aws:ssm:{r}:{account}:parameter{parameter_name(env_name)}" for r in regions]),
        iam.PolicyStatement(sid="EvaluateBuckets", actions=["s3:GetBucketVersioning"], resources=[
            site.bucket_arn(bucket) for r in both for bucket in (r.chart_bucket, r.evidence_bucket)]),
        iam.PolicyStatement(sid="EvaluateVaults", actions=["backup:DescribeBackupVault",
                                                           "backup:ListRecoveryPointsByBackupVault"],
                            resources=[site.vault_arn(r) for r in regions]),
        iam.PolicyStatement(sid="EvaluateBackupPlans", actions=["backup:GetBackupPlan"], resources=[
            f"arn:aws:backup:{r}:{account}:backup-plan:*" for r in regions]),
        # ListBackupPlans and ListCopyJobs have no resource-level permissions.
        iam.PolicyStatement(sid="EvaluateBackupJobs", actions=["backup:ListBackupPlans", "backup:ListCopyJobs"],
                            resources=["*"]),
        iam.PolicyStatement(sid="EvaluateTables", actions=["dynamodb:DescribeTable"],
                            resources=[site.table_arn(r) for r in regions]),
        iam.PolicyStatement(sid="EvaluateTopics", actions=["sns:GetTopicAttributes"],
                            resources=[r.oncall_topic_arn for r in both]),
        iam.PolicyStatement(sid="EvaluateKeys", actions=["kms:DescribeKey"],
                            resources=[f"arn:aws:kms:{r}:{account}:key/*" for r in regions],
                            conditions={"ForAnyValue:StringEquals": {"kms:ResourceAliases": sorted(
                                {r.kms_key_alias for r in both})}}),
        iam.PolicyStatement(sid="EvaluateSecrets", actions=["secretsmanager:DescribeSecret"], resources=[
            f"arn:aws:secretsmanager:{r}:{account}:secret:{topology.db_secret_name}-*" for r in regions]),
        iam.PolicyStatement(sid="EvaluateOrchestration", actions=["states:DescribeStateMachine"], resources=[
            state_machine_arn(topology, r, runbook) for r in regions
            for runbook in deployed_in(r, site.config.dr_region)]),
        iam.PolicyStatement(sid="EvaluateFunctions", actions=["lambda:GetFunction"], resources=[
            f"arn:aws:lambda:{r}:{account}:function:{name}" for r in regions
            for name in (runbook_function_name(env_name), database_function_name(env_name))]),
        # The drills' schedules, in the DR region: "passed within their schedules".
        iam.PolicyStatement(sid="EvaluateSchedules", actions=["scheduler:GetSchedule"], resources=[
            f"arn:aws:scheduler:{site.config.dr_region}:{account}:schedule/default/{state_machine_name(env_name, name)}"
            for name in (RESTORE_DRILL, GAME_DAY)]),
        iam.PolicyStatement(sid="EvaluatePermissions", actions=["iam:SimulatePrincipalPolicy"], resources=roles),
        iam.PolicyStatement(sid="ReadinessMetrics", actions=["cloudwatch:PutMetricData"], resources=["*"],
                            conditions={"StringEquals": {"cloudwatch:namespace": READINESS_NAMESPACE}}),
    ]


def _database_permissions(site: Site, key: kms.IKey, function_name: str) -> list[iam.PolicyStatement]:
    """The database steps of this region: find the cluster and its secret, read fingerprints and charts (a game day
    serves one from here; a restore drill checks the restored ones), write and read the retention sync's manifest of
    moved patients, through the VPC's endpoints."""
    topology, account, region, here = site.topology, site.config.account, site.region, site.here
    # Restore drills run in the DR region: only there are restored scratch clusters and buckets read.
    scratch = [] if site.is_primary else [drill_scratch_prefix(site.config.env_name)]
    return [
        _read_topology(site),
        iam.PolicyStatement(sid="FindClusters", actions=["rds:DescribeDBClusters"], resources=[
            site.cluster_arn(region), *(f"arn:aws:rds:{region}:{account}:cluster:{prefix}*" for prefix in scratch)]),
        *([iam.PolicyStatement(sid="FindInstances", actions=["rds:DescribeDBInstances"],
                               resources=[f"arn:aws:rds:{region}:{account}:db:*"]),
           scratch_master_password(site)]
          if scratch else []),
        iam.PolicyStatement(sid="DatabaseSecret", actions=["secretsmanager:GetSecretValue"], resources=[
            f"arn:aws:secretsmanager:{region}:{account}:secret:{topology.db_secret_name}-*"]),
        iam.PolicyStatement(sid="DataKey", actions=["kms:Decrypt"], resources=[key.key_arn]),
        iam.PolicyStatement(sid="Fingerprints", actions=["dynamodb:GetItem"], resources=[site.table_arn(region)]),
        # A failover's first step finds the newest canary and heartbeat objects the target holds (listing only
        # those prefixes: no chart key is listed).
        iam.PolicyStatement(sid="FindCanaries", actions=["s3:ListBucket"],
                            resources=[site.bucket_arn(here.chart_bucket)],
                            conditions={"StringLike": {"s3:prefix": ["dr-canary/*", "dr-heartbeat/*"]}}),
        iam.PolicyStatement(sid="ReadCharts", actions=["s3:GetObject"], resources=[
            f"{site.bucket_arn(here.chart_bucket)}/*", *(f"arn:aws:s3:::{prefix}*/*" for prefix in scratch)]),
        # The retention sync's database steps: the manifest of the moved patients, written by `find-moved` and read
        # by `mark-synced`, in this region's evidence bucket (through the S3 gateway endpoint).
        iam.PolicyStatement(sid="RetentionSyncManifests", actions=["s3:PutObject", "s3:GetObject"], resources=[
            f"{site.bucket_arn(here.evidence_bucket)}/lifecycle/moved/*"]),
        # The heartbeat: find the writer, and when it is this region, write its object (SSE-KMS with the region's key,
        # through S3 only). Its only writes; the row goes through the database connection.
        iam.PolicyStatement(sid="HeartbeatWriter", actions=["rds:DescribeGlobalClusters"], resources=[
            f"arn:aws:rds::{account}:global-cluster:{topology.global_cluster_id}"]),
        iam.PolicyStatement(sid="HeartbeatObjects", actions=["s3:PutObject"], resources=[
            f"{site.bucket_arn(here.chart_bucket)}/dr-heartbeat/*"]),
        iam.PolicyStatement(sid="HeartbeatObjectKey", actions=["kms:GenerateDataKey"], resources=[key.key_arn],
                            conditions={"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}}),
        *_heartbeat_gate(site),
        *_function_basics(site, function_name),
        iam.PolicyStatement(sid="VpcNetworkInterfaces", actions=[
            "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
            "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"], resources=["*"]),
    ]


def _heartbeat_gate(site: Site) -> list[iam.PolicyStatement]:
    """The writer's heartbeat keeps the partner's traffic gate, kept here, in line with the gate rule: read its alarm,
    put its metric (the traffic-gate namespace only), record the state in this region's runbook table (gate records
    only). Nothing when the environment manages no traffic."""
    traffic = site.topology.traffic
    if traffic is None:
        return []
    gate = traffic.gates[site.partner_region]
    return [
        iam.PolicyStatement(sid="HeartbeatGateAlarm", actions=["cloudwatch:DescribeAlarms"], resources=[
            f"arn:aws:cloudwatch:{site.region}:{site.config.account}:alarm:{gate.alarm_name}"]),
        iam.PolicyStatement(sid="HeartbeatGateMetric", actions=["cloudwatch:PutMetricData"], resources=["*"],
                            conditions={"StringEquals": {"cloudwatch:namespace": TRAFFIC_GATE_NAMESPACE}}),
        iam.PolicyStatement(sid="HeartbeatGateRecord", actions=["dynamodb:PutItem"],
                            resources=[site.table_arn(site.region)],
                            conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [
                                f"{GATE_RECORD_PREFIX}{site.config.env_name}"]}}),
    ]


def _read_topology(site: Site) -> iam.PolicyStatement:
    return iam.PolicyStatement(sid="ReadTopology", actions=["ssm:GetParameter"], resources=[
        f"arn:aws:ssm:{site.region}:{site.config.account}:parameter{parameter_name(site.config.env_name)}"])


def _function_basics(site: Site, function_name: str) -> list[iam.PolicyStatement]:
    return [
        iam.PolicyStatement(sid="Logs", actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[
            f"arn:aws:logs:{site.region}:{site.config.account}:log-group:/aws/lambda/{function_name}:*"]),
        iam.PolicyStatement(sid="Tracing", actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                            resources=["*"]),
    ]
