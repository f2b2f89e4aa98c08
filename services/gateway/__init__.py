"""The gateway: REST under /api/v1 with JWT auth; reads the stores and turns commands into events."""
