"""The scientist's bookkeeping: search space, proposers, decision rule, ledger, run repository. No Prefect here."""
