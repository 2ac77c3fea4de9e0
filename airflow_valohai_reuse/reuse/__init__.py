"""The reuse decision, shared by runs and plans: resolve a node, decide, pins, plans."""
