"""The activity upload in a real Chromium: Quzhou's quality office uploads a month of visits, sees
the upload's and then the importer's progress, and lands on the batch with the rows left out and
their problems. Screenshots go to docs/screenshots/ (activity-upload, activity-batch)."""

from __future__ import annotations

import csv
import io
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from yilian.activity import services
from yilian.activity.models import BatchStatus, ImportBatch
from yilian.web.tests.browsing import log_in, shot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HEADER = ["机构代码", "就诊流水号", "患者ID", "科室", "就诊日期", "门急诊", "初复诊", "性别", "年龄", "居住地区划代码"]
DEPARTMENTS = ["神经内科", "心血管内科", "骨科", "儿科", "呼吸内科"]
REGIONS = ["330802", "330803", "330822", "330824", "330881", "520502", "360102"]


def march_visits() -> bytes:
    """60 visits of March 2025 at Quzhou People's Hospital; two rows are wrong (a day that does not
    exist, an unknown visit type)."""
    rows = []
    for n in range(60):
        rows.append(
            [
                "qzph",
                f"MZ202503{n:04d}",
                f"P{7000 + n}",
                DEPARTMENTS[n % len(DEPARTMENTS)],
                f"2025-03-{n % 28 + 1:02d}",
                "急诊" if n % 7 == 0 else "门诊",
                "复诊" if n % 3 == 0 else "初诊",
                "男" if n % 2 else "女",
                str(20 + n),
                REGIONS[n % len(REGIONS)],
            ]
        )
    rows[17][4] = "2025-02-30"
    rows[42][6] = "回访"
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([HEADER, *rows])
    return buffer.getvalue().encode("utf-8")


@pytest.fixture(autouse=True)
def activity_dir(settings: Any, tmp_path: Path) -> Path:
    settings.ACTIVITY_DIR = tmp_path / "activity"
    return Path(settings.ACTIVITY_DIR)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Holds the import (in the live server's thread) once the rows are checked, until the test
    has looked at the progress: the page is then caught mid-import however fast the machine."""
    reached, release = threading.Event(), threading.Event()
    real = services.batch_import

    def held(**kwargs: Any) -> Any:
        def progress(stage: str, done: int, total: int) -> None:
            if stage == "writing" and not reached.is_set():
                reached.set()
                release.wait(60)

        return real(**kwargs, progress=progress)

    monkeypatch.setattr(services, "batch_import", held)
    yield reached, release
    release.set()


def test_quality_office_uploads_visits_and_sees_the_progress_then_the_landed_batch(
    page: Page, site: str, tmp_path: Path, gate: Any
) -> None:
    reached, release = gate
    upload = tmp_path / "衢州市人民医院-门急诊-2025-03.csv"
    upload.write_bytes(march_visits())
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, site, "quality")
    page.goto(f"{site}/activity/")
    page.add_style_tag(content=".progress-bar { transition: none !important; }")  # the shot shows the bars' state
    page.locator("#id_kind").select_option("visits")
    page.locator("#id_file").set_input_files(str(upload))
    page.locator("#id_accept_valid").check()
    page.locator("#upload-submit").click()

    # The upload is through and the importer reports its stage while it works.
    expect(page.locator("#upload-progress")).to_be_visible()
    expect(page.locator("#upload-progress")).to_have_attribute("data-phase", "processing")
    expect(page.locator("#upload-bar")).to_have_attribute("aria-valuenow", "100")
    assert reached.wait(60)
    expect(page.locator("#process-label")).not_to_have_text(re.compile("^Waiting|^等待"))
    expect(page.locator("#upload-submit")).to_be_disabled()
    shot(page, "activity-upload")
    release.set()

    # Then the batch: 58 rows landed, 2 left out with their problems, the rejects offered.
    expect(page).to_have_url(re.compile(r"/activity/[0-9a-f-]{36}/$"))
    batch = ImportBatch.objects.get(uploaded_by__username="quality")
    assert (batch.status, batch.rows_landed, batch.rows_rejected) == (BatchStatus.LANDED, 58, 2)
    expect(page.locator("#batch-status [data-status]")).to_have_attribute("data-status", "landed")
    expect(page.locator("#batch-rows-counts")).to_contain_text("58")
    expect(page.locator("#batch-errors tbody tr")).to_have_count(2)
    expect(page.locator("#batch-errors tbody tr").first).to_contain_text("19")  # row 19: the 18th visit
    expect(page.locator("#batch-sha256")).to_have_text(batch.file_sha256)
    expect(page.locator("#rejects-download")).to_be_visible()
    shot(page, "activity-batch")

    # The list shows it.
    page.goto(f"{site}/activity/")
    row = page.locator(f"tr[data-batch='{batch.public_id}']")
    expect(row).to_contain_text("58")
    expect(row.locator("[data-status]")).to_have_attribute("data-status", "landed")


def test_a_wrong_file_comes_back_on_the_form_without_leaving_the_page(page: Page, site: str, tmp_path: Path) -> None:
    wrong = tmp_path / "visits.txt"
    wrong.write_bytes(march_visits())
    log_in(page, site, "quality")
    page.goto(f"{site}/activity/")
    page.locator("#id_kind").select_option("visits")
    page.locator("#id_file").set_input_files(str(wrong))
    page.locator("#upload-submit").click()
    expect(page.locator("#upload-card .invalid-feedback")).to_be_visible()
    expect(page.locator("#upload-card .invalid-feedback")).to_contain_text("visits.txt")
    expect(page).to_have_url(f"{site}/activity/")
    expect(page.locator("#id_kind")).to_have_value("visits")  # what was chosen stays chosen

    # The form that came back is live: a right file now goes through.
    right = tmp_path / "visits.csv"
    right.write_bytes(march_visits())
    page.locator("#id_file").set_input_files(str(right))
    page.locator("#id_accept_valid").check()
    page.locator("#upload-submit").click()
    expect(page).to_have_url(re.compile(r"/activity/[0-9a-f-]{36}/$"))
    assert not ImportBatch.objects.filter(filename="visits.txt").exists()


def test_a_front_page_export_lands_with_what_was_read_repaired_and_placed(
    page: Page, site: str, tmp_path: Path
) -> None:
    """A month of the hospital's front pages in the 2019 interface codes, GB18030, as Excel left it:
    the batch page names the dialect and encoding, lists the repairs and how residences were placed."""
    from yilian.activity.tests.frontpage_files import Op, Stay, build, write
    from yilian.registry.models import Institution

    org_code = Institution.objects.get(code="qzph").org_code
    addresses = [
        "浙江省衢州市开化县华埠镇新华路12号",
        "衢州市柯城区府山街道",
        "贵州省毕节市七星关区",
        "",
        "江山市贺村镇",
    ]
    stays = []
    for n in range(24):
        ops = [Op("01.2401", "开颅血肿清除术", "2025-03-03", "4.0", "周医生", "1")] if n % 2 else []
        if n == 5:
            ops = [Op(f"{36 + k % 3:02d}.0{k % 9 + 1}01", "", "2025-03-04", "3") for k in range(41)]
        stays.append(
            Stay(
                institution=org_code,
                record_no=f"BA2025{n:04d}",
                admission_count="1.0" if n % 3 == 0 else "1",
                admitted="2025年3月1日" if n % 4 == 0 else "2025-03-01 08:30:00",
                discharged="20250309" if n % 4 == 1 else "2025-03-09 10:00:00",
                id_number="",
                address=addresses[n % len(addresses)],
                postcode="324000" if n % 5 == 3 else "-",
                department="402" if n % 6 == 0 else "0402",
                length_of_stay="8",
                ops=ops,
            )
        )
    upload = write(tmp_path / "衢州市人民医院-病案首页-2025-03.csv", build("hqms2019", stays), encoding="gb18030")
    page.set_viewport_size({"width": 1280, "height": 1100})
    log_in(page, site, "quality")
    page.goto(f"{site}/activity/")
    page.locator("#id_kind").select_option("frontpages")
    page.locator("#id_file").set_input_files(str(upload))
    page.locator("#upload-submit").click()
    expect(page).to_have_url(re.compile(r"/activity/[0-9a-f-]{36}/$"))
    batch = ImportBatch.objects.get(uploaded_by__username="quality", kind="frontpages")
    assert batch.status == BatchStatus.LANDED, batch.errors[:5]
    expect(page.locator("#batch-status [data-status]")).to_have_attribute("data-status", "landed")
    report = page.locator("#batch-report")
    expect(report).to_contain_text("GB18030")
    expect(page.locator("#report-dialect")).to_contain_text(re.compile("2019"))
    expect(page.locator("#report-operations")).to_contain_text("24")
    expect(page.locator("#report-operations")).to_contain_text("41")
    expect(page.locator("#report-repairs")).to_contain_text("A49")
    expect(page.locator("#report-repairs")).to_contain_text("B16C")
    expect(page.locator("#report-residence")).to_be_visible()
    report.scroll_into_view_if_needed()
    shot(page, "activity-frontpage-batch")
