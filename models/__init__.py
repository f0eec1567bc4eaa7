"""The GPT: its sizes and rules without torch (models.hparams), the torch model (models.gpt), the MLX model
(models.gpt_mlx) and the torch attention kernels (models.attention).

Nothing is imported here, so `models.hparams` stays importable without torch for the orchestrator and
proposal validation; import from the submodules.
"""
