"""AI-ETL's five workers and the gateway; `services.cli` is the `aietl` command."""
