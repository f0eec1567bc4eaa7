"""The research run's Prefect flows: research, suite, finalize, and an experiment's train-then-evaluate."""
