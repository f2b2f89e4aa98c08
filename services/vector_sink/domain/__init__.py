"""Pure vector sink logic, no I/O: the stored model and its ids, chunking, reconciliation plans, filters."""
