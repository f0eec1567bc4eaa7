"""Reporting: the report, the progress plot, the costs, `autoresearch status`'s tables and the run's time estimate."""
