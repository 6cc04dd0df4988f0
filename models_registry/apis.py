"""Registry API: list and inspect versions, train, activate, roll back, activation history.

The seed routes (``/models...``) act on the model ``default``; ``/registry/models/{name}...``
act on any named model, through the same services."""

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
from models_registry.models import (
    MANAGE_REGISTRY_PERMISSION,
    ActivationEvent,
    ModelVersion,
    RegisteredModel,
)
from models_registry.schema import (
    ACTIVATE_CONFLICT,
    ACTIVATE_REQUEST_EXAMPLES,
    ACTIVATED_RESPONSE,
    CHALLENGER_CONFLICT,
    CHALLENGER_REQUEST_EXAMPLES,
    CHALLENGER_RESPONSE,
    MALFORMED_MODEL,
    MALFORMED_VERSION,
    MODEL_NAME_PARAMETER,
    NAMED_ACTIVATED_RESPONSE,
    NAMED_PAGE_ERRORS,
    NAMED_ROLLED_BACK_RESPONSE,
    PAGE_ERRORS,
    QUEUED_RESPONSE,
    ROLLBACK_CONFLICT,
    ROLLBACK_DESCRIPTION,
    ROLLBACK_REQUEST_EXAMPLES,
    ROLLED_BACK_RESPONSE,
    RUN_ERRORS,
    RUN_PARAMETER,
    TRAIN_ERRORS,
    TRAIN_REQUEST_EXAMPLES,
    UNKNOWN_MODEL,
    UNKNOWN_MODEL_OR_VERSION,
    UNKNOWN_VERSION,
    VERSION_PARAMETER,
    WRITE_ERRORS,
)
from models_registry.selectors import (
    MAX_RUN_ID,
    activation_event_list,
    model_version_get,
    model_version_list,
    registered_model_get,
    registered_model_list,
    training_run_get,
)
from models_registry.serializers import (
    ActivateRequestSerializer,
    ActivationEventSerializer,
    ChallengerRequestSerializer,
    ModelVersionDetailSerializer,
    ModelVersionSummarySerializer,
    NamedActivationEventSerializer,
    NamedVersionDetailSerializer,
    NamedVersionSummarySerializer,
    RegisteredModelDetailSerializer,
    RegisteredModelSummarySerializer,
    RollbackRequestSerializer,
    TrainingRunSerializer,
    TrainRequestSerializer,
)
from models_registry.services.activation import (
    challenger_add,
    challenger_remove,
    model_version_activate,
    model_version_rollback,
)
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
        description=ROLLBACK_DESCRIPTION,
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
        result = model_version_rollback(
            actor=request.user, reason=data["reason"], force=data["force"]
        )
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
            "`configs/train.yaml` (`symbols`, `model`, `seed`, `start`, `end`, `name`: the "
            "registered model, created on first use) or gives a whole `config` (which `start` / "
            "`end` still override). By default training reads all the history the market data "
            "has; `activate` makes the version its model's champion, `challenger` adds it as a "
            "challenger."
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
            name=data.get("name"),
        )
        training_data_check(config=config)  # no run row for a request that could only fail
        run = training_run_enqueue(
            config=config,
            source="api",
            requested_by=request.user,
            activate=data["activate"],
            challenger=data["challenger"],
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


# Named models: /registry/models[/{name}[/versions[/{version}]|/activate/{version}|/rollback|
# /challengers/{version}|/activations]]


class RegisteredModelListApi(ListAPIView):
    throttle_scope = ANON_READ
    serializer_class = RegisteredModelSummarySerializer
    pagination_class = DefaultPagination

    def get_queryset(self) -> QuerySet[RegisteredModel]:
        return registered_model_list()

    @extend_schema(
        operation_id="registry_models_list",
        summary="Named models: symbols, champion and challengers",
        responses={200: RegisteredModelSummarySerializer(many=True), **PAGE_ERRORS},
    )
    def get(self, request: Request) -> Response:
        return super().get(request)


class RegisteredModelDetailApi(APIView):
    throttle_scope = ANON_READ

    @extend_schema(
        operation_id="registry_models_retrieve",
        parameters=[MODEL_NAME_PARAMETER],
        summary="One model: champion, challengers, symbols, config and counts",
        responses={
            200: RegisteredModelDetailSerializer,
            400: MALFORMED_MODEL,
            404: UNKNOWN_MODEL,
        },
    )
    def get(self, request: Request, name: str) -> Response:
        return Response(RegisteredModelDetailSerializer(registered_model_get(name=name)).data)


class RegisteredModelVersionListApi(ListAPIView):
    throttle_scope = ANON_READ
    serializer_class = NamedVersionSummarySerializer
    pagination_class = DefaultPagination

    def get_queryset(self) -> QuerySet[ModelVersion]:
        return model_version_list(model=registered_model_get(name=self.kwargs["name"]))

    @extend_schema(
        operation_id="registry_model_versions_list",
        parameters=[MODEL_NAME_PARAMETER],
        summary="A model's versions, newest first",
        responses={
            200: NamedVersionSummarySerializer(many=True),
            **NAMED_PAGE_ERRORS,
        },
    )
    def get(self, request: Request, name: str) -> Response:
        return super().get(request, name)


class RegisteredModelVersionDetailApi(APIView):
    throttle_scope = ANON_READ

    @extend_schema(
        operation_id="registry_model_versions_retrieve",
        parameters=[MODEL_NAME_PARAMETER, VERSION_PARAMETER],
        summary="One version of a model in full",
        responses={
            200: NamedVersionDetailSerializer,
            400: MALFORMED_MODEL,
            404: UNKNOWN_MODEL_OR_VERSION,
        },
    )
    def get(self, request: Request, name: str, version: str) -> Response:
        model = registered_model_get(name=name)
        return Response(
            NamedVersionDetailSerializer(model_version_get(version=version, model=model)).data
        )


class RegisteredModelActivateApi(APIView):
    permission_classes = [HasRegistryPermission]
    throttle_scope = WRITE

    @extend_schema(
        operation_id="registry_models_activate",
        parameters=[MODEL_NAME_PARAMETER, VERSION_PARAMETER],
        summary="Make a version its model's champion",
        description=(
            "As `POST /models/activate/{version}`, for the named model; other models' "
            "champions are untouched. A challenger that is promoted stops being a challenger."
        ),
        request=ActivateRequestSerializer,
        examples=ACTIVATE_REQUEST_EXAMPLES,
        responses={
            200: NAMED_ACTIVATED_RESPONSE,
            **WRITE_ERRORS,
            404: UNKNOWN_MODEL_OR_VERSION,
            409: ACTIVATE_CONFLICT,
        },
    )
    def post(self, request: Request, name: str, version: str) -> Response:
        data = _validated(ActivateRequestSerializer, request.data)
        result = model_version_activate(
            version=version,
            model=name,
            actor=request.user,
            reason=data["reason"],
            force=data["force"],
        )
        return Response(result.as_named_dict())


class RegisteredModelRollbackApi(APIView):
    permission_classes = [HasRegistryPermission]
    throttle_scope = WRITE

    @extend_schema(
        operation_id="registry_models_rollback",
        parameters=[MODEL_NAME_PARAMETER],
        summary="Re-activate the model's previous champion",
        description=ROLLBACK_DESCRIPTION,
        request=RollbackRequestSerializer,
        examples=ROLLBACK_REQUEST_EXAMPLES,
        responses={
            200: NAMED_ROLLED_BACK_RESPONSE,
            **WRITE_ERRORS,
            404: UNKNOWN_MODEL,
            409: ROLLBACK_CONFLICT,
        },
    )
    def post(self, request: Request, name: str) -> Response:
        data = _validated(RollbackRequestSerializer, request.data)
        result = model_version_rollback(
            model=name, actor=request.user, reason=data["reason"], force=data["force"]
        )
        return Response(result.as_named_dict())


class RegisteredModelChallengerApi(APIView):
    permission_classes = [HasRegistryPermission]
    throttle_scope = WRITE

    @extend_schema(
        operation_id="registry_models_challengers_add",
        parameters=[MODEL_NAME_PARAMETER, VERSION_PARAMETER],
        summary="Add a ready version of the model as a challenger",
        description=(
            "A challenger is scored in shadow beside the champion. Adding one twice is a no-op "
            "(`changed: false`); a `challenger_add` event records each change."
        ),
        request=ChallengerRequestSerializer,
        examples=CHALLENGER_REQUEST_EXAMPLES,
        responses={
            200: CHALLENGER_RESPONSE,
            **WRITE_ERRORS,
            404: UNKNOWN_MODEL_OR_VERSION,
            409: CHALLENGER_CONFLICT,
        },
    )
    def post(self, request: Request, name: str, version: str) -> Response:
        data = _validated(ChallengerRequestSerializer, request.data)
        result = challenger_add(
            version=version, model=name, actor=request.user, reason=data["reason"]
        )
        return Response(result.as_dict())

    @extend_schema(
        operation_id="registry_models_challengers_remove",
        parameters=[MODEL_NAME_PARAMETER, VERSION_PARAMETER],
        summary="Stop scoring a challenger",
        description=(
            "Removing a version that is not a challenger is a no-op (`changed: false`); a "
            "`challenger_remove` event records each change. A body is optional."
        ),
        request=ChallengerRequestSerializer,
        responses={
            200: CHALLENGER_RESPONSE,
            **WRITE_ERRORS,
            404: UNKNOWN_MODEL_OR_VERSION,
        },
    )
    def delete(self, request: Request, name: str, version: str) -> Response:
        body = request.data if request.data else {}
        data = _validated(ChallengerRequestSerializer, body)
        result = challenger_remove(
            version=version, model=name, actor=request.user, reason=data["reason"]
        )
        return Response(result.as_dict())


class RegisteredModelActivationListApi(ListAPIView):
    throttle_scope = ANON_READ
    serializer_class = NamedActivationEventSerializer
    pagination_class = DefaultPagination

    def get_queryset(self) -> QuerySet[ActivationEvent]:
        return activation_event_list(model=registered_model_get(name=self.kwargs["name"]))

    @extend_schema(
        operation_id="registry_models_activations_list",
        parameters=[MODEL_NAME_PARAMETER],
        summary="A model's lifecycle history (activations, rollbacks, challengers), newest first",
        responses={
            200: NamedActivationEventSerializer(many=True),
            **NAMED_PAGE_ERRORS,
        },
    )
    def get(self, request: Request, name: str) -> Response:
        return super().get(request, name)
