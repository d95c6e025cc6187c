"""nasscore service: HTTP API, database, worker pool and command line."""
