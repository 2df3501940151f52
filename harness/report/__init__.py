"""Reports read run directories only; they never re-run a model."""
