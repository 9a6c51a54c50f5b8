"""The runbooks on AWS's own engines: Step Functions state machines generated from the plans, the Lambda handler their
tasks call (the same step code `drctl` runs), and the `--remote` client that starts and follows them."""
