"""Drills: proving recovery with the data itself (a restore drill, a failover game day) and leaving evidence.

HIPAA 164.308(a)(7)(ii)(D) asks that the backup and disaster-recovery plans be tested; a backup nobody restored is a
hope. Each drill runs on the engine (plan, journal, lock) or on the on-call runbooks, and ends in an evidence record.
"""
