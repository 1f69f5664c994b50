"""Storage functions: one per race-prone operation, each a single SQL statement
or one locked transaction (docs/architecture.md#rules)."""
