"""The memory service: preferences, conversation summaries and entity facts per tenant + user."""
