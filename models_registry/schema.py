"""The registry API's OpenAPI pieces: parameters, examples and error responses.

Kept apart from ``apis.py`` so the views read as views; the response shapes themselves are the
serializers in ``serializers.py``.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

from mlengine.schema import (
    BODY_ERRORS,
    ERROR_RESPONSES,
    INVALID_BODY_EXAMPLE,
    error_response,
    int_parameter,
)
from models_registry.naming import MODEL_NAME_PATTERN
from models_registry.selectors import MAX_RUN_ID, VERSION_PATTERN
from models_registry.serializers import (
    ACTIVATION_EXAMPLE,
    CHALLENGER_EXAMPLE,
    ActivationResponse,
    ChallengerResponse,
    NamedActivationResponse,
    TrainingRunSerializer,
)

MODEL_NAME_PARAMETER = OpenApiParameter(
    "name",
    {"type": "string", "pattern": MODEL_NAME_PATTERN, "maxLength": 63},
    OpenApiParameter.PATH,
    description="A model name (2-63 characters: a-z, then a-z, 0-9 or '-'; not like v3).",
    examples=[OpenApiExample("default", value="default")],
)
MODEL_QUERY_PARAMETER = OpenApiParameter(
    "model",
    {"type": "string", "pattern": MODEL_NAME_PATTERN, "maxLength": 63},
    OpenApiParameter.QUERY,
    required=False,
    description=(
        "The model to serve the symbol with. Without it: the model whose symbols list the "
        "symbol (`default` when several do and it is one of them, 400 `ambiguous_model` when "
        "it is not; `default` when none does)."
    ),
)
UNKNOWN_MODEL = error_response("Unknown model", "unknown_model", "Unknown model 'fx-hourly'.")
MALFORMED_MODEL = error_response(
    "Malformed model name or version",
    "invalid_parameter",
    "a model name is 2-63 characters: a lower-case letter, then lower-case letters, digits or '-'",
)
UNKNOWN_MODEL_OR_VERSION = error_response(
    "Unknown model or version",
    "unknown_model",
    "Unknown model 'fx-hourly'.",
    ("unknown_model_version", "Unknown model version v9 of fx-hourly."),
)
CHALLENGER_REQUEST_EXAMPLES = [
    OpenApiExample(
        "with a reason", value={"reason": "shadow-score the 5-day model"}, request_only=True
    )
]
CHALLENGER_RESPONSE = OpenApiResponse(
    ChallengerResponse, examples=[OpenApiExample("added", value=CHALLENGER_EXAMPLE)]
)
CHALLENGER_CONFLICT = error_response(
    "Not ready, the champion, or its artifact invalid",
    "challenger_refused",
    "v3 is the champion of fx-hourly; it cannot also be a challenger.",
    ("version_not_ready", "v4 is failed; only a ready version can be a challenger."),
)

VERSION_PARAMETER = OpenApiParameter(
    "version",
    {"type": "string", "pattern": VERSION_PATTERN},
    OpenApiParameter.PATH,
    description="A version number, with or without the v: v3 or 3.",
    examples=[OpenApiExample("v1", value="v1")],
)
RUN_PARAMETER = int_parameter(
    "run_id",
    minimum=1,
    maximum=MAX_RUN_ID,
    location=OpenApiParameter.PATH,
    description="The id of a training run, as answered by POST /models/train.",
    examples=[OpenApiExample("run 1", value=1)],
)
MALFORMED_VERSION = error_response(
    "Malformed version", "invalid_parameter", "version must look like v3 or 3"
)
UNKNOWN_VERSION = error_response(
    "Unknown version", "unknown_model_version", "Unknown model version v9."
)
PAGE_ERRORS = {
    400: error_response(
        "Malformed page or page_size",
        "invalid_parameter",
        "page_size must be an integer between 1 and 100",
    ),
    404: error_response("Page past the last one", "not_found", "Invalid page."),
}

WRITE_ERRORS = {
    400: error_response(
        "Malformed request or body",
        "invalid_parameter",
        "version must look like v3 or 3",
        INVALID_BODY_EXAMPLE,
    ),
    **BODY_ERRORS,
    401: error_response(
        "Not authenticated", "not_authenticated", "Authentication credentials were not provided."
    ),
    403: error_response(
        "Missing the registry permission",
        "permission_denied",
        "You do not have permission to perform this action.",
    ),
}

ACTIVATE_REQUEST_EXAMPLES = [
    OpenApiExample(
        "activate with a reason",
        value={"reason": "better validation AUC"},
        request_only=True,
    )
]
ACTIVATED_RESPONSE = OpenApiResponse(
    ActivationResponse, examples=[OpenApiExample("activated", value=ACTIVATION_EXAMPLE)]
)
ACTIVATE_CONFLICT = error_response(
    "Not ready, artifact invalid, or refused by policy",
    "version_not_ready",
    "v4 is failed; only a ready version can be activated.",
)

ROLLBACK_REQUEST_EXAMPLES = [
    OpenApiExample("roll back", value={"reason": "live accuracy dropped"}, request_only=True),
    OpenApiExample(
        "roll back to a challenger scoring worse, under enforce",
        value={"reason": "v3 is broken; v2 is the known fallback", "force": True},
        request_only=True,
    ),
]
ROLLED_BACK_RESPONSE = OpenApiResponse(
    ActivationResponse,
    examples=[
        OpenApiExample(
            "rolled back",
            value={
                **ACTIVATION_EXAMPLE,
                "active_version": "v2",
                "previous_version": "v3",
            },
        )
    ],
)
ROLLBACK_DESCRIPTION = (
    "The previous champion is re-activated without asking the always-up baseline again. If it "
    "has since been made a challenger, the rollback promotes a challenger: its comparison with "
    "the champion is recorded on the `rollback` event, and under `PROMOTION_POLICY=enforce` a "
    "`worse` verdict refuses it (409 `promotion_refused`) unless the body has `force: true` and "
    "a `reason`."
)
ROLLBACK_CONFLICT = error_response(
    "Nothing to roll back to, artifact invalid, or refused by policy",
    "no_previous_version",
    "There is no previous version to roll back to.",
    (
        "promotion_refused",
        "v2 scored worse than the champion in shadow: log loss difference +0.0213 over 840 "
        "paired predictions. PROMOTION_POLICY=enforce: pass force=true with a reason to "
        "override.",
    ),
)

TRAIN_REQUEST_EXAMPLES = [
    OpenApiExample(
        "train a random forest",
        value={"symbols": ["SP500"], "model": "random_forest", "seed": 7},
        request_only=True,
    ),
    OpenApiExample(
        "train on a date range",
        value={"symbols": ["SP500"], "start": "2010-01-01", "end": "2015-12-31T23:00:00Z"},
        request_only=True,
    ),
]
QUEUED_RESPONSE = OpenApiResponse(
    TrainingRunSerializer,
    examples=[
        OpenApiExample("queued", value={"id": 7, "status": "queued", "url": "/training-runs/7"})
    ],
)
TRAIN_ERRORS = {
    400: error_response(
        "Malformed request, invalid config (a bad `start` / `end`, start not before end) or a "
        "date range without enough candles",
        "invalid_parameter",
        "invalid training range: SP500: no candles between 2030-01-01 and 2031-01-01",
        INVALID_BODY_EXAMPLE,
    ),
    404: error_response(
        "A symbol the market data does not know", "unknown_symbol", "Unknown symbol 'XYZ'."
    ),
    502: error_response(
        "The market data answered garbage, or ignores the `start` / `end` of /candles",
        "upstream_bad_response",
        "the market data platform at http://md:8100 ignores the 'end' parameter of /candles: "
        "asked for SP500 up to 2011-04-04T23:59:59.999999Z (page 2), it repeated a page up to "
        "2018-12-31T00:00:00Z.",
    ),
    503: error_response(
        "Upstream down, or broker down (nothing queued, the run is recorded as failed)",
        "upstream_unavailable",
        "The market data platform is unavailable.",
        ("broker_unavailable", "The task broker is unavailable; the work was not queued."),
    ),
    504: ERROR_RESPONSES[504],
}

RUN_ERRORS = {
    400: error_response(
        "Malformed run id",
        "invalid_parameter",
        f"run id must be an integer between 1 and {MAX_RUN_ID}",
    ),
    404: error_response("Unknown run", "not_found", "Unknown training run 9."),
}

NAMED_ACTIVATED_RESPONSE = OpenApiResponse(
    NamedActivationResponse,
    examples=[OpenApiExample("activated", value={"model": "fx-hourly", **ACTIVATION_EXAMPLE})],
)
NAMED_ROLLED_BACK_RESPONSE = OpenApiResponse(
    NamedActivationResponse,
    examples=[
        OpenApiExample(
            "rolled back",
            value={
                "model": "fx-hourly",
                **ACTIVATION_EXAMPLE,
                "active_version": "v2",
                "previous_version": "v3",
            },
        )
    ],
)
NAMED_PAGE_ERRORS = {
    400: PAGE_ERRORS[400],
    404: error_response(
        "Unknown model, or page past the last one",
        "unknown_model",
        "Unknown model 'fx-hourly'.",
        ("not_found", "Invalid page."),
    ),
}
