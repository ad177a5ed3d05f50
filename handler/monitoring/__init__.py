"""What watches the served batches: drift, data capture, inference metrics and statistics, the offline report."""
