"""Registry API: list and inspect versions, train, activate, roll back, activation history."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mlengine.api import DefaultPagination, ascii_int, serves_method
from mlengine.errors import InvalidBody, InvalidParameter
from mlengine.throttling import ANON_READ, TRAIN, WRITE
from models_registry.models import MANAGE_REGISTRY_PERMISSION, ActivationEvent, ModelVersion
from models_registry.schema import (
    ACTIVATE_CONFLICT,
    ACTIVATE_REQUEST_EXAMPLES,
    ACTIVATED_RESPONSE,
    MALFORMED_VERSION,
    PAGE_ERRORS,
    QUEUED_RESPONSE,
    ROLLBACK_CONFLICT,
    ROLLBACK_REQUEST_EXAMPLES,
    ROLLED_BACK_RESPONSE,
    RUN_ERRORS,
    RUN_PARAMETER,
    TRAIN_ERRORS,
    TRAIN_REQUEST_EXAMPLES,
    UNKNOWN_VERSION,
    VERSION_PARAMETER,
    WRITE_ERRORS,
)
from models_registry.selectors import (
    MAX_RUN_ID,
    activation_event_list,
    model_version_get,
    model_version_list,
    training_run_get,
)
from models_registry.serializers import (
    ActivateRequestSerializer,
    ActivationEventSerializer,
    ModelVersionDetailSerializer,
    ModelVersionSummarySerializer,
    RollbackRequestSerializer,
    TrainingRunSerializer,
    TrainRequestSerializer,
)
from models_registry.services.activation import model_version_activate, model_version_rollback
from models_registry.services.queue import training_run_enqueue
from models_registry.services.training import training_config_resolve, training_data_check


class HasRegistryPermission(permissions.BasePermission):
    """Registry writes: a signed-in user (401 otherwise) with ``manage_registry`` (403)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not serves_method(request, view):
            return True  # a 405, not a 401 (mlengine.api.serves_method)
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(MANAGE_REGISTRY_PERMISSION))


def _validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    # The parser already refuses a body that is not an object; reading one as {} here would run
    # the write with every default (an activation, a rollback, a training) the client never asked.
    if not isinstance(data, dict):
        raise InvalidBody()
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class ModelListApi(ListAPIView):
    """Paginated by DRF's list view, so the schema documents page, page_size and the envelope."""

    throttle_scope = ANON_READ
    serializer_class = ModelVersionSummarySerializer
    pagination_class = DefaultPagination

    def get_queryset(self) -> QuerySet[ModelVersion]:
        return model_version_list()

    @extend_schema(
        operation_id="models_list",
        summary="Model versions, newest first",
        responses={200: ModelVersionSummarySerializer(many=True), **PAGE_ERRORS},
    )
    def get(self, request: Request) -> Response:
        return super().get(request)


class ModelDetailApi(APIView):
    throttle_scope = ANON_READ

    @extend_schema(
        operation_id="models_retrieve",
        parameters=[VERSION_PARAMETER],
        summary="One model version in full (v3 or 3)",
        responses={200: ModelVersionDetailSerializer, 400: MALFORMED_VERSION, 404: UNKNOWN_VERSION},
    )
    def get(self, request: Request, version: str) -> Response:
        return Response(ModelVersionDetailSerializer(model_version_get(version=version)).data)


class LegacyModelDetailApi(ModelDetailApi):
    """``GET /model/{version}``: the seed API's path, kept for existing clients."""

    @extend_schema(
        operation_id="model_retrieve_legacy",
        parameters=[VERSION_PARAMETER],
        summary="One model version in full (legacy path of /models/{version})",
        deprecated=True,
        responses={200: ModelVersionDetailSerializer, 400: MALFORMED_VERSION, 404: UNKNOWN_VERSION},
    )
    def get(self, request: Request, version: str) -> Response:
        return super().get(request, version)


class ModelActivateApi(APIView):
    permission_classes = [HasRegistryPermission]
    throttle_scope = WRITE

    @extend_schema(
        operation_id="models_activate",
        parameters=[VERSION_PARAMETER],
        summary="Make a version the active one",
        description=(
            "Activating the active version is a no-op (200, `changed: false`). Under "
            "`PROMOTION_POLICY=warn` a version that does not beat the always-up baseline is "
            "activated with a `warning`; under `enforce` it is refused (409) unless the body has "
            "`force: true` and a `reason`."
        ),
        request=ActivateRequestSerializer,
        examples=ACTIVATE_REQUEST_EXAMPLES,
        responses={
            200: ACTIVATED_RESPONSE,
            **WRITE_ERRORS,
            404: UNKNOWN_VERSION,
            409: ACTIVATE_CONFLICT,
        },
    )
    def post(self, request: Request, version: str) -> Response:
        data = _validated(ActivateRequestSerializer, request.data)
        result = model_version_activate(
            version=version, actor=request.user, reason=data["reason"], force=data["force"]
        )
        return Response(result.as_dict())


class ModelRollbackApi(APIView):
    permission_classes = [HasRegistryPermission]
    throttle_scope = WRITE

    @extend_schema(
        operation_id="models_rollback",
        summary="Re-activate the version that was active before the current one",
        request=RollbackRequestSerializer,
        examples=ROLLBACK_REQUEST_EXAMPLES,
        responses={
            200: ROLLED_BACK_RESPONSE,
            **WRITE_ERRORS,
            409: ROLLBACK_CONFLICT,
        },
    )
    def post(self, request: Request) -> Response:
        data = _validated(RollbackRequestSerializer, request.data)
        result = model_version_rollback(actor=request.user, reason=data["reason"])
        return Response(result.as_dict())


class ActivationListApi(ListAPIView):
    throttle_scope = ANON_READ
    serializer_class = ActivationEventSerializer
    pagination_class = DefaultPagination

    def get_queryset(self) -> QuerySet[ActivationEvent]:
        return activation_event_list()

    @extend_schema(
        operation_id="models_activations_list",
        summary="Activation history, newest first",
        responses={200: ActivationEventSerializer(many=True), **PAGE_ERRORS},
    )
    def get(self, request: Request) -> Response:
        return super().get(request)


class ModelTrainApi(APIView):
    permission_classes = [HasRegistryPermission]
    throttle_scope = TRAIN

    @extend_schema(
        operation_id="models_train",
        summary="Train a new version (asynchronously)",
        description=(
            "Records a training run and hands it to a Celery worker once committed; answers 202 "
            "with the run's id. Poll `GET /training-runs/{id}`. The body overrides "
            "`configs/train.yaml` (`symbols`, `model`, `seed`, `start`, `end`) or gives a whole "
            "`config` (which `start` / `end` still override). By default training reads all the "
            "history the market data has."
        ),
        request=TrainRequestSerializer,
        examples=TRAIN_REQUEST_EXAMPLES,
        responses={
            202: QUEUED_RESPONSE,
            **WRITE_ERRORS,
            **TRAIN_ERRORS,
        },
    )
    def post(self, request: Request) -> Response:
        data = _validated(TrainRequestSerializer, request.data)
        config = training_config_resolve(
            config_data=data.get("config"),
            symbols=data.get("symbols"),
            model_type=data.get("model"),
            seed=data.get("seed"),
            start=data.get("start"),
            end=data.get("end"),
        )
        training_data_check(config=config)  # no run row for a request that could only fail
        run = training_run_enqueue(
            config=config, source="api", requested_by=request.user, activate=data["activate"]
        )
        body = TrainingRunSerializer(run).data
        body["url"] = f"/training-runs/{run.pk}"
        return Response(body, status=202, headers={"Location": body["url"]})


class TrainingRunDetailApi(APIView):
    throttle_scope = ANON_READ

    @extend_schema(
        operation_id="training_runs_retrieve",
        parameters=[RUN_PARAMETER],
        summary="State of a training run",
        responses={
            200: TrainingRunSerializer,
            **RUN_ERRORS,
        },
    )
    def get(self, request: Request, run_id: str) -> Response:
        number = ascii_int(run_id)
        if number is None or not 1 <= number <= MAX_RUN_ID:
            raise InvalidParameter(
                f"run id must be an integer between 1 and {MAX_RUN_ID}",
                details={"id": run_id[:50]},
            )
        return Response(TrainingRunSerializer(training_run_get(run_id=number)).data)
