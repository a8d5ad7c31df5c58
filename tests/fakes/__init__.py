"""Fake provider HTTP servers (Replicate, OpenAI) on 127.0.0.1 for tests and benchmarks."""
