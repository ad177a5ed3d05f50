"""One module or package per AWS event source: HTTP, S3, SQS, direct invokes, Distributed Map batches."""
