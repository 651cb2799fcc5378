"""Sources: each collects one kind of entity on its own interval and writes the store."""
