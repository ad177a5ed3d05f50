"""File formats: a reader and a writer each, in a registry (CSV, Parquet, JSON Lines, .npy)."""
