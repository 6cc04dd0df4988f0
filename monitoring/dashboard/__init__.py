"""The monitoring dashboard (``/dashboard/``): what it shows, read through the same selectors as
the API, one module per panel beside the page that shows it.

``dashboard_context`` gathers every card of ``/dashboard/``: the active version, health,
freshness, drift per feature over time, live latency over time, live accuracy against validation
accuracy, the latest predictions and the activation history. Charts are Vega-Lite specs built
with altair and rendered to inline SVG on the server by vl-convert (``charts``); a card with
nothing to draw carries a plain "No data yet" message with a hint instead of a chart. Nothing
here writes.

``views`` assembles the page (``dashboard_context``, ``dashboard_view``); ``common`` holds the
``Panel`` card and the text formats every panel uses. A new panel is a module with a function
returning a ``Panel``: ``charts.line_layer`` per chart, ``charts.side_by_side`` to show two
(champion and challenger, say) in one row, then one line in ``views.dashboard_context`` and,
for a chart card, one entry in ``chart_panels``.
"""
