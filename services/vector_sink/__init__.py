"""vector_sink service."""
