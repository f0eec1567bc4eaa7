"""The Prefect tasks the flows run: prepare, propose, train, evaluate, record, and their logs and artifacts."""
