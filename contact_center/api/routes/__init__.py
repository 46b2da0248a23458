"""Route groups of the REST API, one module per resource."""
