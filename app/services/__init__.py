"""The service layer: the operations the HTTP API, the CLI and the dispatcher share, written against
explicit sessions so every caller controls its own transaction."""
