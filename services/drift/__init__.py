"""Schema drift: versioned baselines per source table, drift detection, policies and an audit trail."""
