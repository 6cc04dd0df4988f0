"""Registry services: training (one service behind every entry point), the training queue
(runs handed to Celery) and activation."""
