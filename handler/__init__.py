"""skewless: serve a Keras model from AWS Lambda exactly as it answered in training."""
