"""The activity-import API: list, import (201 landed, 422 rejected with every problem by row and
column), one batch, the rows left out as CSV, withdrawal; 403 for those who may not import."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from yilian.activity.models import BatchStatus
from yilian.activity.tests.test_views import BAD_ROW, GOOD_ROWS, uploaded, visits_csv
from yilian.core.models import AuditAction, AuditEvent
from yilian.registry import services as registry_services

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def activity_dir(settings: Any, tmp_path: Path) -> Path:
    settings.ACTIVITY_DIR = tmp_path / "activity"
    return Path(settings.ACTIVITY_DIR)


@pytest.fixture
def api(persona: Any) -> Any:
    def make(username: str) -> Client:
        _, key = registry_services.api_token_create(actor=None, user=persona(username))
        return Client(HTTP_AUTHORIZATION=f"Bearer {key}", HTTP_ACCEPT_LANGUAGE="en")

    return make


def post_file(client: Client, content: bytes, *, kind: str = "visits", name: str = "visits.csv", **extra: Any) -> Any:
    return client.post(
        "/api/v1/activity/batches", {"kind": kind, "file": SimpleUploadedFile(name, content, "text/csv"), **extra}
    )


def test_an_import_that_lands_answers_201_with_the_manifest(api: Any) -> None:
    response = post_file(api("quality"), visits_csv(GOOD_ROWS))
    assert response.status_code == 201, response.content
    body = response.json()
    batch = uploaded().get()
    assert body["id"] == str(batch.public_id)
    assert body["status"] == "landed"
    assert (body["rows_total"], body["rows_landed"], body["rows_rejected"], body["rows_replaced"]) == (3, 3, 0, 0)
    assert body["institutions"] == ["qzph"]
    assert (body["date_from"], body["date_to"]) == ("2025-03-02", "2025-04-11")
    assert body["coverage"] == {"qzph": ["2025-03", "2025-04"]}
    assert body["uploaded_by"] == "quality"
    assert body["rejects_url"] is None
    assert body["errors"] == []


def test_a_rejected_import_answers_422_with_each_problem_and_the_count(api: Any) -> None:
    response = post_file(api("quality"), visits_csv([GOOD_ROWS[0], BAD_ROW]))
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == "The file was rejected: nothing was imported."
    assert body["error_count"] == 1
    assert [(e["row"], e["column"]) for e in body["errors"]] == [(3, "就诊日期")]
    assert body["batch"]["status"] == "rejected"
    assert body["batch"]["rows_landed"] == 0


def test_accept_valid_lands_the_rest_and_the_rejects_come_as_csv_audited(api: Any, persona: Any) -> None:
    client = api("quality")
    response = post_file(client, visits_csv([GOOD_ROWS[0], BAD_ROW, GOOD_ROWS[1]]), accept_valid="true")
    assert response.status_code == 201
    body = response.json()
    assert (body["rows_landed"], body["rows_rejected"]) == (2, 1)
    assert body["rejects_url"] == f"/api/v1/activity/batches/{body['id']}/rejects"
    download = client.get(body["rejects_url"])
    assert download.status_code == 200
    assert download["Content-Type"] == "text/csv"
    text = b"".join(download.streaming_content).decode("utf-8-sig")
    assert "V0009" in text and "V0002" not in text
    assert AuditEvent.objects.filter(action=AuditAction.EXPORT, object_id=body["id"], actor=persona("quality")).count()
    # A batch without rejected rows has nothing to download.
    clean = post_file(client, visits_csv([GOOD_ROWS[2]]), name="april.csv").json()
    assert client.get(f"/api/v1/activity/batches/{clean['id']}/rejects").status_code == 404


def test_bad_requests_are_4xx_and_write_nothing(api: Any) -> None:
    client = api("quality")
    assert post_file(client, b"", name="empty.csv").status_code == 400
    wrong = post_file(client, b"a,b\n", name="visits.txt")
    assert wrong.status_code == 400
    assert "Upload a .csv, .xlsx or .json" in wrong.json()["errors"]["file"][0]
    assert post_file(client, visits_csv(GOOD_ROWS), kind="surgeries").status_code == 422
    missing = client.post("/api/v1/activity/batches", {"kind": "visits"})
    assert missing.status_code == 422
    assert "file" in " ".join(missing.json()["errors"])
    assert not uploaded().exists()


def test_list_filters_and_detail(api: Any) -> None:
    client = api("quality")
    landed = post_file(client, visits_csv(GOOD_ROWS)).json()
    rejected = post_file(client, visits_csv([BAD_ROW]), name="bad.csv").json()["batch"]
    everything = client.get("/api/v1/activity/batches?limit=2").json()
    assert [b["id"] for b in everything["items"]] == [rejected["id"], landed["id"]]  # newest first
    second = client.get("/api/v1/activity/batches?limit=1&offset=1").json()
    assert [b["id"] for b in second["items"]] == [landed["id"]]
    assert second["count"] == everything["count"] >= 2
    only_landed = [b["id"] for b in client.get("/api/v1/activity/batches?status=landed").json()["items"]]
    assert landed["id"] in only_landed and rejected["id"] not in only_landed
    operations = client.get("/api/v1/activity/batches?kind=operations").json()["items"]
    assert {b["kind"] for b in operations} <= {"operations"}
    detail = client.get(f"/api/v1/activity/batches/{rejected['id']}").json()
    assert detail["errors"][0]["row"] == 2  # the only data row, under the header
    assert client.get(f"/api/v1/activity/batches/{uuid.uuid4()}").status_code == 404


def test_withdraw_then_again_is_a_conflict(api: Any) -> None:
    client = api("quality")
    landed = post_file(client, visits_csv(GOOD_ROWS)).json()
    url = f"/api/v1/activity/batches/{landed['id']}/withdraw"
    assert client.post(url, {"reason": ""}, content_type="application/json").status_code == 400
    done = client.post(url, {"reason": "exported twice"}, content_type="application/json")
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["withdrawal_reason"], done.json()["withdrawn_by"]) == (
        "withdrawn",
        "exported twice",
        "quality",
    )
    again = client.post(url, {"reason": "again"}, content_type="application/json")
    assert again.status_code == 409
    assert uploaded().get().status == BatchStatus.WITHDRAWN


def test_those_who_may_not_import_get_403_and_other_hospitals_403(api: Any) -> None:
    landed = post_file(api("quality"), visits_csv(GOOD_ROWS)).json()
    commission = api("commission")
    assert commission.get("/api/v1/activity/batches").status_code == 403
    assert post_file(commission, visits_csv(GOOD_ROWS)).status_code == 403
    assert commission.get(f"/api/v1/activity/batches/{landed['id']}").status_code == 403
    doctor = api("doctor")  # Changshan: no import permission
    assert (
        doctor.post(
            f"/api/v1/activity/batches/{landed['id']}/withdraw", {"reason": "x"}, content_type="application/json"
        ).status_code
        == 403
    )
    assert uploaded().count() == 1
    assert uploaded().get().status == BatchStatus.LANDED


def test_a_hospital_sees_a_shared_batch_but_not_the_other_hospitals_rows(api: Any) -> None:
    # The consortium office lands one file for Quzhou (qzph) and Kaihua (khph), with a bad Kaihua row.
    kaihua_good = ["khph", "K0001", "330824195503031111", "内科", "2025-03-03", "门诊", "初诊", "男", "70", "330824"]
    kaihua_bad = ["khph", "K0002", "330824196604042222", "内科", "2025-02-30", "门诊", "初诊", "女", "59", "330824"]
    office = api("office")
    response = post_file(office, visits_csv([GOOD_ROWS[0], kaihua_good, kaihua_bad]), accept_valid="true")
    assert response.status_code == 201
    body = response.json()
    assert sorted(body["institutions"]) == ["khph", "qzph"]
    assert [(e["row"], e["column"]) for e in body["errors"]] == [(4, "就诊日期")]
    assert office.get(body["rejects_url"]).status_code == 200

    quality = api("quality")  # Quzhou's quality office: may import for qzph only
    listed = {b["id"]: b for b in quality.get("/api/v1/activity/batches").json()["items"]}
    assert listed[body["id"]]["rejects_url"] is None
    detail = quality.get(f"/api/v1/activity/batches/{body['id']}")
    assert detail.status_code == 200
    assert detail.json()["errors"] == []
    assert detail.json()["rejects_url"] is None
    assert detail.json()["errors_total"] == 1  # the count, not the rows
    assert quality.get(f"/api/v1/activity/batches/{body['id']}/rejects").status_code == 403
