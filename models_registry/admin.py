"""Registry admin: versions, training runs and activation history, read-only; lifecycle actions
go through the same services as the API.

Activating and rolling back always pass through a confirmation page that asks for a reason (kept
on the ``ActivationEvent``) and, when ``PROMOTION_POLICY=enforce`` would refuse the version, offers
the explicit "force" override. The list's bulk actions, the per-row link and the object tools all
lead to that page, so there is one place where the decision is made. The tables the pages
print are built in ``admin_pages``.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import url_has_allowed_host_and_scheme

from mlengine.errors import DomainError
from models_registry.admin_pages import (
    BASELINE_COLUMNS,
    METRIC_COLUMNS,
    artifact_rows,
    baseline_table,
    cell_text,
    dataset_rows,
    metric_text,
    metrics_table,
    promotion_note,
)
from models_registry.errors import PromotionRefused
from models_registry.models import (
    MANAGE_REGISTRY_PERMISSION,
    ActivationEvent,
    ModelVersion,
    TrainingRun,
)
from models_registry.promotion import promotion_evidence
from models_registry.selectors import activation_event_list, active_model_version, champion_of
from models_registry.services.activation import (
    ActivationResult,
    model_version_activate,
    model_version_rollback,
    rollback_target,
)
from models_registry.verdict import (
    FOLD_COLUMNS,
    calibration_rows,
    fold_rows,
    verdict_text,
    walk_forward_summary,
)

CONFIRM_TEMPLATE = "admin/models_registry/modelversion/confirm_action.html"
ACTIVATION_HISTORY_LIMIT = 200


class LifecycleForm(forms.Form):
    """The reason for an activation or rollback, and the policy override where one applies."""

    reason = forms.CharField(
        max_length=1000,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 70}),
        help_text="Why this change is made. Kept on the activation event with your username.",
    )

    def __init__(self, *args: Any, offer_force: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if offer_force:
            self.fields["force"] = forms.BooleanField(
                required=False,
                label="Force the activation despite PROMOTION_POLICY=enforce",
                help_text=(
                    "This version does not beat the always-up baseline. Activation is refused "
                    "unless this box is ticked; a forced activation is marked as such in the "
                    "history."
                ),
            )


class VersionChangeList(ChangeList):
    """The version list, without the baseline column: thousands of sample values per feature
    per version that the list never shows."""

    def get_queryset(
        self, request: HttpRequest, exclude_parameters: list[str] | None = None
    ) -> QuerySet[ModelVersion]:
        return super().get_queryset(request, exclude_parameters).defer("baseline")


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
        "lifecycle_link",
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
    # The JSON columns (metrics, dataset, config, baseline ...) are laid out as tables by the
    # change_form.html override; shown as fields they would be unreadable dict dumps.
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "version",
                    "status",
                    "is_active",
                    "beats_baseline",
                    "created_at",
                    "activated_at",
                    "training_duration",
                    "training_run_link",
                ]
            },
        )
    ]
    readonly_fields = fieldsets[0][1]["fields"]

    @admin.display(description="version", ordering="version")
    def label(self, obj: ModelVersion) -> str:
        return obj.label

    @admin.display(description="val. accuracy")
    def validation_accuracy_display(self, obj: ModelVersion) -> str:
        return metric_text(obj.validation_accuracy)

    @admin.display(description="val. ROC AUC")
    def validation_auc_display(self, obj: ModelVersion) -> str:
        return metric_text(obj.validation_auc)

    @admin.display(description="always-up accuracy")
    def baseline_accuracy_display(self, obj: ModelVersion) -> str:
        return metric_text(obj.baseline_accuracy)

    @admin.display(description="lifecycle")
    def lifecycle_link(self, obj: ModelVersion) -> str:
        if obj.is_active:
            return "active"
        if obj.status != ModelVersion.Status.READY:
            return "—"
        url = self._activate_url(obj, back=reverse("admin:models_registry_modelversion_changelist"))
        return format_html('<a class="button" href="{}">Activate</a>', url)

    @admin.display(description="training duration")
    def training_duration(self, obj: ModelVersion) -> str:
        seconds = obj.training_duration_seconds
        return "—" if seconds is None else f"{seconds:.2f} s"

    @admin.display(description="training run")
    def training_run_link(self, obj: ModelVersion) -> str:
        run = TrainingRun.objects.filter(model_version=obj).first()
        if run is None:
            return "—"
        url = reverse("admin:models_registry_trainingrun_change", args=[run.pk])
        return format_html('<a href="{}">{}</a> ({})', url, run, run.get_source_display())

    # --- permissions -----------------------------------------------------------------------

    def has_manage_registry_permission(self, request: HttpRequest) -> bool:
        """The registry's write permission: the same one the REST API's lifecycle calls need."""
        return request.user.has_perm(MANAGE_REGISTRY_PERMISSION)

    def _require_manage(self, request: HttpRequest) -> None:
        if not (self.has_view_permission(request) and self.has_manage_registry_permission(request)):
            raise PermissionDenied

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return VersionChangeList

    def get_list_display(self, request: HttpRequest) -> list[str]:
        columns = list(super().get_list_display(request))
        if not self.has_manage_registry_permission(request):
            columns.remove("lifecycle_link")
        return columns

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Rows are changed only by the lifecycle actions; bulk delete would bypass the
        # append-only history.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    # --- URLs and redirects ----------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        # Ahead of the default patterns: "<path:object_id>/" would otherwise swallow them.
        wrap = self.admin_site.admin_view
        return [
            path(
                "rollback/",
                wrap(self.rollback_view),
                name="models_registry_modelversion_rollback",
            ),
            path(
                "<path:object_id>/activate/",
                wrap(self.activate_view),
                name="models_registry_modelversion_activate",
            ),
            *super().get_urls(),
        ]

    @staticmethod
    def _activate_url(obj: ModelVersion, *, back: str) -> str:
        url = reverse("admin:models_registry_modelversion_activate", args=[obj.pk])
        return f"{url}?{urlencode({'next': back})}"

    @staticmethod
    def _rollback_url(*, back: str) -> str:
        url = reverse("admin:models_registry_modelversion_rollback")
        return f"{url}?{urlencode({'next': back})}"

    @staticmethod
    def _back_url(request: HttpRequest, default: str) -> str:
        """Where to go after the confirmation page: ``next`` if it is a local URL."""
        candidate = request.POST.get("next") or request.GET.get("next") or ""
        if candidate and url_has_allowed_host_and_scheme(
            candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
        ):
            return candidate
        return default

    # --- pages -----------------------------------------------------------------------------

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {
            "can_manage_registry": self.has_manage_registry_permission(request),
            "rollback_url": self._rollback_url(back=request.get_full_path()),
        }
        return super().changelist_view(request, extra_context={**context, **(extra_context or {})})

    def render_change_form(  # noqa: PLR0917 (Django's signature)
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: ModelVersion | None = None,
    ) -> HttpResponse:
        if obj is not None:
            context.update(self._version_page_context(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _version_page_context(self, request: HttpRequest, obj: ModelVersion) -> dict[str, Any]:
        """Everything the version page shows beyond the plain fields, ready to print."""
        here = request.get_full_path()
        can_manage = self.has_manage_registry_permission(request)
        model_features = list((obj.feature_spec or {}).get("features") or [])
        dataset = obj.dataset or {}
        history = activation_event_list().filter(Q(from_version=obj) | Q(to_version=obj))
        return {
            "can_manage_registry": can_manage,
            "show_activate": can_manage
            and not obj.is_active
            and obj.status == ModelVersion.Status.READY,
            "show_rollback": can_manage and obj.is_active,
            "activate_url": self._activate_url(obj, back=here),
            "rollback_url": self._rollback_url(back=here),
            "promotion_policy": settings.PROMOTION_POLICY,
            "promotion_note": promotion_note(obj),
            "metric_columns": [label for _, label in METRIC_COLUMNS],
            "metric_rows": metrics_table(obj.metrics or {}),
            "dataset_rows": dataset_rows(dataset),
            "dataset_fingerprint": dataset.get("fingerprint") or "—",
            "config_json": json.dumps(obj.config or {}, indent=2, sort_keys=True),
            "feature_spec_window": cell_text((obj.feature_spec or {}).get("window")),
            "feature_spec_horizon": cell_text((obj.feature_spec or {}).get("horizon")),
            "feature_spec_features": model_features,
            "artifact_rows": artifact_rows(obj),
            "library_rows": sorted((obj.library_versions or {}).items()),
            "baseline_columns": list(BASELINE_COLUMNS),
            "baseline_rows": baseline_table(obj.baseline or {}, model_features),
            "activation_history": list(history[:ACTIVATION_HISTORY_LIMIT]),
            # Walk-forward verdict, folds and calibration (models_registry.verdict).
            "verdict": walk_forward_summary(obj.metrics),
            "verdict_text": verdict_text(obj.metrics),
            "fold_columns": FOLD_COLUMNS,
            "fold_rows": fold_rows(obj.metrics),
            "calibration_rows": calibration_rows(obj.metrics),
            # A challenger against its champion in shadow (the slot monitoring fills).
            "challenger_comparison": promotion_evidence(obj) if obj.is_challenger else None,
        }

    def activate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Confirmation page for activating one version: reason, and force where the policy
        would refuse. POST calls ``model_version_activate`` and redirects back."""
        self._require_manage(request)
        version = self.get_object(request, unquote(object_id))
        if version is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        back = self._back_url(
            request, reverse("admin:models_registry_modelversion_change", args=[version.pk])
        )
        offer_force = (
            settings.PROMOTION_POLICY == "enforce"
            and not version.beats_baseline
            and not version.is_active
        )
        if request.method == "POST":
            form = LifecycleForm(request.POST, offer_force=offer_force)
            if form.is_valid():
                try:
                    result = model_version_activate(
                        version=version.version,
                        model=version.model,
                        actor=request.user,
                        reason=form.cleaned_data["reason"],
                        force=bool(form.cleaned_data.get("force")),
                    )
                except PromotionRefused as exc:
                    # The operator can still decide to force it: stay on the form.
                    self.message_user(request, f"Not activated: {exc.message}", messages.ERROR)
                except DomainError as exc:
                    self.message_user(request, f"Not activated: {exc.message}", messages.ERROR)
                    return HttpResponseRedirect(back)
                else:
                    self._report_activation(request, version, result)
                    return HttpResponseRedirect(back)
        else:
            form = LifecycleForm(offer_force=offer_force)
        current = champion_of(model=version.model)
        return self._confirm_page(
            request,
            title=f"Activate {version.label}",
            form=form,
            back=back,
            action="activate",
            version=version,
            current=current,
            target=version,
            promotion_note=promotion_note(version),
            submit_label=f"Activate {version.label}",
            blocked=(
                f"{version.label} is {version.status}; only a ready version can be activated."
                if version.status != ModelVersion.Status.READY
                else ""
            ),
            notice=(
                f"{version.label} is already active; confirming changes nothing."
                if version.is_active
                else ""
            ),
        )

    def rollback_view(self, request: HttpRequest) -> HttpResponse:
        """Confirmation page for rolling back the active version to the one before it."""
        self._require_manage(request)
        back = self._back_url(request, reverse("admin:models_registry_modelversion_changelist"))
        if request.method == "POST":
            form = LifecycleForm(request.POST)
            if form.is_valid():
                try:
                    result = model_version_rollback(
                        actor=request.user, reason=form.cleaned_data["reason"]
                    )
                except DomainError as exc:
                    self.message_user(request, f"Not rolled back: {exc.message}", messages.ERROR)
                else:
                    previous = result.previous_version.label if result.previous_version else "none"
                    self.message_user(
                        request,
                        f"Rolled back: {result.active_version.label} is active again "
                        f"(was {previous}).",
                        messages.SUCCESS,
                    )
                return HttpResponseRedirect(back)
        else:
            form = LifecycleForm()
        current = active_model_version()
        target = rollback_target(current) if current is not None else None
        blocked = ""
        if current is None:
            blocked = "No version is active, so there is nothing to roll back."
        elif target is None:
            blocked = (
                f"{current.label} was the first active version; there is nothing to roll back to."
            )
        return self._confirm_page(
            request,
            title="Roll back the active version",
            form=form,
            back=back,
            action="rollback",
            version=None,
            current=current,
            target=target,
            promotion_note="",
            submit_label=f"Roll back to {target.label}" if target else "Roll back",
            blocked=blocked,
            notice="",
        )

    def _confirm_page(self, request: HttpRequest, **context: Any) -> TemplateResponse:
        context.update(
            self.admin_site.each_context(request),
            opts=self.opts,
            has_view_permission=self.has_view_permission(request),
            promotion_policy=settings.PROMOTION_POLICY,
        )
        request.current_app = self.admin_site.name
        return TemplateResponse(request, CONFIRM_TEMPLATE, context)

    def _report_activation(
        self, request: HttpRequest, version: ModelVersion, result: ActivationResult
    ) -> None:
        if not result.changed:
            self.message_user(request, f"{version.label} is already active.", messages.INFO)
            return
        previous = result.previous_version.label if result.previous_version else "none"
        forced = (
            " (forced past PROMOTION_POLICY=enforce)"
            if result.event and result.event.forced
            else ""
        )
        self.message_user(
            request,
            f"{version.label} is now active (was {previous}){forced}.",
            messages.SUCCESS,
        )
        if result.warning:
            self.message_user(request, result.warning, messages.WARNING)

    # --- bulk actions: both lead to the confirmation page ------------------------------------

    @admin.action(description="Activate selected version", permissions=["manage_registry"])
    def activate_selected(
        self, request: HttpRequest, queryset: QuerySet[ModelVersion]
    ) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(
                request,
                "Select exactly one version to activate; nothing changed.",
                messages.WARNING,
            )
            return None
        return HttpResponseRedirect(
            self._activate_url(queryset.get(), back=request.get_full_path())
        )

    @admin.action(description="Roll back to previous version", permissions=["manage_registry"])
    def rollback_to_previous(
        self, request: HttpRequest, queryset: QuerySet[ModelVersion]
    ) -> HttpResponse:
        # A rollback always concerns the active version, whichever rows were ticked.
        return HttpResponseRedirect(self._rollback_url(back=request.get_full_path()))


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
    list_select_related = ["requested_by", "model_version"]
    readonly_fields = ["search_tasks"]

    @admin.display(description="error")
    def short_error(self, obj: TrainingRun) -> str:
        return obj.error[:80]

    @admin.display(description="search tasks")
    def search_tasks(self, obj: TrainingRun) -> str:
        """A search's tasks while it runs: done / total, then one row per (candidate, fold)."""
        progress = obj.progress or {}
        if not progress.get("tasks"):
            return "—"
        candidates = {entry["candidate"]: entry for entry in progress.get("candidates", [])}

        def describe(number: int) -> str:
            entry = candidates.get(number, {})
            return f"{number}: {entry.get('type', '?')} {json.dumps(entry.get('params', {}))}"

        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    describe(task["candidate"]),
                    task["fold"],
                    task["state"],
                    task.get("worker") or "—",
                    "—" if task.get("log_loss") is None else f"{task['log_loss']:.4f}",
                    task.get("error") or "",
                )
                for task in progress["tasks"]
            ),
        )
        return format_html(
            "<p>{} of {} tasks done, {} failed</p><table><thead><tr><th>candidate</th>"
            "<th>fold</th><th>state</th><th>worker</th><th>log loss</th><th>error</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            progress.get("done", 0),
            progress.get("total", 0),
            progress.get("failed", 0),
            rows,
        )


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
    list_select_related = ["from_version", "to_version"]
