"""Records: the ledger, the run repository, the heartbeat, the run lock, the run folder's layout, its settings and the
state derived from them."""
