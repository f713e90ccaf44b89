"""What executes chat jobs: the Celery app, its tasks, and the provider client."""
