"""Observing live state (who writes, lag, replication, backups, alarms, traffic): never a stored flag."""
