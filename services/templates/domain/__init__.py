"""Pure core of the templates service: no I/O, no frameworks."""
