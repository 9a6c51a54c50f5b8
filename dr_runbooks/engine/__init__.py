"""The runbook engine: plans as data, a concurrent runner, the journal and the lock in the target region."""
