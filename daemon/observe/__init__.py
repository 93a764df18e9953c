"""What an operator sees: Prometheus telemetry, the HTTP endpoints, the learning-curve report."""
