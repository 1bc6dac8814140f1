"""Budget envelopes, their evaluations and alerts live here (built on the rollups of traces)."""
