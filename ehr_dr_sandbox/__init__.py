"""The sandbox: the whole two-region estate emulated locally (moto behind a dispatch seam, plus emulations).

See `docs/sandbox.md`; the seam every emulation plugs into is `ehr_dr_sandbox.dispatch`.
"""
