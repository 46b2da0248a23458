"""The twilio channel adapter."""
