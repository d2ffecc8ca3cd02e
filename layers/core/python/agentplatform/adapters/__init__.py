"""Implementations of the ports: `aws` (boto3) and `memory` (in-memory fakes for tests)."""
