"""ehr-dr runbooks: the engine, the on-call commands, the drills: what runs in production and in the Lambda package.
Never imports aws_cdk, nor the sandbox (`ehr_dr_sandbox`), which emulates AWS for rehearsals and tests."""
