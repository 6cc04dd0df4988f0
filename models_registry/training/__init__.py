"""The pure training core: configuration, dataset builder, trainer and baseline statistics.

Nothing in this package imports Django, so a model can be trained, evaluated and tested offline
from a candles mapping and a ``TrainingConfig``. The registry's services wrap it with rows,
artifacts and tasks.
"""
