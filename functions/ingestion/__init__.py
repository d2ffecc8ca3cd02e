"""The ingestion service: extract, chunk, embed and index the documents tenants drop into their S3 folder."""
