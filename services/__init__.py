"""AI-ETL's five workers and the gateway; `aietl.services.cli` is the `aietl` command."""

# The repository root on sys.path (a development install) also offers the bare name.
if __name__ != "aietl.services":
    raise ImportError(f"import aietl.services, not {__name__}: one module must not load under two names")
