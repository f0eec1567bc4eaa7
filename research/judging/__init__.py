"""Judging: the keep/discard verdict and what it rests on (pairing, the SPRT, the speed adjustment, drift), the keep
line, and finalize's conclusions. Pure functions over ledger rows; no files, no Prefect."""
