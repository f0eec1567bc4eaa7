"""The training process: `python -m training.entry EXP_DIR` and `python -m training.evaluate EXP_DIR`.

Imports only torch (or mlx), numpy and the data files: never Prefect, Hydra or DVC, so it starts fast and
runs on a bare GPU machine.
"""
