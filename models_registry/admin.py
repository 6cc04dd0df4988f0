"""Registry admin: versions, training runs and activation history, read-only; lifecycle actions
go through the same services as the API.

Every lifecycle action acts within the version's model: activating, rolling back, adding and
removing a challenger each pass through a confirmation page that asks for a reason (kept on the
``ActivationEvent``) and, when ``PROMOTION_POLICY=enforce`` would refuse the version, offers the
explicit "force" override. The list's bulk actions, the per-row link, the object tools and the
models list all lead to that page, so there is one place where the decision is made. The tables
the pages print are built in ``admin_pages``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
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
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme

from mlengine.api import ascii_int
from mlengine.errors import DomainError
from models_registry.admin_pages import (
    BASELINE_COLUMNS,
    METRIC_COLUMNS,
    artifact_rows,
    baseline_table,
    cell_text,
    dataset_rows,
    last_drift_status,
    metric_text,
    metrics_table,
    model_version_rows,
    promotion_note,
    search_tasks_table,
    serving_text,
)
from models_registry.errors import PromotionRefused
from models_registry.models import (
    MANAGE_REGISTRY_PERMISSION,
    ActivationEvent,
    ModelVersion,
    RegisteredModel,
    TrainingRun,
)
from models_registry.naming import DEFAULT_MODEL_NAME
from models_registry.promotion import promotion_evidence
from models_registry.selectors import (
    activation_event_list,
    champion_of,
    registered_model_get,
    registered_model_list,
)
from models_registry.services.activation import (
    ActivationResult,
    challenger_add,
    challenger_remove,
    model_version_activate,
    model_version_rollback,
    promotion_concerns,
    rollback_target,
)
from models_registry.services.retraining import retraining_schedule_of
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

    def __init__(
        self, *args: Any, force_because: str = "", action: str = "activation", **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if force_because:
            self.fields["force"] = forms.BooleanField(
                required=False,
                label=f"Force the {action} despite PROMOTION_POLICY=enforce",
                help_text=(
                    f"{force_because} The {action} is refused unless this box is ticked; a "
                    f"forced {action} is marked as such in the history."
                ),
            )


def enforced_concerns(
    version: ModelVersion, comparison: dict[str, Any] | None, *, baseline: bool
) -> str:
    """What ``PROMOTION_POLICY=enforce`` would refuse promoting ``version`` for (the service's
    own ``promotion_concerns``): the reason to offer the force box; "" under ``warn``, or for
    the active version (a no-op)."""
    if settings.PROMOTION_POLICY != "enforce" or version.is_active:
        return ""
    return promotion_concerns(version, comparison, baseline=baseline)


def submitted_form(request: HttpRequest, *, action: str) -> LifecycleForm:
    """A POSTed confirmation as the service reads it: the reason and, under ``enforce``, the
    force box (the service decides whether it matters, on the comparison it computes under the
    model's lock: none is computed here for a form about to be handled)."""
    enforce = settings.PROMOTION_POLICY == "enforce"
    return LifecycleForm(
        request.POST, force_because="PROMOTION_POLICY=enforce." if enforce else "", action=action
    )


def shown_form(
    request: HttpRequest,
    version: ModelVersion | None,
    *,
    baseline: bool,
    action: str,
    refused: PromotionRefused | None = None,
) -> tuple[LifecycleForm, dict[str, Any] | None]:
    """The confirmation page's form (bound again to a POST that was refused or invalid, so its
    input and errors show), with the force box where ``enforce`` would refuse ``version``, and
    the challenger's comparison the page shows beside it: the one the service's ``refused``
    promotion of ``version`` was decided on, else computed here."""
    comparison = None
    if version is not None and version.is_challenger:
        if refused is not None and refused.details.get("version") == version.label:
            comparison = refused.comparison
        if comparison is None:
            comparison = promotion_evidence(version)
    because = enforced_concerns(version, comparison, baseline=baseline) if version else ""
    data = request.POST if request.method == "POST" else None
    return LifecycleForm(data, force_because=because, action=action), comparison


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
        "model",
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
    list_display_links = ["label"]
    list_filter = ["model", "status", "is_active", "is_challenger", "beats_baseline"]
    list_select_related = ["model"]
    date_hierarchy = "created_at"
    ordering = ["model__name", "-version"]
    actions = [
        "activate_selected",
        "rollback_to_previous",
        "challenger_add_selected",
        "challenger_remove_selected",
    ]
    # The JSON columns (metrics, dataset, config, baseline ...) are laid out as tables by the
    # change_form.html override; shown as fields they would be unreadable dict dumps.
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "model_link",
                    "version",
                    "status",
                    "is_active",
                    "is_challenger",
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

    @admin.display(description="model", ordering="model__name")
    def model_link(self, obj: ModelVersion) -> str:
        url = reverse("admin:models_registry_registeredmodel_change", args=[obj.model_id])
        return format_html('<a href="{}" class="registry-model-link">{}</a>', url, obj.model.name)

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
            path(
                "<path:object_id>/challenger/add/",
                wrap(self.challenger_add_view),
                name="models_registry_modelversion_challenger_add",
            ),
            path(
                "<path:object_id>/challenger/remove/",
                wrap(self.challenger_remove_view),
                name="models_registry_modelversion_challenger_remove",
            ),
            *super().get_urls(),
        ]

    @staticmethod
    def _activate_url(obj: ModelVersion, *, back: str) -> str:
        url = reverse("admin:models_registry_modelversion_activate", args=[obj.pk])
        return f"{url}?{urlencode({'next': back})}"

    @staticmethod
    def _rollback_url(*, back: str, model: str = DEFAULT_MODEL_NAME) -> str:
        """The rollback confirmation page of ``model`` (a model's champion is what rolls back)."""
        url = reverse("admin:models_registry_modelversion_rollback")
        return f"{url}?{urlencode({'next': back, 'model': model})}"

    @staticmethod
    def _challenger_url(obj: ModelVersion, *, add: bool, back: str) -> str:
        name = "challenger_add" if add else "challenger_remove"
        url = reverse(f"admin:models_registry_modelversion_{name}", args=[obj.pk])
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
        can_manage = self.has_manage_registry_permission(request)
        # Filtered to one model, the list's "Roll back" button rolls that model back.
        model = RegisteredModel.objects.filter(pk=ascii_int(request.GET.get("model__id__exact")))
        name = model.values_list("name", flat=True).first() or DEFAULT_MODEL_NAME
        context = {
            "can_manage_registry": can_manage,
            "rollback_url": self._rollback_url(back=request.get_full_path(), model=name),
            "rollback_model": name,
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
        history = activation_event_list(model=obj.model).filter(
            Q(from_version=obj) | Q(to_version=obj)
        )
        ready = obj.status == ModelVersion.Status.READY
        return {
            "can_manage_registry": can_manage,
            "show_activate": can_manage and not obj.is_active and ready,
            "show_rollback": can_manage and obj.is_active,
            "activate_url": self._activate_url(obj, back=here),
            "rollback_url": self._rollback_url(back=here, model=obj.model.name),
            # The version within its model: its name, a link back, the challenger buttons.
            "model_name": obj.model.name,
            "model_url": reverse(
                "admin:models_registry_registeredmodel_change", args=[obj.model_id]
            ),
            "show_challenger_add": can_manage
            and ready
            and not obj.is_active
            and not obj.is_challenger,
            "show_challenger_remove": can_manage and obj.is_challenger,
            "challenger_add_url": self._challenger_url(obj, add=True, back=here),
            "challenger_remove_url": self._challenger_url(obj, add=False, back=here),
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
        done, refused = self._promotion_posted(
            request,
            action="activation",
            verb="activated",
            back=back,
            write=partial(
                model_version_activate,
                version=version.version,
                model=version.model,
                actor=request.user,
            ),
            report=partial(self._report_activation, request, version),
        )
        if done is not None:
            return done
        form, comparison = shown_form(
            request, version, baseline=True, action="activation", refused=refused
        )
        current = champion_of(model=version.model)
        return self._confirm_page(
            request,
            title=f"Activate {version.label} of {version.model.name}",
            form=form,
            back=back,
            action="activate",
            model=version.model,
            version=version,
            current=current,
            target=version,
            promotion_note=promotion_note(version),
            challenger_comparison=comparison,
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
        """Confirmation page for rolling back a model's champion (``?model=``, ``default``
        without it) to the version before it."""
        self._require_manage(request)
        back = self._back_url(request, reverse("admin:models_registry_modelversion_changelist"))
        try:
            model = registered_model_get(name=request.GET.get("model") or DEFAULT_MODEL_NAME)
        except DomainError as exc:
            self.message_user(request, f"Not rolled back: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(back)
        done, refused = self._promotion_posted(
            request,
            action="rollback",
            verb="rolled back",
            back=back,
            write=partial(model_version_rollback, model=model, actor=request.user),
            report=partial(self._report_rollback, request, model),
        )
        if done is not None:
            return done
        current = champion_of(model=model)
        target = rollback_target(current) if current is not None else None
        form, comparison = shown_form(
            request, target, baseline=False, action="rollback", refused=refused
        )
        blocked = ""
        if current is None:
            blocked = f"No version of {model.name} is active, so there is nothing to roll back."
        elif target is None:
            blocked = (
                f"{current.label} was the first active version; there is nothing to roll back to."
            )
        return self._confirm_page(
            request,
            title=f"Roll back {model.name}",
            form=form,
            back=back,
            action="rollback",
            model=model,
            version=None,
            current=current,
            target=target,
            promotion_note="",
            challenger_comparison=comparison,
            submit_label=f"Roll back to {target.label}" if target else "Roll back",
            blocked=blocked,
            notice="",
        )

    def challenger_add_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Confirmation page for adding one version as a challenger of its model."""
        return self._challenger_view(request, object_id, add=True)

    def challenger_remove_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Confirmation page for no longer scoring one version in shadow."""
        return self._challenger_view(request, object_id, add=False)

    def _challenger_view(self, request: HttpRequest, object_id: str, *, add: bool) -> HttpResponse:
        """Reason, then ``challenger_add`` / ``challenger_remove`` within the version's model."""
        self._require_manage(request)
        version = self.get_object(request, unquote(object_id))
        if version is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        back = self._back_url(
            request, reverse("admin:models_registry_modelversion_change", args=[version.pk])
        )
        verb = "Added as a challenger" if add else "Removed from the challengers"
        if request.method == "POST":
            form = LifecycleForm(request.POST)
            if form.is_valid():
                write = challenger_add if add else challenger_remove
                try:
                    result = write(
                        version=version.version,
                        model=version.model,
                        actor=request.user,
                        reason=form.cleaned_data["reason"],
                    )
                except DomainError as exc:
                    self.message_user(request, f"Nothing changed: {exc.message}", messages.ERROR)
                else:
                    text = f"{verb}: {version.label} of {version.model.name}."
                    if not result.changed:
                        text = f"Nothing to change: {version.label} already was as asked."
                    level = messages.SUCCESS if result.changed else messages.INFO
                    self.message_user(request, text, level)
                return HttpResponseRedirect(back)
        else:
            form = LifecycleForm()
        blocked = ""
        if add and version.is_active:
            blocked = f"{version.label} is the champion of {version.model.name}."
        elif add and version.status != ModelVersion.Status.READY:
            blocked = f"{version.label} is {version.status}; only a ready version can be one."
        label = "Add" if add else "Remove"
        notice = ""
        if add == version.is_challenger:  # adding a challenger, or removing a non-challenger
            state = "already is" if add else "is not"
            notice = f"{version.label} {state} a challenger; confirming changes nothing."
        return self._confirm_page(
            request,
            title=f"{label} {version.label} of {version.model.name} as a challenger",
            form=form,
            back=back,
            action="challenger_add" if add else "challenger_remove",
            model=version.model,
            version=version,
            current=champion_of(model=version.model),
            target=version,
            promotion_note="",
            challenger_comparison=promotion_evidence(version) if version.is_challenger else None,
            submit_label=f"{label} challenger {version.label}",
            blocked=blocked,
            notice=notice,
        )

    def _promotion_posted(
        self,
        request: HttpRequest,
        *,
        action: str,
        verb: str,
        back: str,
        write: Callable[..., ActivationResult],
        report: Callable[[ActivationResult], None],
    ) -> tuple[HttpResponse | None, PromotionRefused | None]:
        """A POSTed activation or rollback, handed to the service as ``write(reason=, force=)``:
        (the redirect back, None) once it is done and ``report``-ed, or refused for another
        reason (its message shown); (None, the refusal) when the promotion policy refused it,
        and (None, None) for an invalid form or a GET: the page is shown, where the operator
        can still force it or mend the reason."""
        if request.method != "POST":
            return None, None
        form = submitted_form(request, action=action)
        if not form.is_valid():
            return None, None
        try:
            result = write(
                reason=form.cleaned_data["reason"], force=bool(form.cleaned_data.get("force"))
            )
        except PromotionRefused as exc:
            self.message_user(request, f"Not {verb}: {exc.message}", messages.ERROR)
            return None, exc
        except DomainError as exc:
            self.message_user(request, f"Not {verb}: {exc.message}", messages.ERROR)
        else:
            report(result)
        return HttpResponseRedirect(back), None

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

    def _report_rollback(
        self, request: HttpRequest, model: RegisteredModel, result: ActivationResult
    ) -> None:
        previous = result.previous_version.label if result.previous_version else "none"
        self.message_user(
            request,
            f"Rolled back {model.name}: {result.active_version.label} is active again "
            f"(was {previous}).",
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

    @admin.action(
        description="Roll back the selected versions' model", permissions=["manage_registry"]
    )
    def rollback_to_previous(
        self, request: HttpRequest, queryset: QuerySet[ModelVersion]
    ) -> HttpResponse | None:
        # A rollback concerns the champion of the ticked rows' model, whichever rows they are;
        # rows of several models would leave it ambiguous which model rolls back.
        names = sorted(set(queryset.values_list("model__name", flat=True)))
        if len(names) != 1:
            self.message_user(
                request,
                "Select versions of exactly one model to roll it back; nothing changed.",
                messages.WARNING,
            )
            return None
        return HttpResponseRedirect(
            self._rollback_url(back=request.get_full_path(), model=names[0])
        )

    def _one_selected(self, request: HttpRequest, queryset: QuerySet[ModelVersion]) -> bool:
        if queryset.count() == 1:
            return True
        self.message_user(request, "Select exactly one version; nothing changed.", messages.WARNING)
        return False

    @admin.action(
        description="Add selected version as a challenger", permissions=["manage_registry"]
    )
    def challenger_add_selected(
        self, request: HttpRequest, queryset: QuerySet[ModelVersion]
    ) -> HttpResponse | None:
        return self._challenger_selected(request, queryset, add=True)

    @admin.action(
        description="Remove selected version from the challengers", permissions=["manage_registry"]
    )
    def challenger_remove_selected(
        self, request: HttpRequest, queryset: QuerySet[ModelVersion]
    ) -> HttpResponse | None:
        return self._challenger_selected(request, queryset, add=False)

    def _challenger_selected(
        self, request: HttpRequest, queryset: QuerySet[ModelVersion], *, add: bool
    ) -> HttpResponse | None:
        """The one ticked version's confirmation page for adding or removing it."""
        if not self._one_selected(request, queryset):
            return None
        url = self._challenger_url(queryset.get(), add=add, back=request.get_full_path())
        return HttpResponseRedirect(url)


@admin.register(RegisteredModel)
class RegisteredModelAdmin(ReadOnlyAdmin):
    """The models list (champion, challengers, symbols, last drift status, links) and each
    model's page listing its versions with their lifecycle buttons. Models are created by
    training; their retraining schedule is edited on its own beat entry (linked)."""

    list_display = [
        "name",
        "champion",
        "challengers",
        "symbols_display",
        "drift_status",
        "version_count",
        "links",
    ]
    search_fields = ["name", "description"]
    fields = ["name", "description", "symbols_display", "created_at", "retraining"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[RegisteredModel]:
        # With the version count and the serving versions (champion and challengers) prefetched.
        return registered_model_list()

    @admin.display(description="champion")
    def champion(self, obj: RegisteredModel) -> str:
        return serving_text(obj, champion=True)

    @admin.display(description="challengers")
    def challengers(self, obj: RegisteredModel) -> str:
        return serving_text(obj, champion=False)

    @admin.display(description="symbols")
    def symbols_display(self, obj: RegisteredModel) -> str:
        return ", ".join(obj.symbols or []) or "—"

    @admin.display(description="last drift check")
    def drift_status(self, obj: RegisteredModel) -> str:
        return last_drift_status(obj)

    @admin.display(description="versions")
    def version_count(self, obj: RegisteredModel) -> int:
        return obj.version_count

    @admin.display(description="")
    def links(self, obj: RegisteredModel) -> str:
        versions = reverse("admin:models_registry_modelversion_changelist")
        return format_html(
            '<a href="{}?model__id__exact={}">versions</a> · '
            '<a href="{}?{}">dashboard</a> · <a href="{}">activations</a>',
            versions,
            obj.pk,
            reverse("dashboard"),
            urlencode({"model": obj.name}),
            f"{reverse('admin:models_registry_activationevent_changelist')}"
            f"?model__id__exact={obj.pk}",
        )

    @admin.display(description="retraining schedule")
    def retraining(self, obj: RegisteredModel) -> str:
        entry = retraining_schedule_of(model=obj)
        if entry is None:
            return "—"
        url = reverse("admin:django_celery_beat_periodictask_change", args=[entry.pk])
        state = "enabled" if entry.enabled else "disabled"
        return format_html('<a href="{}">{}</a> ({}, {})', url, entry.name, state, entry.scheduler)

    def render_change_form(  # noqa: PLR0917 (Django's signature)
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: RegisteredModel | None = None,
    ) -> HttpResponse:
        if obj is not None:
            here = request.get_full_path()
            can_manage = request.user.has_perm(MANAGE_REGISTRY_PERMISSION)
            champion = champion_of(model=obj)
            context.update(
                can_manage_registry=can_manage,
                version_rows=model_version_rows(obj, back=here, can_manage=can_manage),
                show_rollback=can_manage and champion is not None,
                rollback_url=ModelVersionAdmin._rollback_url(back=here, model=obj.name),
                champion_label=champion.label if champion else "none",
                dashboard_url=f"{reverse('dashboard')}?{urlencode({'model': obj.name})}",
            )
        return super().render_change_form(request, context, add, change, form_url, obj)


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
        return search_tasks_table(obj.progress or {})


@admin.register(ActivationEvent)
class ActivationEventAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "model",
        "action",
        "from_version",
        "to_version",
        "actor_name",
        "reason",
        "forced",
        "warning",
    ]
    list_filter = ["model", "action", "forced"]
    search_fields = ["actor_name", "reason"]
    date_hierarchy = "created_at"
    list_select_related = ["model", "from_version", "to_version"]
