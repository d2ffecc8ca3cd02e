"""The local runtime: the whole platform on one machine, with no AWS account and no Docker.

moto (server mode) emulates S3, SQS, EventBridge, DynamoDB, IAM and Step Functions and runs the real ASL;
this package provisions it from the same topology as the CDK app, routes every Lambda invocation to the real
handler in `functions/`, delivers EventBridge events to Lambda and Step Functions targets, polls SQS event
sources, and serves the HTTP API. Not shipped to AWS.
"""
