"""What producers and workers must agree on: models, settings, keys, protocol, errors."""
