"""The contact-center application: web app, API, realtime hub, routing and the CLI."""
