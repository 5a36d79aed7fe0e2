"""The ``[http]`` side: Prometheus metrics, health checks, the status page (docs/monitoring.md)."""
