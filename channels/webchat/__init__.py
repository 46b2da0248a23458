"""The webchat channel adapter."""
