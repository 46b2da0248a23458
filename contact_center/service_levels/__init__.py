"""Service levels: business calendars, SLA policies, escalation rules and the escalation pass."""
