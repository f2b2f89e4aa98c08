"""predict service."""
