"""Event adapters: AWS event shapes in, calls to the serving core out (no Keras here)."""
