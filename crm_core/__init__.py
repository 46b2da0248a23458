"""The CRM core: customers, contact points, agents, interactions, tickets and their rules.

It owns the database and knows nothing of HTTP, Twilio, IMAP or Redis: channels and the
application reach it through its services and implement the ports in :mod:`crm_core.ports`.
"""
