"""Test harnesses: real servers (PostgreSQL, Kafka) started for tests."""
