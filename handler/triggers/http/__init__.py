"""HTTP triggers: the Powertools resolvers, one route table per protocol, body checks, errors, OpenAPI."""
