"""boto3 adapters: the same code serves AWS, LocalStack and the local moto server (only the endpoint differs)."""
