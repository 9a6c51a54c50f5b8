"""The CDK v2 app of the ehr-dr estate: one stack per concern and region, every physical name from the topology.

Imports aws_cdk; dr_runbooks never imports this package.
"""
