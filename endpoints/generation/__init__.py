"""Chat generation (OpenAI chat-completions contract) with schema-constrained tool calls."""
