"""The CDK (Python) app: `python -m infra.cdk.app`, run by `npx cdk synth` through cdk.json.

One construct module per concern (storage, functions, workflows, events, api), each iterating
`agentplatform.topology.PLATFORM`; `stack.py` wires them together and `bundling.py` builds the Lambda assets
without Docker.
"""
