"""Test doubles of cloud vector databases that cannot run here. They check the wire contract the
real client libraries speak (paths, field names, encodings, filter language), not the servers'
behaviour at scale: a green test against a fake is no proof that the live service agrees."""
