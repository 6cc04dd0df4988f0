"""Registry services: training (one service behind every entry point) and activation."""
