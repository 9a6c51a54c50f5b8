"""ehr-dr runbooks: the engine, the on-call commands, the drills and the local sandbox. Never imports aws_cdk."""
