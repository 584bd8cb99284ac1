"""Talking to origins: the pooled client, the authenticated origin header, the manifest cache."""
