"""Inference code of the model endpoints. Each package runs inside the SageMaker Hugging Face inference
container (its `inference.py` is the container's entry point) and in the local model server, unchanged."""
