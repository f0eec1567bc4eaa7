"""Proposing: the search space, a proposal's validation, Claude's prompt, the proposal as recorded, the memory
headroom, and the proposers themselves (proposers/)."""
