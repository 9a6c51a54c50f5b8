"""Evidence of runbook and drill runs: the record schema, its tamper-evident chain, where it is kept, and reports."""
