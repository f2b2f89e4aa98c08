"""What every AI-ETL service uses: settings, event contracts, the bus, the SQL store, logging, metrics."""
