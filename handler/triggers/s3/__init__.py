"""The S3 trigger: the event, the job, the read-ahead and write-behind pipeline."""
