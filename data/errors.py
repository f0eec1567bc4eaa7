"""The one exception type for data problems a user can cause or fix.

Its message is a single sentence that names the file or dataset and what to do (rebuild, pick another
dataset, fill a folder), so the CLI can print it as is instead of a traceback.
"""


class DataError(Exception):
    """A dataset is unknown, unreachable, empty, corrupt or does not match its tokenizer."""


class DataCorrupt(DataError):
    """Files on disk do not match their manifest (flipped byte, truncated shard, other tokenizer, edited manifest).

    Separate from DataError so that callers can tell it from a passing failure (a download): retrying
    cannot repair it, rebuilding can."""
