"""The HTTP rim: the app, the edge dispatcher, the session API, CORS, request facts, media types."""
