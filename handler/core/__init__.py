"""The serving core: knows the model, not the AWS event shapes."""
