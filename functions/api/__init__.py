"""The public HTTP API (API Gateway HTTP API, payload v2) and the canary's probe task."""
