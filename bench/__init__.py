"""Benchmark harness and synthetic CRM data generator (not part of the test run)."""
