"""Viewing sessions: the service, entitlements, revocations."""
