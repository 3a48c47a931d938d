"""The green channel's office pages over HTTP: the protocols (read by hospital staff, edited by the
consortium office into a new version while cases keep theirs), the travel settings and the
travel-time matrix (CSV in whole or not at all, CSV out), and the monthly report with its Excel
export, checked against a small set of cases whose times are set by hand."""

from __future__ import annotations

import datetime as dt
import io
import zoneinfo
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from openpyxl import load_workbook

from yilian.patients.models import Sex
from yilian.referrals import green_services, protocols
from yilian.referrals.models import GreenCase, GreenProtocol, GreenSettings, TravelTime
from yilian.registry.models import Consortium, Institution, User

pytestmark = pytest.mark.django_db

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
PROTOCOLS_URL = "/referrals/green/protocols/"
SETTINGS_URL = "/referrals/green/settings/"
REPORT_URL = "/referrals/green/report/"

Login = Callable[..., Client]


@pytest.fixture
def green(neuro: Consortium) -> Consortium:
    """The neurosurgery alliance with the default protocols (stroke, STEMI, ...)."""
    green_services.green_protocols_install_defaults(consortium=neuro)
    return neuro


@pytest.fixture
def stroke(green: Consortium) -> GreenProtocol:
    return GreenProtocol.objects.get(consortium=green, code="stroke")


def protocol_post(protocol: GreenProtocol, note: str = "", **changes: Any) -> dict[str, Any]:
    """The edit form as the office submits it: the current values, with ``changes`` applied."""
    version = green_services.current_version(protocol)
    definition = protocols.parse(version.definition)
    data: dict[str, Any] = {
        "name_zh": protocol.name_zh,
        "name_en": protocol.name_en,
        "capabilities": list(definition.capabilities),
        "note": note,
        "base_version": version.version,
    }
    if protocol.is_active:
        data["is_active"] = "on"
    for w in definition.windows:
        data[f"window_{w.code}_hours"] = f"{w.hours:g}"
        data[f"window_{w.code}_extended"] = f"{w.extended_hours:g}" if w.extended_hours else ""
    for m in definition.metrics:
        data[f"metric_{m.code}_target"] = m.target_minutes if m.target_minutes is not None else ""
    data.update(changes)
    return data


def activate(
    doctor: User,
    protocol: GreenProtocol,
    *,
    at: dt.datetime,
    door_in_before: int = 20,
    to: str = "qzph",
) -> GreenCase:
    """A stroke case from Changshan (csph) activated at ``at``, door-in ``door_in_before`` minutes earlier."""
    return green_services.green_activate(
        actor=doctor,
        sender=Institution.objects.get(code="csph"),
        protocol=protocol,
        patient=green_services.PatientGiven(sex=Sex.MALE, approximate_age=66),
        onset_at=at - dt.timedelta(minutes=90),
        door_in_at=at - dt.timedelta(minutes=door_in_before),
        destination=Institution.objects.get(code=to),
        now=at,
    )


# ----------------------------------------------------------------------------------------
# Protocols


def test_protocol_list_shows_a_doctor_what_each_protocol_requires(login: Login, stroke: GreenProtocol) -> None:
    response = login("doctor", "en").get(PROTOCOLS_URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert f'id="protocol-{stroke.public_id}"' in page
    for seen in (
        "Acute ischaemic stroke",
        "CT scanning",  # what the destination needs, by its label
        "Intravenous thrombolysis",
        "Thrombectomy",
        "24 h",  # extended window
        "with CTA large-vessel occlusion",  # when the thrombectomy window applies
        "Door-in-door-out",
        "≤ 60 min",  # door-to-needle target
        "Receiving hospital",  # who records groin puncture
        "STEMI",
        "v1",
    ):
        assert seen in page, seen
    assert "protocol-edit" not in page  # a doctor reads, the office edits


def test_office_edit_writes_version_2_and_an_activated_case_keeps_version_1(
    login: Login, persona: Callable[[str], User], neuro_office: User, stroke: GreenProtocol
) -> None:
    doctor = persona("doctor")
    now = dt.datetime.now(tz=SHANGHAI)
    earlier = activate(doctor, stroke, at=now - dt.timedelta(minutes=5))
    office = login("neuro_office", "en")
    form = office.get(f"{PROTOCOLS_URL}{stroke.public_id}/")
    assert form.status_code == 200
    assert 'name="metric_door_to_needle_target"' in form.content.decode()

    response = office.post(
        f"{PROTOCOLS_URL}{stroke.public_id}/",
        protocol_post(
            stroke,
            note="Door-to-needle target 45 min (stretch goal)",
            metric_door_to_needle_target="45",
            window_ivt_hours="4.5",
            capabilities=["ct", "iv_thrombolysis", "icu"],
        ),
    )
    assert response.status_code == 302
    current = green_services.current_version(stroke)
    assert current.version == 2
    definition = protocols.parse(current.definition)
    assert {m.code: m.target_minutes for m in definition.metrics}["door_to_needle"] == 45
    assert definition.capabilities == ["ct", "iv_thrombolysis", "icu"]
    # Only the edited fields changed: the nodes and the rest of the definition are the same.
    before = protocols.parse(protocols.DEFAULT_PROTOCOLS["stroke"]["definition"])
    assert definition.nodes == before.nodes and definition.findings == before.findings
    earlier.refresh_from_db()
    assert earlier.protocol_version.version == 1
    later = activate(doctor, stroke, at=now)
    assert later.protocol_version.version == 2

    page = office.get(PROTOCOLS_URL).content.decode()
    assert "v2" in page and "Door-to-needle target 45 min (stretch goal)" in page
    assert "Door-to-needle target: 60 min → 45 min" in page  # what changed, read from the versions
    assert "Destinations now also need: Intensive care unit" in page


def test_protocol_list_queries_do_not_grow_with_versions(
    login: Login, neuro_office: User, stroke: GreenProtocol
) -> None:
    client = login("doctor")
    with CaptureQueriesContext(connection) as first:
        assert client.get(PROTOCOLS_URL).status_code == 200
    definition = green_services.current_version(stroke).definition
    for target in (55, 50):
        definition["metrics"][2]["target_minutes"] = target
        green_services.green_protocol_revise(
            actor=neuro_office, protocol=stroke, definition=definition, note=f"DTN {target}"
        )
    with CaptureQueriesContext(connection) as again:
        page = client.get(PROTOCOLS_URL).content.decode()
    assert "v3" in page
    assert len(again) == len(first)


def test_a_doctor_may_not_edit_a_protocol(login: Login, stroke: GreenProtocol) -> None:
    doctor = login("doctor", "en")
    url = f"{PROTOCOLS_URL}{stroke.public_id}/"
    assert doctor.get(url).status_code == 403
    response = doctor.post(url, protocol_post(stroke, note="try", metric_door_to_needle_target="30"))
    assert response.status_code == 403
    assert green_services.current_version(stroke).version == 1


def test_invalid_protocol_input_is_refused_with_messages_and_no_new_version(
    login: Login, neuro_office: User, stroke: GreenProtocol
) -> None:
    office = login("neuro_office", "en")
    response = office.post(
        f"{PROTOCOLS_URL}{stroke.public_id}/",
        protocol_post(stroke, note="", window_evt_extended="5", metric_dido_target="0", capabilities=[]),
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "The extended window must be longer than 6 hours." in page
    assert "Ensure this value is greater than or equal to 1." in page
    assert "Choose at least one capability a destination needs." in page
    assert "This field is required." in page  # what changed
    assert green_services.current_version(stroke).version == 1


def test_invalid_protocol_input_is_explained_in_chinese_by_default(
    login: Login, neuro_office: User, stroke: GreenProtocol
) -> None:
    response = login("neuro_office").post(
        f"{PROTOCOLS_URL}{stroke.public_id}/", protocol_post(stroke, note="", metric_dido_target="abc")
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "该字段为必填项。" in page and "输入整数。" in page


def test_saving_an_unchanged_protocol_is_refused(login: Login, neuro_office: User, stroke: GreenProtocol) -> None:
    response = login("neuro_office", "en").post(
        f"{PROTOCOLS_URL}{stroke.public_id}/", protocol_post(stroke, note="nothing really")
    )
    assert response.status_code == 400
    assert "Nothing was changed." in response.content.decode()


# ----------------------------------------------------------------------------------------
# Settings and the travel-time matrix


def test_office_saves_the_travel_settings(login: Login, neuro_office: User, green: Consortium) -> None:
    office = login("neuro_office", "en")
    assert office.get(SETTINGS_URL).status_code == 200
    response = office.post(
        SETTINGS_URL,
        {
            "form": "settings",
            "consortium": green.code,
            "road_factor": "1.50",
            "average_speed_kmh": "70",
            "offer_timeout_minutes": "3",
        },
    )
    assert response.status_code == 302
    saved = GreenSettings.objects.get(consortium=green)
    assert (str(saved.road_factor), saved.average_speed_kmh, saved.offer_timeout_minutes) == ("1.50", 70, 3)

    refused = office.post(
        SETTINGS_URL,
        {"form": "settings", "road_factor": "5", "average_speed_kmh": "70", "offer_timeout_minutes": "0"},
    )
    assert refused.status_code == 400
    text = refused.content.decode()
    assert "Ensure this value is less than or equal to 3.00." in text
    assert "Ensure this value is greater than or equal to 1." in text
    saved.refresh_from_db()
    assert saved.offer_timeout_minutes == 3


def test_settings_are_the_offices_only(login: Login, green: Consortium) -> None:
    assert login("doctor").get(SETTINGS_URL).status_code == 403
    assert login("hospadmin").get(SETTINGS_URL).status_code == 403


def matrix_of(consortium: Consortium) -> dict[tuple[str, str], int]:
    return {
        (t.from_institution.code, t.to_institution.code): t.minutes
        for t in TravelTime.objects.filter(consortium=consortium).select_related("from_institution", "to_institution")
    }


def test_matrix_upload_stores_every_pair_and_the_download_reads_back(
    login: Login, neuro_office: User, green: Consortium
) -> None:
    office = login("neuro_office", "en")
    before = matrix_of(green)
    csv_text = "from,to,minutes\nqzph,csph,41\ncsph,qzph,43\ncs-tianma,lyph,97\n"
    upload = io.BytesIO(csv_text.encode())
    upload.name = "matrix.csv"
    response = office.post(SETTINGS_URL, {"form": "matrix", "consortium": green.code, "file": upload})
    assert response.status_code == 302
    expected = {**before, ("qzph", "csph"): 41, ("csph", "qzph"): 43, ("cs-tianma", "lyph"): 97}
    assert matrix_of(green) == expected
    page = office.get(SETTINGS_URL).content.decode()
    assert "Travel times imported: 3 pairs" in page
    assert f'id="matrix-pairs">{len(expected)}<' in page

    download = office.get(SETTINGS_URL, {"consortium": green.code, "format": "csv"})
    assert download.status_code == 200
    assert download["Content-Type"].startswith("text/csv")
    body = download.content
    assert body.startswith("\ufeff".encode())  # Excel reads UTF-8 only with the mark
    lines = body.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("from,to,minutes") and len(lines) == len(expected) + 1
    assert any(line.startswith("csph,qzph,43,") for line in lines)
    # The download is a file the office can import again, changing nothing.
    again = io.BytesIO(body)
    again.name = "again.csv"
    assert office.post(SETTINGS_URL, {"form": "matrix", "consortium": green.code, "file": again}).status_code == 302
    assert matrix_of(green) == expected


def test_matrix_upload_with_bad_rows_lists_each_and_stores_nothing(
    login: Login, neuro_office: User, green: Consortium
) -> None:
    office = login("neuro_office", "en")
    before = matrix_of(green)
    csv_text = "出发机构代码,到达机构代码,用时（分钟）\nqzph,csph,39\nqzph,nowhere,30\ncsph,qzph,soon\nkhph,khph,10\n"
    upload = io.BytesIO(csv_text.encode("gb18030"))
    upload.name = "matrix.csv"
    response = office.post(SETTINGS_URL, {"form": "matrix", "consortium": green.code, "file": upload})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing was imported." in page
    assert "Row 3: nowhere is not a member institution of the consortium." in page
    assert "Row 4: minutes must be a whole number from 1 to 1440" in page
    assert "Row 5: from and to are the same institution." in page
    assert matrix_of(green) == before  # not even the good first row


def test_a_matrix_file_with_many_bad_rows_lists_fifty_and_counts_the_rest(
    login: Login, neuro_office: User, green: Consortium
) -> None:
    upload = io.BytesIO(("from,to,minutes\n" + "qzph,csph,0\n" * 60).encode())
    upload.name = "matrix.csv"
    response = login("neuro_office", "en").post(
        SETTINGS_URL, {"form": "matrix", "consortium": green.code, "file": upload}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert "Row 51: minutes must be" in page and "Row 52: minutes must be" not in page
    assert "…and 10 more rows with problems." in page


def test_matrix_download_has_chinese_headers_for_chinese_users_and_imports_back(
    login: Login, neuro_office: User, green: Consortium
) -> None:
    office = login("neuro_office")
    body = office.get(SETTINGS_URL, {"format": "csv", "consortium": green.code}).content
    first = body.decode("utf-8-sig").splitlines()[0]
    assert first == "出发机构代码,到达机构代码,用时（分钟）,出发机构名称,到达机构名称"
    before = matrix_of(green)
    again = io.BytesIO(body)
    again.name = "矩阵.csv"
    assert office.post(SETTINGS_URL, {"form": "matrix", "consortium": green.code, "file": again}).status_code == 302
    assert matrix_of(green) == before


def test_admin_lists_the_green_channel_set_up_with_versions_read_only(
    login: Login, neuro_office: User, stroke: GreenProtocol
) -> None:
    office = login("neuro_office", "en")
    listing = office.get("/admin/referrals/greenprotocol/").content.decode()
    assert "Acute ischaemic stroke" in listing
    change = office.get(f"/admin/referrals/greenprotocol/{stroke.pk}/change/")
    assert change.status_code == 200
    text = change.content.decode()
    assert "ct, iv_thrombolysis" in text and "dido ≤ 120" in text  # the version, summarised
    assert 'name="versions-0-note"' not in text  # versions are read only
    assert office.get("/admin/referrals/greenprotocol/add/").status_code == 403
    assert office.get("/admin/referrals/greensettings/").status_code == 200
    assert office.get("/admin/referrals/traveltime/").status_code == 200
    assert login("doctor").get("/admin/referrals/greenprotocol/").status_code in (302, 403)


# ----------------------------------------------------------------------------------------
# The monthly report


class ReportPage(HTMLParser):
    """The report's tables as (institution, protocol) -> month (or "total") -> cells by class."""

    CELLS = ("cases", "accepted-first", "median", "p90", "compliance")

    def __init__(self, html: str) -> None:
        super().__init__()
        self.sections: dict[tuple[str, str], dict[str, list[tuple[str, str]]]] = {}
        self._section: tuple[str, str] | None = None
        self._row: str | None = None
        self._cell: list[str] | None = None
        self._cell_class = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section" and "report-section" in a.get("class", ""):
            self._section = (a["data-institution"], a["data-protocol"])
            self.sections[self._section] = {}
        elif tag == "tr" and self._section and ("data-month" in a or "report-total" in a.get("class", "")):
            self._row = a.get("data-month") or "total"
            self.sections[self._section][self._row] = []
        elif tag == "td" and self._row is not None:
            self._cell, self._cell_class = [], a.get("class", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._section and self._row:
            self.sections[self._section][self._row].append((" ".join("".join(self._cell).split()), self._cell_class))
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def row(self, institution: str, protocol: str, month: str) -> list[tuple[str, str]]:
        return self.sections[(institution, protocol)][month]


def metric_cells(row: list[tuple[str, str]], index: int) -> tuple[tuple[str, str], ...]:
    """(median, p90, within target) cells of the metric at ``index`` (after month, cases, accepted)."""
    start = 3 + 3 * index
    return row[start], row[start + 1], row[start + 2]


@pytest.fixture
def hand_built_cases(persona: Callable[[str], User], stroke: GreenProtocol) -> list[GreenCase]:
    """Five stroke cases from Changshan to Quzhou People's Hospital in May and June 2019.

    Door-in-door-out (target 120): May 40, 50, 70, 130; June 90. The city hospital accepts all but
    the 130-minute case; door-to-needle (target 60) for the three accepted May cases: 30, 50, 80.
    """
    doctor, coordinator = persona("doctor"), persona("coordinator")
    cases = []
    plan = [
        (dt.datetime(2019, 5, 6, 9, 0, tzinfo=SHANGHAI), 40, 30),
        (dt.datetime(2019, 5, 13, 22, 15, tzinfo=SHANGHAI), 50, 50),
        (dt.datetime(2019, 5, 20, 3, 40, tzinfo=SHANGHAI), 70, 80),
        (dt.datetime(2019, 5, 28, 14, 5, tzinfo=SHANGHAI), 130, None),
        (dt.datetime(2019, 6, 3, 11, 30, tzinfo=SHANGHAI), 90, None),
    ]
    for at, dido, dtn in plan:
        case = activate(doctor, stroke, at=at)
        door_in = at - dt.timedelta(minutes=20)
        door_out = door_in + dt.timedelta(minutes=dido)
        if dido != 130:
            green_services.green_accept(actor=coordinator, case=case, now=at + dt.timedelta(minutes=2))
        green_services.green_node_record(actor=doctor, case=case, node="door_out", at=door_out, now=door_out)
        if dtn is not None:
            arrival = door_out + dt.timedelta(minutes=35)
            needle = arrival + dt.timedelta(minutes=dtn)
            green_services.green_node_record(actor=coordinator, case=case, node="arrival", at=arrival, now=arrival)
            green_services.green_node_record(actor=coordinator, case=case, node="needle", at=needle, now=needle)
        cases.append(case)
    return cases


def metric_index(code: str) -> int:
    definition = protocols.parse(protocols.DEFAULT_PROTOCOLS["stroke"]["definition"])
    return [m.code for m in definition.metrics].index(code)


def test_report_shows_median_p90_and_compliance_per_month_and_period(
    login: Login, neuro_office: User, hand_built_cases: list[GreenCase]
) -> None:
    office = login("neuro_office", "en")
    query = {"month_from": "2019-05", "month_to": "2019-06", "institution": "csph", "protocol": "stroke"}
    response = office.get(REPORT_URL, query)
    assert response.status_code == 200
    report = ReportPage(response.content.decode())
    dido, dtn = metric_index("dido"), metric_index("door_to_needle")

    may = report.row("csph", "stroke", "2019-05")
    assert may[1][0] == "4"  # cases
    assert may[2][0] == "3 (75 %)"  # accepted by the first destination
    median, p90, within = metric_cells(may, dido)
    assert (median[0], p90[0], within[0]) == ("60", "130", "75 %")
    assert "missed" in p90[1] and "missed" not in median[1]  # 130 > 120 min
    median, p90, within = metric_cells(may, dtn)
    assert (median[0], p90[0], within[0]) == ("50", "80", "66.7 %")
    assert "missed" in p90[1]

    june = report.row("csph", "stroke", "2019-06")
    assert june[1][0] == "1"
    assert tuple(c[0] for c in metric_cells(june, dido)) == ("90", "90", "100 %")

    total = report.row("csph", "stroke", "total")
    assert total[1][0] == "5" and total[2][0] == "4 (80 %)"
    assert tuple(c[0] for c in metric_cells(total, dido)) == ("70", "130", "80 %")
    assert "target ≤ 120 min" in response.content.decode()
    assert 'id="green-report-data"' in response.content.decode()  # the charts' figures, in the page

    # By receiver: the cases Quzhou People's Hospital accepted.
    received = ReportPage(office.get(REPORT_URL, {**query, "institution": "qzph", "by": "receiver"}).content.decode())
    may = received.row("qzph", "stroke", "2019-05")
    assert may[1][0] == "3"
    assert tuple(c[0] for c in metric_cells(may, dtn)) == ("50", "80", "66.7 %")


def test_report_says_no_data_yet_for_an_empty_period(
    login: Login, neuro_office: User, hand_built_cases: list[GreenCase]
) -> None:
    response = login("neuro_office", "en").get(REPORT_URL, {"month_from": "2019-01", "month_to": "2019-02"})
    assert response.status_code == 200
    page = response.content.decode()
    assert "No data yet" in page and "green-report-data" not in page


def test_report_refuses_a_month_range_that_runs_backwards(login: Login, neuro_office: User, green: Consortium) -> None:
    response = login("neuro_office", "en").get(REPORT_URL, {"month_from": "2019-06", "month_to": "2019-05"})
    assert response.status_code == 400
    assert "The last month comes before the first." in response.content.decode()


def test_report_excel_export_has_the_same_numbers(
    login: Login, neuro_office: User, hand_built_cases: list[GreenCase]
) -> None:
    office = login("neuro_office", "en")
    query = {"month_from": "2019-05", "month_to": "2019-06", "institution": "csph", "protocol": "stroke"}
    response = office.get(REPORT_URL, {**query, "format": "xlsx"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    workbook = load_workbook(io.BytesIO(response.content))
    sheet = next(ws for ws in workbook.worksheets if "(stroke)" in ws.title)
    rows = list(sheet.iter_rows(values_only=True))
    header = rows[0]
    column = {
        "median": next(i for i, h in enumerate(header) if str(h).startswith("Door-in-door-out (target ≤ 120 min)")),
    }
    column["p90"], column["within"] = column["median"] + 1, column["median"] + 2
    by_month = {row[1]: row for row in rows[1:]}
    may, june, total = by_month["2019-05"], by_month["2019-06"], by_month["Total"]
    assert (may[2], may[3]) == (4, 3)
    assert (may[column["median"]], may[column["p90"]], may[column["within"]]) == (60, 130, 0.75)
    assert (june[column["median"]], june[column["p90"]], june[column["within"]]) == (90, 90, 1.0)
    assert (total[2], total[column["median"]], total[column["p90"]], total[column["within"]]) == (5, 70, 130, 0.8)


def test_report_is_refused_to_a_user_without_referral_figures(login: Login, green: Consortium) -> None:
    doctor = login("doctor")
    assert doctor.get(REPORT_URL).status_code == 403
    assert doctor.get(REPORT_URL, {"format": "xlsx"}).status_code == 403


def test_report_defaults_to_the_last_twelve_months(login: Login, green: Consortium) -> None:
    response = login("hospadmin", "en").get(REPORT_URL)
    assert response.status_code == 200
    months = response.context["query"].months
    assert len(months) == 12 and months[-1] == timezone.localdate().replace(day=1)
