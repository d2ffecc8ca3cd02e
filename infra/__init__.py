"""Infrastructure as code: the CDK app that deploys the platform described by `agentplatform.topology`."""
