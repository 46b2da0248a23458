"""Domain services: each takes a unit of work and records the events it causes."""
