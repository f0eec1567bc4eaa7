"""The `autoresearch` command line: argument parsing, the pre-flight check, the terminal view, the error sentences."""
