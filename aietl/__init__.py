"""AI-ETL's one import package: `aietl.services` (the five workers, the gateway, the `aietl` command)
and `aietl.shared` (settings, contracts, bus, store).

The repository keeps `services/` and `shared/` at its root; `aietl/services` and `aietl/shared` are
links to them, so the distribution installs only `aietl` and never claims the generic top-level names
`services` and `shared` in a user's environment."""
