"""Operations data for operators (REST under /api/v1/ops): process heartbeats and consumer lag,
dead letters and their republication, recent events, and read-only summaries the console shows."""
