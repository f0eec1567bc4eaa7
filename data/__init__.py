"""Data pipeline: sources -> corpus -> tokenizer -> token shards, the loader and the val_bpb metric."""
