"""The HTTP API (`/v1`, OpenAPI at `/docs`); `create_app` in app.api.app builds it.

Nothing is imported here, so importing a light module of this package (the response schemas, which the
Python client shares) does not load the whole app, torch included."""
