"""The platform's shared core: settings, errors, observability, ports, adapters and the composition root.

Shipped to every Lambda function as one layer; installed editable for development and tests.
Nothing in this package imports `functions/`, reads the environment or builds a client at import time.
"""
