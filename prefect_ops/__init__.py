"""Prefect operations: serving the deployments, the warm work-pool worker, the temporary server's lifetime and the
settings Prefect needs on this machine. The research itself lives in experiment/ and flows/."""
