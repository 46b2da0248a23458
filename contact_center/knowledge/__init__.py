"""The knowledge base: articles for agents (REST API, suggestions and "solved by" on tickets) and
the public help centre with the search the chat widget uses."""
