"""Registry admin: versions, training runs and activation history, read-only; lifecycle actions
go through the same services as the API."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from mlengine.errors import DomainError
from models_registry.models import ActivationEvent, ModelVersion, TrainingRun
from models_registry.services.activation import model_version_activate, model_version_rollback

REGISTRY_PERMISSION = "models_registry.manage_registry"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by services: viewable, never added, edited or deleted by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = [
        "label",
        "is_active",
        "status",
        "created_at",
        "validation_accuracy_display",
        "validation_auc_display",
        "baseline_accuracy_display",
        "beats_baseline",
    ]
    list_filter = ["status", "is_active", "beats_baseline"]
    date_hierarchy = "created_at"
    ordering = ["-version"]
    actions = ["activate_selected", "rollback_to_previous"]
    readonly_fields = [
        "version",
        "status",
        "is_active",
        "created_at",
        "activated_at",
        "metrics",
        "dataset",
        "config",
        "feature_spec",
        "beats_baseline",
        "artifact_name",
        "artifact_sha256",
        "artifact_size",
        "library_versions",
        "training_duration_seconds",
    ]
    exclude = ["baseline"]

    @admin.display(description="version", ordering="version")
    def label(self, obj: ModelVersion) -> str:
        return obj.label

    @admin.display(description="val. accuracy")
    def validation_accuracy_display(self, obj: ModelVersion) -> str:
        return _fmt(obj.validation_accuracy)

    @admin.display(description="val. ROC AUC")
    def validation_auc_display(self, obj: ModelVersion) -> str:
        return _fmt(obj.validation_auc)

    @admin.display(description="always-up accuracy")
    def baseline_accuracy_display(self, obj: ModelVersion) -> str:
        return _fmt(obj.baseline_accuracy)

    def _allowed(self, request: HttpRequest) -> bool:
        if request.user.has_perm(REGISTRY_PERMISSION):
            return True
        self.message_user(
            request, "You do not have permission to manage the registry.", messages.ERROR
        )
        return False

    @admin.action(description="Activate selected version")
    def activate_selected(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if not self._allowed(request):
            return
        if queryset.count() != 1:
            self.message_user(
                request,
                "Select exactly one version to activate; nothing changed.",
                messages.WARNING,
            )
            return
        target = queryset.get()
        try:
            result = model_version_activate(
                version=target.version, actor=request.user, reason="activated from the admin"
            )
        except DomainError as exc:
            self.message_user(request, f"Not activated: {exc.message}", messages.ERROR)
            return
        if not result.changed:
            self.message_user(request, f"{target.label} is already active.", messages.INFO)
            return
        previous = result.previous_version.label if result.previous_version else "none"
        self.message_user(
            request, f"{target.label} is now active (was {previous}).", messages.SUCCESS
        )
        if result.warning:
            self.message_user(request, result.warning, messages.WARNING)

    @admin.action(description="Roll back to previous version")
    def rollback_to_previous(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> None:
        if not self._allowed(request):
            return
        try:
            result = model_version_rollback(actor=request.user, reason="rolled back from the admin")
        except DomainError as exc:
            self.message_user(request, f"Not rolled back: {exc.message}", messages.ERROR)
            return
        previous = result.previous_version.label if result.previous_version else "none"
        self.message_user(
            request,
            f"Rolled back: {result.active_version.label} is active again (was {previous}).",
            messages.SUCCESS,
        )

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Rows are changed only by the lifecycle actions (which check the registry permission
        # themselves); bulk delete would bypass the append-only history.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "status",
        "stage",
        "source",
        "requested_by",
        "created_at",
        "model_version",
        "short_error",
    ]
    list_filter = ["status", "source"]
    search_fields = ["task_id", "error"]
    date_hierarchy = "created_at"

    @admin.display(description="error")
    def short_error(self, obj: TrainingRun) -> str:
        return obj.error[:80]


@admin.register(ActivationEvent)
class ActivationEventAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "action",
        "from_version",
        "to_version",
        "actor_name",
        "reason",
        "forced",
        "warning",
    ]
    list_filter = ["action", "forced"]
    search_fields = ["actor_name", "reason"]
    date_hierarchy = "created_at"
