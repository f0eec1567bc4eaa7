"""The scientist's four jobs, one folder each: judging/ (the verdict), records/ (ledger, run repository, state),
proposing/ (the space and the proposers) and reporting/ (report, plot, costs, status). No Prefect here."""
