"""features service."""
