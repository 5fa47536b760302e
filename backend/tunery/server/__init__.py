"""The platform service: REST API, database, job queue, workers, live metrics."""
