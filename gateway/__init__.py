"""Streaming access gateway: HLS/DASH manifest rewriting behind token verification."""

__version__ = "0.1.0"
