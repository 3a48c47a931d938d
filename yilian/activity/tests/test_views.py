"""The activity pages: upload a file, see the batch land or be rejected with its problems, download
the rows left out, withdraw a batch; who may do what; bad input refused with nothing written."""

from __future__ import annotations

import csv
import hashlib
import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.models import QuerySet
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import translation

from yilian.activity.models import BatchStatus, ImportBatch
from yilian.core.models import AuditAction, AuditEvent
from yilian.core.permissions import Role
from yilian.registry import services as registry_services
from yilian.registry.models import Institution, User

pytestmark = pytest.mark.django_db

HEADER = ["机构代码", "就诊流水号", "患者ID", "科室", "就诊日期", "门急诊", "初复诊", "性别", "年龄", "居住地区划代码"]
GOOD_ROWS = [
    ["qzph", "V0001", "330802195001011234", "神经内科", "2025-03-02", "门诊", "初诊", "男", "66", "330802"],
    ["qzph", "V0002", "330822196502021111", "心内科", "2025-03-05", "急诊", "复诊", "女", "58", "330822"],
    ["qzph", "V0003", "520502197003033333", "骨科", "2025-04-11", "门诊", "初诊", "女", "54", "520502"],
]
# Row 3 of the file (the second data row) has a date that does not exist.
BAD_ROW = ["qzph", "V0009", "330802198801019999", "骨科", "2025-02-30", "门诊", "初诊", "男", "37", "330802"]


def uploaded() -> QuerySet[ImportBatch]:
    """Batches someone uploaded (the demo's own batches are landed by the system, with no uploader)."""
    return ImportBatch.objects.filter(uploaded_by__isnull=False)


def visits_csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([HEADER, *rows])
    return buffer.getvalue().encode("utf-8")


def upload(client: Client, content: bytes, *, name: str = "visits-2025-03.csv", **extra: Any) -> Any:
    data: dict[str, Any] = {"kind": "visits", "file": SimpleUploadedFile(name, content, "text/csv"), **extra}
    return client.post("/activity/", data, HTTP_ACCEPT_LANGUAGE="en")


@pytest.fixture(autouse=True)
def activity_dir(settings: Any, tmp_path: Path) -> Path:
    settings.ACTIVITY_DIR = tmp_path / "activity"
    return Path(settings.ACTIVITY_DIR)


@pytest.fixture
def other_admin() -> User:
    """A hospital administrator of Changshan County People's Hospital (not Quzhou's)."""
    user = registry_services.user_create(actor=None, username="csph-admin", password="Changshan-2026!")
    registry_services.membership_grant(
        actor=None, user=user, role=Role.HOSPITAL_ADMIN, institution=Institution.objects.get(code="csph")
    )
    return user


def test_quality_staff_upload_lands_and_the_batch_page_shows_its_manifest(login: Any, persona: Any) -> None:
    client = login("quality", "en")
    content = visits_csv(GOOD_ROWS)
    response = upload(client, content)
    batch = uploaded().get()
    assert response.status_code == 302
    assert response["Location"] == f"/activity/{batch.public_id}/"
    assert (batch.status, batch.rows_total, batch.rows_landed, batch.rows_rejected) == ("landed", 3, 3, 0)
    assert batch.uploaded_by == persona("quality")

    page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en")
    html = page.content.decode()
    assert page.status_code == 200
    assert "3 rows landed." in html
    assert hashlib.sha256(content).hexdigest() in html
    assert "visits-2025-03.csv" in html
    assert "2025-03-02 – 2025-04-11" in html
    assert "Quzhou" in html or "衢州" in html  # the institution by name
    assert 'data-status="landed"' in html
    assert "Withdraw this batch" in html  # quality staff of Quzhou may withdraw Quzhou's batch


def test_the_list_shows_the_batch_with_its_counts_and_filters_by_kind_and_status(login: Any) -> None:
    client = login("quality", "en")
    upload(client, visits_csv(GOOD_ROWS))
    upload(client, visits_csv([BAD_ROW]), name="broken.csv")
    html = client.get("/activity/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "visits-2025-03.csv" in html and "broken.csv" in html
    assert 'id="upload-form"' in html

    landed_only = client.get("/activity/?status=landed", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "visits-2025-03.csv" in landed_only and "broken.csv" not in landed_only
    operations_only = client.get("/activity/?kind=operations", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "visits-2025-03.csv" not in operations_only and "broken.csv" not in operations_only


def test_a_file_with_an_invalid_row_is_rejected_whole_and_the_page_lists_the_problem(
    login: Any, activity_dir: Path
) -> None:
    client = login("quality", "en")
    response = upload(client, visits_csv([GOOD_ROWS[0], BAD_ROW, GOOD_ROWS[1]]))
    batch = uploaded().get()
    assert response.status_code == 302
    assert (batch.status, batch.rows_landed, batch.errors_total) == ("rejected", 0, 1)
    assert not list(activity_dir.glob("visits/batch=*/*.parquet"))  # nothing landed

    html = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "The file was rejected: nothing was imported." in html
    table = html.split('id="batch-errors"', 1)[1]
    # Row 3 of the spreadsheet (header = 1), the column as written in the file.
    assert '<td class="text-end font-monospace">3</td><td class="text-nowrap">就诊日期</td>' in table
    assert "Withdraw this batch" not in html
    assert 'id="rejects-download"' not in html


def test_accept_valid_lands_the_valid_rows_and_offers_the_rejects_file_audited(login: Any, persona: Any) -> None:
    client = login("quality", "en")
    response = upload(client, visits_csv([GOOD_ROWS[0], BAD_ROW, GOOD_ROWS[1]]), accept_valid="on")
    batch = uploaded().get()
    assert (batch.status, batch.rows_landed, batch.rows_rejected) == ("landed", 2, 1)
    html = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "2 rows landed." in html
    assert "1 row was left out" in html
    assert f'href="/activity/{batch.public_id}/rejects/"' in html

    download = client.get(f"/activity/{batch.public_id}/rejects/")
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="visits-2025-03-rejects.csv"'
    body = b"".join(download.streaming_content).decode("utf-8-sig")
    assert "V0009" in body and "V0001" not in body
    assert AuditEvent.objects.filter(
        action=AuditAction.EXPORT, object_id=str(batch.public_id), actor=persona("quality")
    ).exists()


def test_withdraw_needs_a_reason_then_withdraws_and_the_history_shows_it(login: Any) -> None:
    client = login("quality", "en")
    upload(client, visits_csv(GOOD_ROWS))
    batch = uploaded().get()

    refused = client.post(f"/activity/{batch.public_id}/withdraw/", {"reason": "  "}, HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 400
    assert "Say why the batch is withdrawn." in refused.content.decode()
    batch.refresh_from_db()
    assert batch.status == BatchStatus.LANDED

    done = client.post(
        f"/activity/{batch.public_id}/withdraw/", {"reason": "March exported twice"}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert done.status_code == 302
    batch.refresh_from_db()
    assert (batch.status, batch.withdrawal_reason) == ("withdrawn", "March exported twice")
    html = client.get(done["Location"], HTTP_ACCEPT_LANGUAGE="en").content.decode()
    history = html.split('id="history"', 1)[1]
    assert [s for s in ("processing", "landed", "withdrawn") if f'data-status="{s}"' in history] == [
        "processing",
        "landed",
        "withdrawn",
    ]
    assert "March exported twice" in history
    assert "Withdraw this batch" not in html

    again = client.post(f"/activity/{batch.public_id}/withdraw/", {"reason": "again"}, HTTP_ACCEPT_LANGUAGE="en")
    assert again.status_code == 409  # withdrawn already, perhaps by someone else a moment earlier
    assert "Only a landed batch can be withdrawn" in again.content.decode()


def test_a_hospital_admin_of_another_institution_cannot_see_download_or_withdraw_the_batch(
    login: Any, other_admin: User
) -> None:
    upload(login("quality", "en"), visits_csv([GOOD_ROWS[0], BAD_ROW]), accept_valid="on")
    batch = uploaded().get()
    client = Client()
    client.force_login(other_admin)
    assert client.get("/activity/").status_code == 200  # may import for Changshan...
    assert "visits-2025-03.csv" not in client.get("/activity/").content.decode()  # ...but sees no Quzhou batch
    assert client.get(f"/activity/{batch.public_id}/").status_code == 403
    assert client.get(f"/activity/{batch.public_id}/rejects/").status_code == 403
    assert client.post(f"/activity/{batch.public_id}/withdraw/", {"reason": "not mine"}).status_code == 403
    assert client.get(f"/activity/{uuid.uuid4()}/").status_code == 404
    batch.refresh_from_db()
    assert batch.status == BatchStatus.LANDED
    assert not AuditEvent.objects.filter(action=AuditAction.EXPORT, object_id=str(batch.public_id)).exists()


def test_rows_of_another_institution_are_rejected_for_a_hospital_admin(other_admin: User) -> None:
    client = Client()
    client.force_login(other_admin)
    upload(client, visits_csv(GOOD_ROWS))  # Quzhou's rows, uploaded by Changshan's administrator
    assert uploaded().get().status == BatchStatus.REJECTED


def test_the_commission_viewer_cannot_open_the_imports_or_upload(login: Any) -> None:
    client = login("commission", "en")
    assert client.get("/activity/").status_code == 403
    assert upload(client, visits_csv(GOOD_ROWS)).status_code == 403
    assert not uploaded().exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "visits", "file": ("visits.txt", b"a,b\n1,2\n")}, "Upload a .csv, .xlsx or .json (FHIR bundle) file"),
        ({"kind": "visits", "file": ("visits.csv", b"")}, "The file is empty."),
        (
            {"kind": "", "file": ("visits.csv", b"x")},
            "Choose the dataset: discharges, operations, visits or front pages.",
        ),
        ({"kind": "surgeries", "file": ("visits.csv", b"x")}, "Select a valid choice."),
        ({"kind": "visits"}, "Choose a file."),
    ],
)
def test_bad_input_is_refused_with_a_message_and_nothing_is_written(
    login: Any, data: dict[str, Any], message: str
) -> None:
    client = login("hospadmin", "en")
    if "file" in data:
        name, content = data["file"]
        data = {**data, "file": SimpleUploadedFile(name, content)}
    response = client.post("/activity/", data, HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not uploaded().exists()


def test_a_file_over_the_limit_is_refused(login: Any, settings: Any) -> None:
    settings.ACTIVITY_MAX_UPLOAD_BYTES = 2 * 1024 * 1024
    client = login("hospadmin", "en")
    big = visits_csv(GOOD_ROWS) + b"\n" * (3 * 1024 * 1024)
    response = upload(client, big)
    assert response.status_code == 413
    assert "The file is larger than 2 MB." in response.content.decode()
    # Just over the limit (within the envelope the body check allows): the form's own check refuses it.
    response = upload(client, b"x" * (2 * 1024 * 1024 + 1))
    assert response.status_code == 400
    assert "The file is larger than 2 MB." in response.content.decode()
    assert not uploaded().exists()


def test_an_upload_sent_by_script_gets_the_batch_address_or_the_form_with_its_errors(login: Any) -> None:
    client = login("quality", "en")
    xhr = {"HTTP_X_REQUESTED_WITH": "XMLHttpRequest", "HTTP_ACCEPT_LANGUAGE": "en"}
    ok = client.post(
        "/activity/", {"kind": "visits", "file": SimpleUploadedFile("v.csv", visits_csv(GOOD_ROWS))}, **xhr
    )
    batch = uploaded().get()
    assert ok.status_code == 200
    assert ok.json() == {"url": f"/activity/{batch.public_id}/", "status": "landed"}

    bad = client.post("/activity/", {"kind": "visits", "file": SimpleUploadedFile("v.csv", b"")}, **xhr)
    assert bad.status_code == 400
    html = bad.content.decode()
    assert html.startswith('<div class="card mb-4" id="upload-card">')
    assert "The file is empty." in html and "<nav" not in html


def test_progress_reports_the_callers_running_import_of_that_file(login: Any, persona: Any) -> None:
    client = login("quality", "en")
    assert client.get("/activity/progress/?name=big.csv").json() == {}
    ImportBatch.objects.create(
        kind="visits",
        filename="big.csv",
        uploaded_by=persona("quality"),
        progress_stage="validating",
        progress_done=2,
        progress_total=3,
    )
    with translation.override("en"):
        answer = client.get("/activity/progress/?name=big.csv", HTTP_ACCEPT_LANGUAGE="en").json()
    assert answer == {
        "stage": "validating",
        "stage_label": "Checking the rows and pseudonymising patients",
        "done": 2,
        "total": 3,
    }
    # Someone else's import of a file with the same name is not the caller's.
    assert login("hospadmin").get("/activity/progress/?name=big.csv").json() == {}


def test_a_processing_batch_page_polls_and_reloads_once_done(login: Any, persona: Any) -> None:
    client = login("quality", "en")
    batch = ImportBatch.objects.create(
        kind="visits", filename="big.csv", uploaded_by=persona("quality"), progress_stage="validating"
    )
    page = client.get(f"/activity/{batch.public_id}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'hx-trigger="every 1s"' in page
    partial = client.get(f"/activity/{batch.public_id}/?progress=1", HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and "HX-Refresh" not in partial
    ImportBatch.objects.filter(pk=batch.pk).update(status=BatchStatus.REJECTED)
    finished = client.get(f"/activity/{batch.public_id}/?progress=1", HTTP_HX_REQUEST="true")
    assert finished["HX-Refresh"] == "true"


def test_the_list_costs_the_same_queries_however_many_batches(login: Any, persona: Any) -> None:
    client = login("quality", "en")
    client.get("/activity/")  # warm the session and the caches
    with CaptureQueriesContext(connection) as before:
        client.get("/activity/")
    for n in range(3):
        ImportBatch.objects.create(kind="visits", filename=f"v{n}.csv", uploaded_by=persona("quality"))
    with CaptureQueriesContext(connection) as after:
        html = client.get("/activity/").content.decode()
    assert "v2.csv" in html
    assert len(after.captured_queries) == len(before.captured_queries)


def test_the_batch_page_of_a_shared_batch_hides_the_other_hospitals_rows(login: Any) -> None:
    kaihua_bad = ["khph", "K0002", "330824196604042222", "内科", "2025-02-30", "门诊", "初诊", "女", "59", "330824"]
    office = login("office", "en")
    upload(office, visits_csv([GOOD_ROWS[0], kaihua_bad]), accept_valid="on")
    batch = uploaded().get()
    assert batch.institution_codes == ["qzph"]  # the Kaihua row was left out
    assert "“2025-02-30” is not a date" in office.get(f"/activity/{batch.public_id}/").content.decode()

    quality = login("quality", "en")  # Quzhou's quality office sees the batch of its hospital...
    assert quality.get("/activity/", HTTP_ACCEPT_LANGUAGE="en").content.decode().count(str(batch.public_id)) >= 1
    html = quality.get(f"/activity/{batch.public_id}/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "1 row was left out" in html
    # ... but not the Kaihua row that was left out, quoted in the problems and in the rejects file.
    assert "2025-02-30" not in html
    assert 'id="rejects-download"' not in html
    assert quality.get(f"/activity/{batch.public_id}/rejects/").status_code == 403
