"""The SolarEdge Monitoring API integration (read-only)."""
