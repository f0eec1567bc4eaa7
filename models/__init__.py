"""The GPT (torch: models.gpt, MLX: models.gpt_mlx) and its attention kernels (models.attention).

The attention *function* is not re-exported here: `models.attention` must stay the module (tests and the
trainer reach its hook through it)."""

from models.attention import get_attention_impl, set_attention_impl, use_attention_impl
from models.gpt import GPT, GPTConfig

__all__ = ["GPT", "GPTConfig", "get_attention_impl", "set_attention_impl", "use_attention_impl"]
