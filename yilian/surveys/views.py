"""Survey pages.

Public (no login): the answer page at /q/<token>/ (a plain form that works without JavaScript),
its thank-you page, and a poster's QR target /p/<code>/ that hands each visitor a fresh link.
Staff: hand out a link for an encounter (printable card with a QR code, or a text message), staff
links in a batch, department posters, and the consortium office's questionnaire editor.
Views parse, call a service, render.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from yilian.core.middleware import client_ip
from yilian.core.permissions import Permission
from yilian.registry.models import Consortium, User, localized
from yilian.registry.selectors import user_scope
from yilian.surveys import services
from yilian.surveys.forms import (
    BLANK_ROWS,
    MAX_ROWS,
    IssueForm,
    PosterForm,
    PublishForm,
    SmsForm,
    StaffBatchForm,
    blank_rows,
    item_rows,
    item_rows_initial,
    typed_values,
)
from yilian.surveys.models import (
    Channel,
    Dimension,
    ItemType,
    Poster,
    Questionnaire,
    QuestionnaireVersion,
    SurveyKind,
    SurveyToken,
)
from yilian.surveys.services import IssuedToken, PosterScanError, ScanRefused, SurveyTokenError, TokenState

DEVICE_COOKIE = "yl_survey_device"
LANGS = ("zh-hans", "en")


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _qr(url: str, scale: int = 5) -> str:
    # A viewBox instead of a fixed width and height: the page's CSS sizes the code, and a code
    # drawn smaller than its natural size is scaled down whole rather than cut off.
    return str(segno.make(url, error="m").svg_inline(scale=scale, dark="#000", omitsize=True))


# ----------------------------------------------------------------------------------------
# Public pages


@contextmanager
def _public_language(request: HttpRequest) -> Iterator[str]:
    """zh-Hans unless the visitor chose English with ?lang=en (kept in the form's address)."""
    lang = request.GET.get("lang", "")
    lang = lang if lang in LANGS else (translation.get_language() or "zh-hans")
    lang = "en" if lang.startswith("en") else "zh-hans"
    with translation.override(lang):
        yield lang


def _private(response: HttpResponse) -> HttpResponse:
    response["X-Robots-Tag"] = "noindex, nofollow"
    response["Referrer-Policy"] = "no-referrer"
    response["Cache-Control"] = "no-store"
    return response


_UNAVAILABLE_STATUS = {
    TokenState.UNKNOWN.value: 404,
    TokenState.EXPIRED.value: 410,
    TokenState.USED.value: 409,
    ScanRefused.UNKNOWN.value: 404,
    ScanRefused.TOO_MANY.value: 429,
}


def _unavailable(request: HttpRequest, reason: str) -> HttpResponse:
    # The page says why in both languages and nothing else: not which hospital, not when.
    response = render(request, "surveys/public/unavailable.html", {"reason": reason, "langs": LANGS})
    response.status_code = _UNAVAILABLE_STATUS[reason]
    if reason == ScanRefused.TOO_MANY:
        response["Retry-After"] = str(int(settings.YILIAN_POSTER_WINDOW_MINUTES) * 60)
    return _private(response)


LIKERT_WORDS = {
    "satisfaction": [
        ("😣", gettext_noop("Very dissatisfied")),
        ("🙁", gettext_noop("Dissatisfied")),
        ("😐", gettext_noop("Neutral")),
        ("🙂", gettext_noop("Satisfied")),
        ("😄", gettext_noop("Very satisfied")),
    ],
    "recommend": [
        ("😣", gettext_noop("Definitely not")),
        ("🙁", gettext_noop("Probably not")),
        ("😐", gettext_noop("Not sure")),
        ("🙂", gettext_noop("Probably")),
        ("😄", gettext_noop("Definitely")),
    ],
}


def _likert_words(dimension: str) -> list[tuple[int, str, str]]:
    words = LIKERT_WORDS["recommend" if dimension == Dimension.RECOMMEND else "satisfaction"]
    # gettext at render time, in the page's language (the table above is built at import).
    return [(n, face, _(word)) for n, (face, word) in enumerate(words, start=1)]


def _questions(version: QuestionnaireVersion, values: dict[str, Any], errors: dict[str, list[str]]) -> list[Any]:
    rows = []
    for number, item in enumerate(version.items, start=1):
        key = item["key"]
        value = values.get(key)
        chosen = value if isinstance(value, list) else ([value] if value else [])
        rows.append(
            {
                "number": number,
                "key": key,
                "name": f"a_{key}",
                "type": item["type"],
                "text": localized(item["zh"], item["en"]),
                "required": item.get("required", False),
                "scale": _likert_words(item["dimension"]) if item["type"] == ItemType.LIKERT else [],
                "options": [(o["key"], localized(o["zh"], o["en"])) for o in item.get("options", [])],
                "value": str(value) if isinstance(value, str | int) else "",
                "chosen": [str(c) for c in chosen],
                "errors": errors.get(key, []),
            }
        )
    return rows


def _posted_answers(request: HttpRequest, version: QuestionnaireVersion) -> dict[str, Any]:
    multiple = {i["key"] for i in version.items if i["type"] == ItemType.MULTIPLE}
    answers: dict[str, Any] = {}
    for name in request.POST:
        if not name.startswith("a_"):
            continue
        key = name[2:]
        answers[key] = request.POST.getlist(name) if key in multiple else request.POST.get(name, "")
    return answers


# The link itself is the secret (unguessable, one-time): a CSRF cookie would add a failure for
# old phones and in-app browsers without protecting anything a forger could reach.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def answer(request: HttpRequest, token: str) -> HttpResponse:
    with _public_language(request) as lang:
        try:
            survey = services.token_open(token)
        except SurveyTokenError as exc:
            return _unavailable(request, exc.state.value)
        values: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        status = 200
        if request.method == "POST":
            values = _posted_answers(request, survey.version)
            try:
                services.response_submit(raw_token=token, answers=values)
            except SurveyTokenError as exc:
                return _unavailable(request, exc.state.value)
            except ValidationError as exc:
                errors = exc.message_dict
                status = 400
            else:
                thanks_url = reverse("survey_thanks", args=[token])
                return HttpResponseRedirect(f"{thanks_url}?lang={lang}")
        questionnaire = survey.version.questionnaire
        context = {
            "lang": lang,
            "token": token,
            "questionnaire": questionnaire,
            "place": survey.department.name if survey.department else survey.institution.name,
            "institution": survey.institution,
            "questions": _questions(survey.version, values, errors),
            "general_errors": errors.get("__all__", []),
            "has_errors": bool(errors),
        }
        response = render(request, "surveys/public/answer.html", context, status=status)
        return _private(response)


@require_GET
def thanks(request: HttpRequest, token: str) -> HttpResponse:
    with _public_language(request) as lang:
        return _private(render(request, "surveys/public/thanks.html", {"lang": lang}))


@require_GET
def poster_scan(request: HttpRequest, code: str) -> HttpResponse:
    with _public_language(request):
        device = request.COOKIES.get(DEVICE_COOKIE, "")
        if not device or len(device) > 64:
            device = services.new_device_id()
        try:
            issued = services.poster_scan(code=code, device_id=device, address=client_ip(request) or "")
        except PosterScanError as exc:
            return _unavailable(request, exc.reason.value)
        response = HttpResponseRedirect(reverse("survey_answer", args=[issued.raw]))
        response.set_cookie(
            DEVICE_COOKIE,
            device,
            max_age=365 * 24 * 3600,
            httponly=True,
            samesite="Lax",
            secure=settings.SESSION_COOKIE_SECURE,
        )
        return _private(response)


# ----------------------------------------------------------------------------------------
# Staff: issuing


def _issue_context(user: User) -> dict[str, Any]:
    scope = user_scope(user)
    issuing = services.institutions_issuing_for(user)
    poster_places = services.institutions_with_posters_for(user)
    can_manage = scope.is_global or Permission.MANAGE_QUESTIONNAIRES in scope.permissions
    if not issuing and not poster_places and not can_manage:
        raise PermissionDenied(_("You do not hand out surveys."))
    return {
        "issue_form": IssueForm(institutions=issuing) if issuing else None,
        "staff_form": StaffBatchForm(institutions=poster_places) if poster_places else None,
        "can_posters": bool(poster_places),
        "can_manage": can_manage,
    }


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "surveys/manage/home.html", _issue_context(_user(request)))


def _card(
    request: HttpRequest, issued: IssuedToken, sms_form: SmsForm | None = None, status: int = 200
) -> HttpResponse:
    token = issued.token
    context = {
        "issued": issued,
        "token": token,
        "url": issued.url,
        "qr": _qr(issued.url, scale=6),
        "sms_form": sms_form or SmsForm(initial={"token": issued.raw}),
        "questionnaire": token.version.questionnaire,
    }
    response = render(request, "surveys/manage/card.html", context, status=status)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def issue(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = IssueForm(request.POST, institutions=services.institutions_issuing_for(user))
    channel = request.POST.get("channel", Channel.QR)
    if form.is_valid():
        data = form.cleaned_data
        try:
            issued = services.token_issue(
                actor=user,
                institution=data["institution"],
                kind=data["kind"],
                department=data["department"],
                channel=channel if channel in Channel.values else Channel.QR,
            )
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error(None, message)
        else:
            return _card(request, issued)
    context = _issue_context(user) | {"issue_form": form}
    return render(request, "surveys/manage/home.html", context, status=400)


def _issued_from_raw(raw: str) -> IssuedToken:
    token = (
        SurveyToken.objects.select_related("institution", "version__questionnaire")
        .filter(token_hash=services.token_hash(raw))
        .first()
    )
    if token is None:
        raise Http404(_("This survey link does not exist."))
    return IssuedToken(token, raw)


@login_required
@require_POST
def sms(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    issued = _issued_from_raw(request.POST.get("token", "")[:64])
    if not services.can_issue_at(user, issued.token.institution):
        raise PermissionDenied(_("You may hand out survey links only at your own institution."))
    form = SmsForm(request.POST)
    if form.is_valid():
        try:
            services.sms_send_survey(actor=user, phone=form.cleaned_data["phone"], issued=issued)
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error("phone", message)
        else:
            messages.success(request, _("The text message with the survey link has been sent."))
            return _card(request, issued, SmsForm(initial={"token": issued.raw}))
    return _card(request, issued, form, status=400)


@login_required
@require_POST
def staff_batch(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = StaffBatchForm(request.POST, institutions=services.institutions_with_posters_for(user))
    if form.is_valid():
        data = form.cleaned_data
        try:
            issued = services.staff_tokens_issue(
                actor=user, institution=data["institution"], count=data["count"], department=data["department"]
            )
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error(None, message)
        else:
            cards = [(i, _qr(i.url, scale=3)) for i in issued]
            response = render(
                request,
                "surveys/manage/staff_sheet.html",
                {"cards": cards, "institution": data["institution"], "expires_at": issued[0].token.expires_at},
            )
            response["Cache-Control"] = "no-store"
            return response
    context = _issue_context(user) | {"staff_form": form}
    return render(request, "surveys/manage/home.html", context, status=400)


# ----------------------------------------------------------------------------------------
# Staff: posters


@login_required
@require_http_methods(["GET", "POST"])
def posters(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    places = services.institutions_with_posters_for(user)
    if not places:
        raise PermissionDenied(_("Only the hospital's administrators and quality staff make posters."))
    form = PosterForm(request.POST or None, institutions=places)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                poster = services.poster_create(
                    actor=user,
                    institution=data["institution"],
                    kind=data["kind"],
                    department=data["department"],
                    valid_days=data["valid_days"],
                )
            except ValidationError as exc:
                for message in exc.messages:
                    form.add_error(None, message)
            else:
                messages.success(request, _("The poster is ready to print."))
                return HttpResponseRedirect(reverse("surveys:poster", args=[poster.public_id]))
        status = 400
    rows = (
        Poster.objects.filter(institution__in=places)
        .select_related("institution", "department", "questionnaire")
        .order_by("-is_active", "-created_at")
    )
    return render(request, "surveys/manage/posters.html", {"form": form, "posters": rows}, status=status)


def _access_poster(user: User, public_id: str) -> Poster:
    poster = (
        Poster.objects.select_related("institution", "department", "questionnaire").filter(public_id=public_id).first()
    )
    if poster is None:
        raise Http404(_("No such poster."))
    if poster.institution not in services.institutions_with_posters_for(user):
        raise PermissionDenied(_("Only the hospital's administrators and quality staff make posters."))
    return poster


@login_required
@require_GET
def poster(request: HttpRequest, public_id: str) -> HttpResponse:
    item = _access_poster(_user(request), str(public_id))
    url = settings.SITE_URL + reverse("survey_poster_scan", args=[item.code])
    return render(request, "surveys/manage/poster.html", {"poster": item, "url": url, "qr": _qr(url, scale=10)})


@login_required
@require_POST
def poster_deactivate(request: HttpRequest, public_id: str) -> HttpResponse:
    user = _user(request)
    item = _access_poster(user, str(public_id))
    services.poster_deactivate(actor=user, poster=item)
    messages.success(request, _("The poster no longer hands out links."))
    return HttpResponseRedirect(reverse("surveys:posters"))


# ----------------------------------------------------------------------------------------
# Consortium office: questionnaires


def _managed_consortia(user: User) -> list[Consortium]:
    scope = user_scope(user)
    if scope.is_global:
        return list(Consortium.objects.order_by("code"))
    if Permission.MANAGE_QUESTIONNAIRES not in scope.permissions:
        raise PermissionDenied(_("Only the consortium office edits questionnaires."))
    return list(Consortium.objects.filter(pk__in=scope.consortium_ids).order_by("code"))


@login_required
@require_GET
def questionnaires(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    consortia = _managed_consortia(user)
    own = {
        (q.consortium_id, q.kind): q
        for q in Questionnaire.objects.filter(consortium__in=consortia).prefetch_related("versions")
    }
    defaults = {q.kind: q for q in Questionnaire.objects.filter(consortium__isnull=True).prefetch_related("versions")}
    rows = []
    for consortium in consortia:
        for kind in SurveyKind:
            questionnaire = own.get((consortium.pk, kind.value))
            shown = questionnaire or defaults.get(kind.value)
            versions = sorted(shown.versions.all(), key=lambda v: -v.number) if shown else []
            rows.append(
                {
                    "consortium": consortium,
                    "kind": kind,
                    "questionnaire": shown,
                    "is_default": questionnaire is None,
                    "current": versions[0] if versions else None,
                }
            )
    return render(
        request,
        "surveys/manage/questionnaires.html",
        {"rows": rows, "is_global": user_scope(user).is_global, "defaults": defaults},
    )


def _consortium_from(user: User, code: str) -> Consortium | None:
    if code == "default":
        if not user_scope(user).is_global:
            raise PermissionDenied(_("Only a system administrator changes the built-in questionnaires."))
        return None
    consortium = Consortium.objects.filter(code=code).first()
    if consortium is None:
        raise Http404(_("No such consortium."))
    if not services.can_manage_questionnaires(user, consortium):
        raise PermissionDenied(_("Only the consortium's office may publish its questionnaires."))
    return consortium


# Empty rows a "more rows" press adds to the editor.
MORE_ROWS = 3


def _extra_rows(request: HttpRequest) -> int:
    try:
        return max(0, min(int(request.GET.get("extra", "")), MAX_ROWS))
    except ValueError:
        return BLANK_ROWS


def _form_error(form: PublishForm, exc: ValidationError) -> None:
    """The service's refusal on the form: on its field when the form has it, else above it."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, problems in exc.error_dict.items():
        form.add_error(field if field in form.fields else None, problems)


@login_required
@require_http_methods(["GET", "POST"])
def questionnaire_edit(request: HttpRequest, consortium: str, kind: str) -> HttpResponse:
    """Publish a new version: the names, and a row per item (the current version's, then empty
    ones; "more rows" shows the rows again as typed with more empty ones). A refusal shows each
    problem on its row, with everything as typed."""
    user = _user(request)
    if kind not in SurveyKind.values:
        raise Http404(_("No such questionnaire."))
    target = _consortium_from(user, consortium)
    own = Questionnaire.objects.filter(consortium=target, kind=kind).first()
    base = own or services.questionnaire_for(consortium=None, kind=kind)
    versions = list(base.versions.order_by("-number"))
    current = versions[0] if versions else None
    shown_number = request.GET.get("v", "")
    shown = next((v for v in versions if str(v.number) == shown_number), current)
    status = 200
    if request.method == "POST" and "more_rows" in request.POST:
        typed = item_rows(request.POST).as_typed()
        form = PublishForm(initial=typed_values(PublishForm(request.POST)))
        rows = item_rows(initial=typed + blank_rows(typed, MORE_ROWS))
    elif request.method == "POST":
        form = PublishForm(request.POST)
        rows = item_rows(request.POST)
        if form.is_valid() & rows.is_valid():  # both, so that every problem shows at once
            data = form.cleaned_data
            try:
                version = services.questionnaire_publish(
                    actor=user,
                    consortium=target,
                    kind=kind,
                    items=rows.items,
                    name_zh=data["name_zh"],
                    name_en=data["name_en"],
                    valid_days=data["valid_days"],
                )
            except ValidationError as exc:
                _form_error(form, exc)
            else:
                messages.success(
                    request, _("Version %(number)s is published. New links use it.") % {"number": version.number}
                )
                return HttpResponseRedirect(request.path)
        status = 400
    else:
        form = PublishForm(
            initial={
                "name_zh": base.name_zh,
                "name_en": base.name_en,
                "valid_days": own.valid_days if own else None,
            }
        )
        rows = item_rows(initial=item_rows_initial(current.items if current else [], blank=_extra_rows(request)))
    context = {
        "consortium": target,
        "consortium_code": consortium,
        "kind": SurveyKind(kind),
        "questionnaire": base,
        "is_default": own is None and target is not None,
        "versions": versions,
        "shown": shown,
        "shown_items": [
            {
                **item,
                "text": localized(item["zh"], item["en"]),
                "type_label": ItemType(item["type"]).label,
                "dimension_label": Dimension(item["dimension"]).label,
                "options_text": " / ".join(localized(o["zh"], o["en"]) for o in item.get("options", [])),
            }
            for item in (shown.items if shown else [])
        ],
        "shown_json": json.dumps(shown.items if shown else [], ensure_ascii=False, indent=2),
        "form": form,
        "rows": rows,
        "more_rows": MORE_ROWS,
        "default_days": settings.YILIAN_SURVEY_VALID_DAYS,
    }
    return render(request, "surveys/manage/questionnaire.html", context, status=status)
