"""Long jobs that own their transactions: one unit of work per chunk, progress shown."""
