"""notifier's benchmark: run it with ``python -m bench`` (see bench/README.md)."""
