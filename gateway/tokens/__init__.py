"""Token formats: the gateway's own (`native`) and, later, one module per CDN dialect."""
