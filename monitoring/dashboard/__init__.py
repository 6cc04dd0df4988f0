"""The monitoring dashboard (``/dashboard/``): what it shows, read through the same selectors as
the API, one module per panel beside the page that shows it.

``dashboard_context`` gathers every card of ``/dashboard/``: the active version, health,
freshness, drift per feature over time, live latency over time, live accuracy against validation
accuracy, the latest predictions and the activation history. Charts are drawn here, server side,
by ``charts``; a card with nothing to draw carries a plain "No data yet" message with
a hint instead of a chart. Nothing here writes.

``views`` assembles the page (``dashboard_context``, ``dashboard_view``); ``common`` holds the
``Panel`` card and the text formats every panel uses.
"""
