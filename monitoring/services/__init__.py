"""Monitoring services: drift, freshness, outcomes, latency and history."""
