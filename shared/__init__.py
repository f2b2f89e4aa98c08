"""What every AI-ETL service uses: settings, event contracts, the bus, the SQL store, logging, metrics."""

# The repository root on sys.path (a development install) also offers the bare name.
if __name__ != "aietl.shared":
    raise ImportError(f"import aietl.shared, not {__name__}: one module must not load under two names")
