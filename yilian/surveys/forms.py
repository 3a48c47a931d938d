"""Forms of the staff survey pages. The answer page builds its inputs from the questionnaire's
items and hands them to the service, which checks them; so does the questionnaire editor, a row per
item (``ItemRows``)."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from yilian.registry.models import Department, Institution
from yilian.surveys import services
from yilian.surveys.models import Dimension, ItemType, SurveyKind
from yilian.surveys.services import MAX_ITEMS

ENCOUNTER_KIND_CHOICES = [(k.value, k.label) for k in (SurveyKind.OUTPATIENT, SurveyKind.INPATIENT)]


def _style(form: forms.Form) -> None:
    for field in form.fields.values():
        css = "form-select" if isinstance(field.widget, forms.Select) else "form-control"
        field.widget.attrs.setdefault("class", css)


class DepartmentField(forms.ModelChoiceField):  # type: ignore[type-arg]
    """A department, named with its institution when the user works at several."""

    with_institution = False

    def label_from_instance(self, obj: Any) -> str:
        if self.with_institution:
            return f"{obj.institution.short_name or obj.institution.name} · {obj.name}"
        return str(obj.name)


class _AtInstitution(forms.Form):
    institution = forms.ModelChoiceField(
        label=_("Institution"), queryset=Institution.objects.none(), to_field_name="code"
    )
    department = DepartmentField(
        label=_("Department"), queryset=Department.objects.none(), to_field_name="public_id", required=False
    )

    def __init__(self, *args: Any, institutions: list[Institution], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["institution"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = Institution.objects.filter(pk__in=[i.pk for i in institutions]).order_by("code")
        if len(institutions) == 1:
            self.initial.setdefault("institution", institutions[0].code)
        department = self.fields["department"]
        assert isinstance(department, DepartmentField)
        department.queryset = (
            Department.objects.filter(institution__in=[i.pk for i in institutions], is_active=True)
            .select_related("institution")
            .order_by("institution__code", "discipline")
        )
        department.with_institution = len(institutions) > 1
        _style(self)


class IssueForm(_AtInstitution):
    kind = forms.ChoiceField(label=_("Survey"), choices=ENCOUNTER_KIND_CHOICES)


class StaffBatchForm(_AtInstitution):
    count = forms.IntegerField(label=_("Number of links"), min_value=1, max_value=500, initial=20)


class PosterForm(_AtInstitution):
    kind = forms.ChoiceField(label=_("Survey"), choices=ENCOUNTER_KIND_CHOICES)
    valid_days = forms.IntegerField(
        label=_("Each visitor's link is valid for (days)"), min_value=1, max_value=30, initial=1
    )


class SmsForm(forms.Form):
    phone = forms.CharField(
        label=_("Mobile number"),
        max_length=20,
        help_text=_("Used only to send this text message; it is not stored."),
        widget=forms.TextInput(attrs={"inputmode": "tel", "autocomplete": "off"}),
    )
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _style(self)


class PublishForm(forms.Form):
    """The questionnaire's names and validity; its items are the rows of ``ItemRows``."""

    name_zh = forms.CharField(label=_("Name (Chinese)"), max_length=120)
    name_en = forms.CharField(label=_("Name (English)"), max_length=160, required=False)
    valid_days = forms.IntegerField(
        label=_("Links valid for (days)"),
        min_value=1,
        max_value=365,
        required=False,
        help_text=_("Empty: the site's default."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _style(self)


# The editor numbers new rows' order in steps, so that an item can be put between two others
# without renumbering them.
ORDER_STEP = 10
BLANK_ROWS = 2
MAX_ROWS = 2 * MAX_ITEMS
_SUGGESTED_KEY = re.compile(r"^q(\d+)$")
_CONTENT = ("zh", "en", "options")


class ItemForm(forms.Form):
    """One item of a questionnaire, a row of the editor. The rules for items are the service's
    (``services.questionnaire_validate_items``): this form only reads the row, options written one
    per line, into the item's dict, so that the page and the API refuse the same things."""

    key = forms.CharField(
        label=_("Key"),
        max_length=20,
        required=False,
        widget=forms.TextInput(attrs={"class": "form-control form-control-sm font-monospace", "autocomplete": "off"}),
    )
    order = forms.IntegerField(label=_("Order"), min_value=0, max_value=9999, required=False)
    type = forms.ChoiceField(label=_("Type"), choices=ItemType.choices)
    dimension = forms.ChoiceField(label=_("Dimension"), choices=Dimension.choices)
    zh = forms.CharField(label=_("Question (Chinese)"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    en = forms.CharField(label=_("Question (English)"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    required = forms.BooleanField(
        label=_("Must be answered"), required=False, widget=forms.CheckboxInput(attrs={"class": "form-check-input"})
    )
    options = forms.CharField(
        label=_("Options"),
        required=False,
        help_text=_("One option per line: key | Chinese | English. For example: b | 手机或电话预约 | By phone or app"),
        widget=forms.Textarea(
            attrs={
                "rows": 3,
                "class": "form-control form-control-sm font-monospace",
                "spellcheck": "false",
                "aria-label": _("Options"),
            }
        ),
    )

    def __init__(self, *args: Any, number: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.number = number
        for field in self.fields.values():
            css = (
                "form-select form-select-sm"
                if isinstance(field.widget, forms.Select)
                else "form-control form-control-sm"
            )
            field.widget.attrs.setdefault("class", css)

    @property
    def label(self) -> str:
        """What the page calls the row, and the service's messages about it."""
        return _("Item %(number)s") % {"number": self.number}

    def is_blank(self) -> bool:
        """No question and no options: an empty row for a new item, left empty. Its key, type and
        order are only suggestions, so they do not count."""
        if self.is_bound:
            return not any(str(self.data.get(self.add_prefix(name), "")).strip() for name in _CONTENT)
        return not any(str(self.initial.get(name) or "").strip() for name in _CONTENT)

    def has_changed(self) -> bool:
        # The formset skips a row that may be empty (every row here) when it has not changed:
        # a blank row is skipped, whatever its suggested key says.
        return not self.is_blank()

    def clean_key(self) -> str:
        return str(self.cleaned_data["key"]).strip().lower()

    def clean_options(self) -> list[dict[str, str]]:
        options: list[dict[str, str]] = []
        problems: list[ValidationError] = []
        # A Chinese input method types the full-width bar; both separate.
        lines = str(self.cleaned_data["options"]).replace("｜", "|").splitlines()
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            parts = [part.strip() for part in line.split("|")]
            if len(parts) != 3:
                problems.append(
                    ValidationError(
                        _("Line %(number)s: write key | Chinese | English, separated by |."), params={"number": number}
                    )
                )
                continue
            key, zh, en = parts
            options.append({"key": key.lower(), "zh": zh, "en": en})
        if problems:
            raise ValidationError(problems)
        return options

    def item(self) -> dict[str, Any]:
        """The row as an item of the list the service takes (options only when some are written,
        so that the service can say a rating has none)."""
        data = self.cleaned_data
        item: dict[str, Any] = {
            "key": data["key"],
            "dimension": data["dimension"],
            "type": data["type"],
            "zh": data["zh"],
            "en": data["en"],
            "required": data["required"],
        }
        if data["options"]:
            item["options"] = data["options"]
        return item


class ItemRows(forms.BaseFormSet):  # type: ignore[type-arg]
    """The rows of the editor. Every row may be left blank (it is then skipped), existing ones
    included; a row is removed with its delete box. Valid rows give ``items``: the filled-in rows
    in the order of their order numbers (then as on the page), checked by the service, whose
    problems are shown on the rows they are about."""

    items: list[dict[str, Any]]

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = super().get_form_kwargs(index)
        if index is not None:
            kwargs.update(number=index + 1, empty_permitted=True, use_required_attribute=False)
        return kwargs

    def add_fields(self, form: forms.Form, index: int | None) -> None:
        super().add_fields(form, index)
        form.fields[forms.formsets.DELETION_FIELD_NAME].widget.attrs["class"] = "form-check-input m-0"

    def filled(self) -> list[ItemForm]:
        """The rows that make an item, in the order they will be asked."""
        rows = [
            form
            for form in self.forms
            if isinstance(form, ItemForm)
            and not form.is_blank()
            and not form.cleaned_data.get(forms.formsets.DELETION_FIELD_NAME, False)
        ]
        return sorted(
            rows, key=lambda form: (form.cleaned_data.get("order") is None, form.cleaned_data.get("order") or 0)
        )

    def clean(self) -> None:
        self.items = []
        filled = self.filled()
        # The rows that could be read are checked even when others could not, so that every row
        # shows its problems at once; what concerns the whole list waits until all can be read.
        rows = [row for row in filled if not row.errors]
        try:
            self.items = services.questionnaire_validate_items(
                [row.item() for row in rows], names=[row.label for row in rows]
            )
        except ValidationError as exc:
            self._place(exc, rows, whole=len(rows) == len(filled))

    def _place(self, exc: ValidationError, rows: list[ItemForm], *, whole: bool) -> None:
        problems = exc.error_dict.get("items", []) if hasattr(exc, "error_dict") else exc.error_list
        texts = [row for row in rows if row.cleaned_data["type"] == ItemType.TEXT]
        general: list[ValidationError] = []
        for problem in problems:
            if isinstance(problem, services.ItemProblem) and 1 <= problem.index <= len(rows):
                rows[problem.index - 1].add_error(None, problem)
            elif not whole:
                continue
            elif problem.code == "free_text_count" and texts:
                for row in texts:  # more than one: each of them says so
                    row.add_error(None, problem)
            else:
                general.append(problem)
        # The service names the second row with a key; the one changed may be the first.
        by_key: dict[str, list[ItemForm]] = {}
        for row in rows:
            by_key.setdefault(row.cleaned_data["key"], []).append(row)
        for key, same in by_key.items():
            if key and len(same) > 1:
                message = _("%(where)s: the key %(key)s is used twice.") % {"where": same[0].label, "key": key}
                same[0].add_error(None, ValidationError(message, code="duplicate_key"))
        if general:
            raise ValidationError(general)

    def as_typed(self) -> list[dict[str, Any]]:
        """The rows as the user typed them, to show them again unchanged."""
        return [{name: form[name].value() for name in form.fields} for form in self.forms]


_ItemFormSet = forms.formset_factory(
    ItemForm, formset=ItemRows, extra=0, can_delete=True, max_num=MAX_ROWS, absolute_max=MAX_ROWS, validate_max=True
)


def item_rows(data: Any = None, *, initial: list[dict[str, Any]] | None = None) -> ItemRows:
    rows = _ItemFormSet(data, initial=initial, prefix="items")
    assert isinstance(rows, ItemRows)
    return rows


def item_rows_initial(items: list[dict[str, Any]], *, blank: int = BLANK_ROWS) -> list[dict[str, Any]]:
    """The editor's rows for these items, in their order, and ``blank`` empty rows after them."""
    rows = [
        {
            "key": item["key"],
            "order": ORDER_STEP * number,
            "type": item["type"],
            "dimension": item["dimension"],
            "zh": item["zh"],
            "en": item["en"],
            "required": item.get("required", False),
            "options": "\n".join(f"{o['key']} | {o['zh']} | {o['en']}" for o in item.get("options", [])),
        }
        for number, item in enumerate(items, start=1)
    ]
    return rows + blank_rows(rows, blank)


def blank_rows(rows: list[dict[str, Any]], count: int) -> list[dict[str, Any]]:
    """``count`` empty rows to follow these: keys suggested after the rows' highest qN, order
    numbers after their highest."""
    count = max(0, min(count, MAX_ROWS - len(rows)))
    keys = {str(row.get("key") or "") for row in rows}
    numbers = [int(match.group(1)) for key in keys if (match := _SUGGESTED_KEY.match(key))]
    orders = [int(str(row["order"])) for row in rows if str(row.get("order") or "").isdigit()]
    number = max(numbers, default=0) + 1
    order = (max(orders, default=0) // ORDER_STEP + 1) * ORDER_STEP
    blanks: list[dict[str, Any]] = []
    for _index in range(count):
        while f"q{number}" in keys:
            number += 1
        blanks.append(
            {
                "key": f"q{number}",
                "order": order,
                "type": ItemType.LIKERT.value,
                "dimension": Dimension.OVERALL.value,
                "required": True,
            }
        )
        number += 1
        order += ORDER_STEP
    return blanks


def typed_values(form: forms.Form) -> dict[str, Any]:
    """A bound form's values as typed, to show them again unchanged in an unbound form."""
    return {name: form[name].value() for name in form.fields}
