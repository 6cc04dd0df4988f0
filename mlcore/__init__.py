"""Pure pieces several apps share: drift statistics and the Prometheus metric definitions.

No Django models and no app imports live here, so every app (``features``, ``models_registry``,
``predictions``, ``monitoring``) and the project package may import it without creating a cycle.

Why a top-level ``mlcore/`` and not ``mlengine/lib/``: ``mlengine`` is the Django project
package, and its ``urls`` and settings name every app's views and middleware; a shared piece
inside it would sit in the package that already depends on every app. A package of its own
depends on nothing in the project (numpy, scipy and prometheus_client only), so a notebook or
a training script can import the drift statistics without a configured Django project.
"""
