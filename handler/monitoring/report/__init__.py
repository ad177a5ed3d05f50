"""The offline drift report: files or an S3 prefix of served requests against the baseline, as JSON and a page."""
