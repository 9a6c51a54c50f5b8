"""The runbooks on AWS's own engines, in each region: one Lambda function (the `dr_runbooks` package, the same step
code `drctl` runs), one Step Functions state machine per runbook generated from its plan, an alarm on every failed
execution, and (in the DR region) the EventBridge Scheduler schedules of the drills.

The function runs in the records VPC (the steps read and write canary rows in the database) and reaches this region's
APIs through VPC endpoints; its role names each resource its steps touch. A run's journal, lock and evidence stay in
the region it targets, which is the region whose state machine runs it.
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

from dr_runbooks.engine.plan import Plan
from dr_runbooks.orchestration.definition import LAMBDA_MAX_SECONDS, definition
from dr_runbooks.orchestration.handler import ENV_VARIABLE
from dr_runbooks.runbooks.plans import PLANS
from dr_runbooks.topology import (
    TRAFFIC_GATE_NAMESPACE,
    alarm_name,
    parameter_name,
    runbook_function_name,
    state_machine_arn,
    state_machine_name,
)
from stacks.lambda_asset import asset_dir
from stacks.site import Site

#: The runbooks that have a state machine: every on-call plan. The restore drill joins once its hour-long waits are
#: start + poll steps (the definition refuses steps longer than a Lambda invocation; see docs/orchestration.md).
ORCHESTRATED: dict[str, Plan] = {name: make() for name, make in PLANS.items()}
#: Scheduled runs in the DR region: (runbook, config key prefix). A schedule whose runbook has no state machine yet is
#: created disabled, so enabling it in the config takes effect the deploy its state machine appears.
SCHEDULED = (("restore-drill", "restore_drill"), ("verify-replication", "verify_replication"),
             ("game-day", "game_day"))
#: Service names of the interface endpoints the function needs in the isolated subnets (Secrets Manager's exists).
INTERFACE_ENDPOINTS = ("ssm", "rds", "monitoring", "sns", "sts")
LOG_RETENTION = logs.RetentionDays.TEN_YEARS
#: Runs are rare and take the runbook lock: a handful of concurrent steps is the most any plan starts.
RESERVED_CONCURRENCY = 10


class OrchestrationStack(cdk.Stack):
    """`function`, `state_machines` (runbook -> state machine) and, in the DR region, `schedules`."""

    def __init__(self, scope: Construct, site: Site, key: kms.IKey, vpc: ec2.IVpc, vpc_cidr: str) -> None:
        super().__init__(scope, site.stack_name("orchestration"), env=site.env,
                         description=f"{site.prefix} runbooks on Step Functions and Lambda")
        self.site = site
        self.topic = sns.Topic.from_topic_arn(self, "OnCall", site.here.oncall_topic_arn)
        self._endpoints(vpc, vpc_cidr)
        self.function = self._function(key, vpc, vpc_cidr)
        self.state_machine_role = self._state_machine_role()
        self.state_machines = {runbook: self._state_machine(runbook, plan, key)
                               for runbook, plan in ORCHESTRATED.items()}
        self.schedules = self._schedules() if not site.is_primary else {}

    def _endpoints(self, vpc: ec2.IVpc, cidr: str) -> None:
        isolated = [ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)]
        for service in (ec2.GatewayVpcEndpointAwsService.S3, ec2.GatewayVpcEndpointAwsService.DYNAMODB):
            ec2.GatewayVpcEndpoint(self, f"{service.name.rsplit('.', 1)[1].capitalize()}Endpoint", vpc=vpc,
                                   service=service, subnets=isolated)
        group = ec2.SecurityGroup(self, "EndpointSecurityGroup", vpc=vpc, allow_all_outbound=False,
                                  description="HTTPS from the VPC to the AWS API endpoints the runbook function calls")
        group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(443), "HTTPS from the VPC")
        for service in INTERFACE_ENDPOINTS:
            ec2.InterfaceVpcEndpoint(self, f"{service.capitalize()}Endpoint", vpc=vpc, open=False,
                                     service=ec2.InterfaceVpcEndpointAwsService(service), private_dns_enabled=True,
                                     subnets=isolated[0], security_groups=[group])

    def _function(self, key: kms.IKey, vpc: ec2.IVpc, cidr: str) -> lambda_.Function:
        site = self.site
        name = runbook_function_name(site.config.env_name)
        log_group = logs.LogGroup(self, "FunctionLogs", log_group_name=f"/aws/lambda/{name}", encryption_key=key,
                                  retention=LOG_RETENTION, removal_policy=cdk.RemovalPolicy.RETAIN)
        role = iam.Role(self, "FunctionRole", role_name=f"{name}-{site.region}",
                        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                        description="what the runbook steps need, resource by resource")
        iam.ManagedPolicy(self, "FunctionPolicy", roles=[role], statements=_step_permissions(site, key, name))
        group = ec2.SecurityGroup(self, "FunctionSecurityGroup", vpc=vpc, allow_all_outbound=False,
                                  description="the runbook function: HTTPS to endpoints, PostgreSQL, in the VPC")
        group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443),
                              "AWS APIs: the isolated subnets route only to the VPC endpoints")
        group.add_egress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(5432), "the records database (canary rows)")
        return lambda_.Function(
            # The managed policy above is the whole of the role: CDK's own grants would add an inline duplicate.
            self, "Function", function_name=name, role=role.without_policy_updates(), log_group=log_group,
            code=_code(),
            handler="dr_runbooks.orchestration.handler.handler",
            runtime=lambda_.Runtime.PYTHON_3_11, architecture=lambda_.Architecture.X86_64,
            memory_size=512, timeout=cdk.Duration.seconds(LAMBDA_MAX_SECONDS),
            environment={ENV_VARIABLE: site.config.env_name}, environment_encryption=key,
            tracing=lambda_.Tracing.ACTIVE, reserved_concurrent_executions=RESERVED_CONCURRENCY,
            vpc=vpc, vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_groups=[group],
        )

    def _state_machine_role(self) -> iam.IRole:
        """One role for the region's state machines: invoke the function, deliver logs, trace; nothing else."""
        role = iam.Role(self, "StateMachineRole", assumed_by=iam.ServicePrincipal("states.amazonaws.com"),
                        description="the runbook state machines: invoke the runbook function, log, trace")
        iam.ManagedPolicy(self, "StateMachinePolicy", roles=[role], statements=[
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
        ])
        return role.without_policy_updates()

    def _state_machine(self, runbook: str, plan: Plan, key: kms.IKey) -> sfn.StateMachine:
        site = self.site
        name = state_machine_name(site.config.env_name, runbook)
        label = "".join(part.capitalize() for part in runbook.split("-"))
        log_group = logs.LogGroup(self, f"{label}Logs", log_group_name=f"/aws/vendedlogs/states/{name}",
                                  encryption_key=key, retention=LOG_RETENTION,
                                  removal_policy=cdk.RemovalPolicy.RETAIN)
        machine = sfn.StateMachine(
            self, f"{label}StateMachine", state_machine_name=name,
            definition_body=sfn.DefinitionBody.from_string(json.dumps(definition(plan, self.function.function_arn))),
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
        targets = [state_machine_arn(site.topology, site.region, runbook) for runbook, _ in SCHEDULED]
        role = iam.Role(self, "SchedulerRole", assumed_by=iam.ServicePrincipal(
            "scheduler.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": config.account}}),
            description="EventBridge Scheduler starts the scheduled runbooks, and nothing else")
        iam.ManagedPolicy(self, "SchedulerPolicy", roles=[role], statements=[
            iam.PolicyStatement(actions=["states:StartExecution"], resources=targets)])
        schedules = {}
        for (runbook, key), target in zip(SCHEDULED, targets, strict=True):
            enabled = getattr(config, f"{key}_enabled") and runbook in ORCHESTRATED
            schedules[runbook] = scheduler.CfnSchedule(
                self, "".join(part.capitalize() for part in runbook.split("-")) + "Schedule",
                name=state_machine_name(config.env_name, runbook),
                schedule_expression=getattr(config, f"{key}_schedule"),
                schedule_expression_timezone=config.schedule_timezone,
                flexible_time_window=scheduler.CfnSchedule.FlexibleTimeWindowProperty(mode="OFF"),
                state="ENABLED" if enabled else "DISABLED",
                description=f"{runbook} in {site.region}" + ("" if runbook in ORCHESTRATED else
                                                              " (waits for its state machine)"),
                target=scheduler.CfnSchedule.TargetProperty(
                    arn=target, role_arn=role.role_arn,
                    input=json.dumps({"target_region": site.region, "operator": "eventbridge-scheduler"}),
                    retry_policy=scheduler.CfnSchedule.RetryPolicyProperty(maximum_retry_attempts=0),
                ),
            )
        return schedules


def _code() -> lambda_.Code:
    """The asset directory is named after the hash of its content: CDK need not fingerprint 20 MB again each synth."""
    asset = asset_dir()
    return lambda_.Code.from_asset(str(asset), asset_hash=asset.name.removeprefix("asset-"),
                                   asset_hash_type=cdk.AssetHashType.CUSTOM)


def _step_permissions(site: Site, key: kms.IKey, function_name: str) -> list[iam.PolicyStatement]:
    """Every permission a step, the journal, the lock or the evidence needs; resources named from the topology."""
    topology, account, region = site.topology, site.config.account, site.region
    here, partner = site.here, site.partner
    secret = f"arn:aws:secretsmanager:{{region}}:{account}:secret:{topology.db_secret_name}-*"
    global_cluster = f"arn:aws:rds::{account}:global-cluster:{topology.global_cluster_id}"
    clusters = [site.cluster_arn(region), site.cluster_arn(site.partner_region)]
    return [
        iam.PolicyStatement(sid="ReadTopology", actions=["ssm:GetParameter"], resources=[
            f"arn:aws:ssm:{region}:{account}:parameter{parameter_name(site.config.env_name)}"]),
        iam.PolicyStatement(sid="JournalAndLock", actions=[
            "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"],
            resources=[site.table_arn(region)]),
        iam.PolicyStatement(sid="DataKey", actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                            resources=[key.key_arn]),
        iam.PolicyStatement(sid="PartnerDataKey", actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"],
                            resources=[f"arn:aws:kms:{site.partner_region}:{account}:key/*"],
                            conditions={"ForAnyValue:StringEquals": {"kms:ResourceAliases": partner.kms_key_alias}}),
        iam.PolicyStatement(sid="Evidence", actions=["s3:PutObject", "s3:PutObjectRetention", "s3:GetObject",
                                                     "s3:ListBucket"],
                            resources=[site.bucket_arn(here.evidence_bucket),
                                       f"{site.bucket_arn(here.evidence_bucket)}/*"]),
        iam.PolicyStatement(sid="ChartCanaries", actions=["s3:PutObject", "s3:GetObject", "s3:ListBucket",
                                                          "s3:GetReplicationConfiguration"],
                            resources=[arn for bucket in (here.chart_bucket, partner.chart_bucket)
                                       for arn in (site.bucket_arn(bucket), f"{site.bucket_arn(bucket)}/dr-canary/*")]),
        iam.PolicyStatement(sid="RecordsDatabase", actions=[
            "rds:DescribeGlobalClusters", "rds:DescribeDBClusters", "rds:SwitchoverGlobalCluster",
            "rds:FailoverGlobalCluster"], resources=[global_cluster, *clusters]),
        iam.PolicyStatement(sid="DatabaseSecret", actions=["secretsmanager:GetSecretValue"],
                            resources=[secret.format(region=r) for r in site.config.regions]),
        iam.PolicyStatement(sid="Alarms", actions=["cloudwatch:DescribeAlarms"], resources=[
            f"arn:aws:cloudwatch:{r}:{account}:alarm:{site.prefix}-*" for r in site.config.regions]),
        iam.PolicyStatement(sid="TrafficGates", actions=["cloudwatch:PutMetricData"], resources=["*"],
                            conditions={"StringEquals": {"cloudwatch:namespace": TRAFFIC_GATE_NAMESPACE}}),
        iam.PolicyStatement(sid="ReplicationLag", actions=["cloudwatch:GetMetricStatistics"], resources=["*"]),
        iam.PolicyStatement(sid="OnCall", actions=["sns:Publish"], resources=[here.oncall_topic_arn]),
        iam.PolicyStatement(sid="Logs", actions=["logs:CreateLogStream", "logs:PutLogEvents"],
                            resources=[f"arn:aws:logs:{region}:{account}:log-group:/aws/lambda/{function_name}:*"]),
        iam.PolicyStatement(sid="Tracing", actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                            resources=["*"]),
        iam.PolicyStatement(sid="VpcNetworkInterfaces", actions=[
            "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
            "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"], resources=["*"]),
    ]
