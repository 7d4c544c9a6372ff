"""The master process: its loop, the pure maintenance policy, signals."""
