"""Task families. Only `tasks.math` exists today."""
