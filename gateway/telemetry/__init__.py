"""What the gateway tells its operators: Prometheus metrics, structured logs with request ids, the audit trail."""
