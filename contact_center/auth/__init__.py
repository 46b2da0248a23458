"""Agent authentication: passwords, browser sessions, API tokens and the request middleware."""
