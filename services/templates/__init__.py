"""templates service."""
