"""The execution cache database: executions, the run ledger, leases, stat caches, schema, lifecycle."""
