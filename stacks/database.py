"""The records database of one region: an isolated VPC with flow logs and one cluster of the Aurora PostgreSQL Global
Database (the writer in the primary region, a read-only secondary in the DR region).

Both clusters are encrypted with their region's key, deletion-protected, IAM-authenticated, TLS-only (`rds.force_ssl`),
export their PostgreSQL log, and have enhanced monitoring. The admin credentials live in Secrets Manager under
`topology.db_secret_name`, rotated every 30 days and replicated to the DR region (encrypted with its key), so a
runbook there reads them while the primary is dark. The secondary carries no credentials: it joins the global cluster.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from dr_runbooks.topology import RECORDS_DB_INSTANCE_CLASS
from stacks.buckets import access_log_bucket
from stacks.site import Site

ENGINE_VERSION = rds.AuroraPostgresEngineVersion.VER_16_9
#: The records instances' class, named once in the topology (a restore drill's scratch instance falls back to it).
INSTANCE_TYPE = ec2.InstanceType(RECORDS_DB_INSTANCE_CLASS.removeprefix("db."))
PORT = 5432
LOG_EXPORTS = ["postgresql"]
MONITORING_INTERVAL = cdk.Duration.seconds(15)
SECRET_ROTATION = cdk.Duration.days(30)
ADMIN_USER = "records_admin"
#: Distinct per region so the two VPCs can be peered later without renumbering.
VPC_CIDRS = ("10.40.0.0/16", "10.41.0.0/16")


class DatabaseStack(cdk.Stack):
    """The region's VPC and its member of the global cluster `topology.global_cluster_id`."""

    def __init__(self, scope: Construct, site: Site, key: kms.IKey) -> None:
        super().__init__(scope, site.stack_name("database"), env=site.env,
                         description=f"{site.prefix} records database")
        # Literal, not the VPC's token, so security-group rules read as what they are (and cdk-nag can check them).
        self.cidr = VPC_CIDRS[site.home_index]
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(self.cidr),
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="records", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24)
            ],
            restrict_default_security_group=False,
        )
        self.vpc.add_flow_log(
            "FlowLogs",
            destination=ec2.FlowLogDestination.to_s3(access_log_bucket(self, site), "vpc-flow-logs/"),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        self.security_group = ec2.SecurityGroup(
            self, "DatabaseSecurityGroup", vpc=self.vpc, description="PostgreSQL from inside the VPC only",
            allow_all_outbound=False,
        )
        self.security_group.add_ingress_rule(ec2.Peer.ipv4(self.cidr), ec2.Port.tcp(PORT), "PostgreSQL from the VPC")
        self.parameter_group = rds.ParameterGroup(
            self, "ForceTls", engine=rds.DatabaseClusterEngine.aurora_postgres(version=ENGINE_VERSION),
            description="TLS only", parameters={"rds.force_ssl": "1"},
        )
        self.monitoring_role = iam.Role(
            self,
            "MonitoringRole",
            assumed_by=iam.ServicePrincipal("monitoring.rds.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonRDSEnhancedMonitoringRole")
            ],
        )
        if site.is_primary:
            self._primary_cluster(site, key)
        else:
            self._secondary_cluster(site, key)

    def _primary_cluster(self, site: Site, key: kms.IKey) -> None:
        config = site.config
        cluster = rds.DatabaseCluster(
            self,
            "Records",
            engine=rds.DatabaseClusterEngine.aurora_postgres(version=ENGINE_VERSION),
            cluster_identifier=site.here.db_cluster_id,
            default_database_name=site.topology.database_name,
            credentials=rds.Credentials.from_generated_secret(
                ADMIN_USER,
                secret_name=site.topology.db_secret_name,
                encryption_key=key,
                replica_regions=[
                    secretsmanager.ReplicaRegion(
                        region=site.partner_region,
                        # By alias ARN in the partner region: its key id is not known here (no cross-region ref).
                        encryption_key=kms.Key.from_key_arn(
                            self, "PartnerKey", site.key_alias_arn(site.partner_region)
                        ),
                    )
                ],
            ),
            # Minor versions carry the engine's security fixes: said explicitly, as for the DR region's reader below.
            writer=rds.ClusterInstance.provisioned("writer", instance_type=INSTANCE_TYPE,
                                                   auto_minor_version_upgrade=True),
            readers=[rds.ClusterInstance.provisioned("reader", instance_type=INSTANCE_TYPE,
                                                     auto_minor_version_upgrade=True)],
            vpc=self.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            security_groups=[self.security_group],
            port=PORT,
            parameter_group=self.parameter_group,
            storage_encrypted=True,
            storage_encryption_key=key,
            deletion_protection=True,
            backup=rds.BackupProps(retention=cdk.Duration.days(config.backup_retention_days)),
            iam_authentication=True,
            cloudwatch_logs_exports=LOG_EXPORTS,
            monitoring_interval=MONITORING_INTERVAL,
            monitoring_role=self.monitoring_role,
            copy_tags_to_snapshot=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        self._rotation_endpoint()
        cluster.add_rotation_single_user(automatically_after=SECRET_ROTATION)
        rds.CfnGlobalCluster(
            self,
            "GlobalCluster",
            global_cluster_identifier=site.topology.global_cluster_id,
            source_db_cluster_identifier=cluster.cluster_arn,
            deletion_protection=True,
        )

    def _rotation_endpoint(self) -> None:
        """The rotation Lambda runs in these isolated subnets: Secrets Manager is reached through an endpoint."""
        endpoint_group = ec2.SecurityGroup(
            self, "SecretsManagerEndpointSecurityGroup", vpc=self.vpc, allow_all_outbound=False,
            description="HTTPS to Secrets Manager from inside the VPC only",
        )
        endpoint_group.add_ingress_rule(ec2.Peer.ipv4(self.cidr), ec2.Port.tcp(443), "HTTPS from the VPC")
        self.vpc.add_interface_endpoint(
            "SecretsManager", service=ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER, private_dns_enabled=True,
            security_groups=[endpoint_group], open=False,
        )

    def _secondary_cluster(self, site: Site, key: kms.IKey) -> None:
        """L1 on purpose: the L2 cluster always creates credentials, and a global secondary must have none."""
        config = site.config
        subnets = rds.CfnDBSubnetGroup(
            self, "SubnetGroup", db_subnet_group_description="isolated subnets of the records database",
            subnet_ids=self.vpc.select_subnets(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED).subnet_ids,
        )
        parameter_group = self.parameter_group.bind_to_cluster()
        cluster = rds.CfnDBCluster(
            self,
            "Records",
            db_cluster_identifier=site.here.db_cluster_id,
            global_cluster_identifier=site.topology.global_cluster_id,
            engine="aurora-postgresql",
            engine_version=ENGINE_VERSION.aurora_postgres_full_version,
            db_subnet_group_name=subnets.ref,
            vpc_security_group_ids=[self.security_group.security_group_id],
            port=PORT,
            db_cluster_parameter_group_name=parameter_group.parameter_group_name,
            storage_encrypted=True,
            kms_key_id=key.key_arn,
            deletion_protection=True,
            backup_retention_period=config.backup_retention_days,
            enable_iam_database_authentication=True,
            enable_cloudwatch_logs_exports=LOG_EXPORTS,
            copy_tags_to_snapshot=True,
        )
        cluster.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        instance = rds.CfnDBInstance(
            self,
            "Reader",
            db_cluster_identifier=cluster.ref,
            db_instance_class=RECORDS_DB_INSTANCE_CLASS,
            engine="aurora-postgresql",
            publicly_accessible=False,
            auto_minor_version_upgrade=True,
            monitoring_interval=int(MONITORING_INTERVAL.to_seconds()),
            monitoring_role_arn=self.monitoring_role.role_arn,
        )
        instance.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
