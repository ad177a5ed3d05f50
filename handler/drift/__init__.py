"""The offline drift report: files or S3 prefixes of served requests against the training baseline."""
