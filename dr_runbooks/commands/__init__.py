"""The on-call click commands: status, switchover, failover, failback, resume, unlock."""
