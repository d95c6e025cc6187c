"""The web dashboard: server-rendered pages at `/` (leaderboard), `/batches`, `/correlations` and
`/architectures/{id}`, with their CSS and scripts served from `/static` (no build step, nothing from a
CDN). The JSON API stays under /v1; the pages read through the same services. `create_app` installs them
with `app.web.dashboard.install_dashboard`."""
