"""Storage functions: one per race-prone operation, each a single SQL statement
or one locked transaction (DESIGN §4)."""
