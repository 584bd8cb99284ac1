"""Manifest rewriting: pure functions from manifest bytes to a prepared template.

HLS: `hls.prepare_playlist` (line-oriented); DASH: `dash.prepare_mpd` (expat locates, bytes are spliced).

This package knows nothing of tokens or HTTP. The app hands a rewriter a callback that decides, for each
URI-bearing place, what to write (`Rewrite`); the rewriter returns a `PreparedManifest` whose `render`
fills token slots per request.
"""
