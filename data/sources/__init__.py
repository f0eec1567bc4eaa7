"""Where documents come from. Each source's iter_documents(spec, root) yields (text, split, invalid_utf8):
split is "train", "val", or None for "decide by val_fraction"; invalid_utf8 counts the byte sequences that
were replaced while decoding (tokenizers cannot take invalid UTF-8, and a bad byte must not kill a build)."""
