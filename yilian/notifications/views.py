"""The notification centre: the user's own notices, newest first."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from yilian.notifications import selectors, services
from yilian.notifications.models import WebhookKind
from yilian.registry.models import Institution, User


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@login_required
@require_GET
def notification_list(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    page = Paginator(selectors.notifications_for(user), 30).get_page(request.GET.get("page"))
    return render(request, "notifications/list.html", {"page": page})


@login_required
@require_POST
def mark_read(request: HttpRequest) -> HttpResponse:
    """Mark one notice read and follow its link, or mark all read and come back to the list."""
    user = _user(request)
    notice_id = request.POST.get("id", "")
    if notice_id.isdigit():
        services.notification_mark_read(user=user, ids=[int(notice_id)])
        link = selectors.notification_link(user, int(notice_id))
        if link and url_has_allowed_host_and_scheme(link, allowed_hosts={request.get_host()}):
            return HttpResponseRedirect(link)
    else:
        services.notification_mark_read(user=user)
    return HttpResponseRedirect(reverse("notifications:list"))


class WebhookForm(forms.Form):
    institution = forms.ModelChoiceField(
        label=gettext_lazy("Institution"), queryset=Institution.objects.none(), to_field_name="code"
    )
    name = forms.CharField(label=gettext_lazy("Name of the group"), max_length=80)
    kind = forms.ChoiceField(label=gettext_lazy("Format"), choices=WebhookKind.choices)
    url = forms.URLField(label=gettext_lazy("URL"), max_length=400, assume_scheme="https")

    def __init__(self, *args: Any, institutions: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["institution"].queryset = institutions  # type: ignore[attr-defined]
        only = list(institutions[:2])
        if len(only) == 1:  # a hospital admin of one hospital: nothing to choose
            self.fields["institution"].initial = only[0].code
        for field in self.fields.values():
            field.widget.attrs["class"] = "form-select" if isinstance(field, forms.ChoiceField) else "form-control"


@login_required
def webhooks(request: HttpRequest) -> HttpResponse:
    """A hospital's outgoing webhooks (enterprise-chat group robots) and how their deliveries went."""
    user = _user(request)
    institutions = selectors.webhook_institutions_for(user)
    if not institutions.exists():
        raise PermissionDenied(_("You may not manage webhooks."))
    form = WebhookForm(institutions=institutions)
    status = 200
    if request.method == "POST":
        if "toggle" in request.POST:
            try:
                endpoint_id = uuid.UUID(request.POST["toggle"])
            except ValueError:
                raise Http404(_("No such webhook.")) from None
            endpoint = selectors.webhooks_for(user).filter(public_id=endpoint_id).first()
            if endpoint is None:
                raise Http404(_("No such webhook."))
            services.webhook_set_active(actor=user, endpoint=endpoint, is_active=not endpoint.is_active)
            return HttpResponseRedirect(reverse("notifications:webhooks"))
        form = WebhookForm(request.POST, institutions=institutions)
        if form.is_valid():
            try:
                services.webhook_create(actor=user, **form.cleaned_data)
            except ValidationError as exc:
                for message in exc.messages:
                    form.add_error(None, message)
            else:
                messages.success(request, _("Webhook added."))
                return HttpResponseRedirect(reverse("notifications:webhooks"))
        status = 400
    context = {"form": form, "webhooks": selectors.webhooks_for(user), "deliveries": selectors.deliveries_for(user)}
    return render(request, "notifications/webhooks.html", context, status=status)
