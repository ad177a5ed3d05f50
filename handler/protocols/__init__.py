"""Wire codecs, no transport: TF Serving REST, the Open Inference Protocol (JSON and binary), content codings."""
