"""The indicators every installation starts with (DOMAIN.md section 4), as data.

Loaded by a data migration and editable in the admin afterwards; ``load_defaults`` adds the
missing ones and leaves edited ones alone. Each definition is checked by ``dsl.parse_measure``
(the test suite parses them all).
"""

from __future__ import annotations

from typing import Any

SURGERY = ["category", "in", ["surgery", "interventional"]]
STAYS_WITH_SURGERY: dict[str, Any] = {"source": "operations", "measure": "distinct:record_id", "where": [SURGERY]}
ALL_VISITS: dict[str, Any] = {"source": "visits", "measure": "rows"}
RESIDENTS_VISITS: dict[str, Any] = {"source": "visits", "measure": "rows", "attribute_to": "residence"}


def _visits_of_origin(*origins: str) -> dict[str, Any]:
    return {"source": "visits", "measure": "rows", "where": [["origin", "in", list(origins)]]}


DEFAULT_INDICATORS: list[dict[str, Any]] = [
    # --- capability (national appraisal: stays, not operations) ---------------------------------
    {
        "code": "surgery_share",
        "name_zh": "出院患者手术占比",
        "name_en": "Surgery share of discharges",
        "definition_zh": "出院患者中施行手术或介入治疗的人数（一次住院多次手术计一次）÷ 同期出院患者总数 × 100%"
        "（手术操作类别按已导入的国家手术操作分类认定，分类未列的编码按上报的类别）。",
        "definition_en": "Discharged stays with at least one surgery or interventional treatment (several "
        "operations in one stay count once) ÷ all discharges in the period × 100 % (the category by the "
        "national operation classification where one is loaded, else as reported).",
        "programme": "national_appraisal",
        "unit": "percent",
        "factor": 100,
        "numerator": STAYS_WITH_SURGERY,
        "denominator": {"source": "discharges", "measure": "distinct:record_id"},
    },
    {
        "code": "minimally_invasive_share",
        "name_zh": "出院患者微创手术占比",
        "name_en": "Minimally invasive share",
        "definition_zh": "施行微创手术的出院患者人数 ÷ 同期出院患者手术人数 × 100%（微创手术按已导入的国家微创手术目录"
        "认定；未导入目录的期间按本机构的微创手术编码清单和上报的微创标识）。",
        "definition_en": "Discharged stays with a minimally invasive operation ÷ discharged stays with surgery "
        "or intervention × 100 % (minimally invasive by the national catalogue where one is loaded for the "
        "period, else by the institution's own code list and the reported flag).",
        "programme": "national_appraisal",
        "unit": "percent",
        "factor": 100,
        "numerator": {
            "source": "operations",
            "measure": "distinct:record_id",
            "where": [SURGERY, ["minimally_invasive", "=", True]],
        },
        "denominator": STAYS_WITH_SURGERY,
    },
    {
        "code": "level4_share",
        "name_zh": "出院患者四级手术比例",
        "name_en": "Level-4 operation share",
        "definition_zh": "施行四级手术的出院患者人数 ÷ 同期出院患者手术人数 × 100%（四级手术按已导入的国家四级手术目录"
        "认定；未导入目录的期间取医院上报的手术级别）。",
        "definition_en": "Discharged stays with a level-4 operation ÷ discharged stays with surgery or "
        "intervention × 100 % (level 4 by the national level-4 catalogue where one is loaded for the period, "
        "else the level reported by the hospital).",
        "programme": "national_appraisal",
        "unit": "percent",
        "factor": 100,
        "numerator": {
            "source": "operations",
            "measure": "distinct:record_id",
            "where": [SURGERY, ["level4", "=", True]],
        },
        "denominator": STAYS_WITH_SURGERY,
    },
    {
        "code": "level3_share",
        "name_zh": "出院患者三级手术占比",
        "name_en": "Level-3 operation share",
        "definition_zh": "施行三级手术的出院患者人数 ÷ 同期出院患者手术人数 × 100%（二级医院考核）。",
        "definition_en": "Discharged stays with a level-3 operation ÷ discharged stays with surgery or "
        "intervention × 100 % (secondary hospitals' appraisal).",
        "programme": "national_appraisal",
        "unit": "percent",
        "factor": 100,
        "numerator": {
            "source": "operations",
            "measure": "distinct:record_id",
            "where": [SURGERY, ["operation_level", "=", 3]],
        },
        "denominator": STAYS_WITH_SURGERY,
    },
    {
        "code": "operations",
        "name_zh": "手术操作例数",
        "name_en": "Operations",
        "definition_zh": "出院患者施行的手术和操作例数（各类别、各级别，一次住院多次手术分别计数；按出院月份统计）。",
        "definition_en": "Operations and procedures of discharged stays, of every category and level (each "
        "operation of a stay counts; counted in the month of discharge).",
        "programme": "regional_centre",
        "unit": "operations",
        "factor": 1,
        "numerator": {"source": "operations", "measure": "rows"},
        "position": 45,  # added after the first release: before the level-3/4 count, others keep theirs
    },
    {
        "code": "level34_operations",
        "name_zh": "三、四级手术例数",
        "name_en": "Level-3/4 operations",
        "definition_zh": "出院患者施行的三级和四级手术例数（按出院月份统计）。",
        "definition_en": "Level-3 and level-4 operations of discharged stays (counted in the month of discharge).",
        "programme": "regional_centre",
        "unit": "operations",
        "factor": 1,
        "numerator": {"source": "operations", "measure": "rows", "where": [["operation_level", "in", [3, 4]]]},
    },
    {
        "code": "minimally_invasive_operations",
        "name_zh": "微创手术例数",
        "name_en": "Minimally invasive operations",
        "definition_zh": "出院患者施行的微创手术例数。",
        "definition_en": "Minimally invasive operations of discharged stays.",
        "programme": "regional_centre",
        "unit": "operations",
        "factor": 1,
        "numerator": {"source": "operations", "measure": "rows", "where": [["minimally_invasive", "=", True]]},
    },
    {
        "code": "robot_operations",
        "name_zh": "机器人辅助手术例数",
        "name_en": "Robot-assisted operations",
        "definition_zh": "出院患者施行的机器人辅助手术例数。",
        "definition_en": "Robot-assisted operations of discharged stays.",
        "programme": "regional_centre",
        "unit": "operations",
        "factor": 1,
        "numerator": {"source": "operations", "measure": "rows", "where": [["robot_assisted", "=", True]]},
    },
    {
        "code": "discharges",
        "name_zh": "出院人次",
        "name_en": "Discharges",
        "definition_zh": "期内出院的住院人次（所有离院方式）。",
        "definition_en": "Stays discharged in the period (every discharge mode).",
        "programme": "two_improvements",
        "unit": "stays",
        "factor": 1,
        "numerator": {"source": "discharges", "measure": "distinct:record_id"},
    },
    # --- patient flow ---------------------------------------------------------------------------
    {
        "code": "visits",
        "name_zh": "门急诊人次",
        "name_en": "Outpatient and emergency visits",
        "definition_zh": "期内门诊和急诊就诊人次（含远程门诊）。",
        "definition_en": "Outpatient and emergency visits in the period (tele-visits included).",
        "programme": "two_improvements",
        "unit": "visits",
        "factor": 1,
        "numerator": ALL_VISITS,
    },
    {
        "code": "visits_local",
        "name_zh": "本县（区）患者就诊人次",
        "name_en": "Visits by local patients",
        "definition_zh": "常住地与就诊机构在同一县（区）的门急诊人次。",
        "definition_en": "Visits by patients living in the treating institution's own county or district.",
        "programme": "two_improvements",
        "unit": "visits",
        "factor": 1,
        "numerator": _visits_of_origin("same_county"),
    },
    {
        "code": "visits_other_county",
        "name_zh": "市内外县（区）患者就诊人次",
        "name_en": "Visits from other counties of the city",
        "definition_zh": "常住地在本市其他县（区）的门急诊人次。",
        "definition_en": "Visits by patients living in another county or district of the same city.",
        "programme": "two_improvements",
        "unit": "visits",
        "factor": 1,
        "numerator": _visits_of_origin("same_city"),
    },
    {
        "code": "visits_other_city",
        "name_zh": "省内外市患者就诊人次",
        "name_en": "Visits from other cities of the province",
        "definition_zh": "常住地在本省其他市的门急诊人次。",
        "definition_en": "Visits by patients living in another city of the same province.",
        "programme": "regional_centre",
        "unit": "visits",
        "factor": 1,
        "numerator": _visits_of_origin("same_province"),
    },
    {
        "code": "visits_other_province",
        "name_zh": "外省患者就诊人次",
        "name_en": "Visits from other provinces",
        "definition_zh": "常住地在外省的门急诊人次。",
        "definition_en": "Visits by patients living in another province.",
        "programme": "regional_centre",
        "unit": "visits",
        "factor": 1,
        "numerator": _visits_of_origin("other_province"),
    },
    {
        "code": "visits_out_of_city",
        "name_zh": "市外患者就诊人次",
        "name_en": "Visits from outside the city",
        "definition_zh": "常住地在本市以外（省内外市和外省）的门急诊人次。",
        "definition_en": "Visits by patients living outside the treating institution's city (other cities "
        "of the province and other provinces).",
        "programme": "regional_centre",
        "unit": "visits",
        "factor": 1,
        "numerator": _visits_of_origin("same_province", "other_province"),
    },
    {
        "code": "in_county_visit_rate",
        "name_zh": "县域内就诊率",
        "name_en": "In-county visit rate",
        "definition_zh": "本地区常住居民在本县（区）内机构的门急诊人次 ÷ 本地区常住居民的全部门急诊人次 × 100%，"
        "按患者常住地统计；只计入已导入数据的机构。",
        "definition_en": "Visits by the region's residents at institutions of their own county ÷ all visits by "
        "the region's residents × 100 %, attributed to the residence region; only institutions whose data "
        "has been imported count.",
        "programme": "county_community",
        "unit": "percent",
        "factor": 100,
        "target": 90,
        "numerator": {**RESIDENTS_VISITS, "where": [["origin", "=", "same_county"]]},
        "denominator": RESIDENTS_VISITS,
    },
    {
        "code": "outflow_rate",
        "name_zh": "异地就诊率",
        "name_en": "Outflow rate",
        "definition_zh": "本地区常住居民在本市以外机构的门急诊人次 ÷ 本地区常住居民的全部门急诊人次 × 100%，"
        "按患者常住地统计。",
        "definition_en": "Visits by the region's residents at institutions outside their own city ÷ all visits "
        "by the region's residents × 100 %, attributed to the residence region.",
        "programme": "county_community",
        "unit": "percent",
        "factor": 100,
        "direction": "lower_better",
        "numerator": {**RESIDENTS_VISITS, "where": [["origin", "in", ["same_province", "other_province"]]]},
        "denominator": RESIDENTS_VISITS,
    },
    {
        "code": "primary_care_share",
        "name_zh": "基层诊疗量占比",
        "name_en": "Primary-care share of visits",
        "definition_zh": "基层医疗卫生机构（乡镇卫生院、社区卫生服务中心）门急诊人次 ÷ "
        "同一范围内全部机构门急诊人次 × 100%。",
        "definition_en": "Visits at primary-care institutions (township health centres, community health "
        "centres) ÷ visits at all institutions of the same unit × 100 %.",
        "programme": "county_community",
        "unit": "percent",
        "factor": 100,
        "target": 65,
        "numerator": {"source": "visits", "measure": "rows", "where": [["institution_type", "=", "primary_care"]]},
        "denominator": ALL_VISITS,
    },
    # --- collaboration (operational records) -----------------------------------------------------
    {
        "code": "down_referrals",
        "name_zh": "下转患者人次数",
        "name_en": "Down-referrals",
        "definition_zh": "期内发出的下转患者人次（门诊和住院），计入转出机构。",
        "definition_en": "Patients referred down in the period (outpatient and inpatient), counted at the "
        "referring institution.",
        "programme": "consortium",
        "unit": "referrals",
        "factor": 1,
        "numerator": {"source": "referrals", "measure": "sum:down_out"},
    },
    {
        "code": "up_referrals",
        "name_zh": "上转患者人次数",
        "name_en": "Up-referrals",
        "definition_zh": "期内发出的上转患者人次，计入转出机构。",
        "definition_en": "Patients referred up in the period, counted at the referring institution.",
        "programme": "consortium",
        "unit": "referrals",
        "factor": 1,
        "numerator": {"source": "referrals", "measure": "sum:up_out"},
    },
    {
        "code": "primary_up_referral_share",
        "name_zh": "基层向上级转诊病人占比",
        "name_en": "Share of up-referrals from primary care",
        "definition_zh": "基层医疗卫生机构发出的上转人次 ÷ 全部上转人次 × 100%。",
        "definition_en": "Up-referrals sent by primary-care institutions ÷ all up-referrals × 100 %.",
        "programme": "county_community",
        "unit": "percent",
        "factor": 100,
        "numerator": {
            "source": "referrals",
            "measure": "sum:up_out",
            "where": [["institution_type", "=", "primary_care"]],
        },
        "denominator": {"source": "referrals", "measure": "sum:up_out"},
    },
    {
        "code": "teleconsultations",
        "name_zh": "开展远程医疗服务人次数",
        "name_en": "Teleconsultations delivered",
        "definition_zh": "期内完成（首次答复或出具结论）的远程会诊、电子会诊、MDT 和远程诊断人次，计入申请机构。",
        "definition_en": "Teleconsultations, eConsults, MDT discussions and remote readings delivered (first "
        "answered or concluded) in the period, counted at the requesting institution.",
        "programme": "consortium",
        "unit": "consultations",
        "factor": 1,
        "numerator": {"source": "consults", "measure": "sum:delivered"},
    },
    {
        "code": "doctors_stationed",
        "name_zh": "医师派驻人数",
        "name_en": "Doctors stationed",
        "definition_zh": "期内在受援机构有派驻安排的专家人数（按受援机构计）。",
        "definition_en": "Experts with a stationing assignment running in the period, counted at the host institution.",
        "programme": "two_improvements",
        "unit": "doctors",
        "factor": 1,
        "numerator": {"source": "stationing", "measure": "sum:doctors_stationed"},
    },
    {
        "code": "onsite_days_delivered",
        "name_zh": "派驻在岗天数完成率",
        "name_en": "On-site days delivered vs committed",
        "definition_zh": "派驻专家实际在岗天数 ÷ 排班承诺天数 × 100%。",
        "definition_en": "On-site days delivered by stationed experts ÷ days committed in their rosters × 100 %.",
        "programme": "two_improvements",
        "unit": "percent",
        "factor": 100,
        "target": 100,
        "numerator": {"source": "stationing", "measure": "sum:days_delivered"},
        "denominator": {"source": "stationing", "measure": "sum:days_committed"},
    },
    {
        "code": "stationed_registration_share",
        "name_zh": "派驻医师挂号量占比",
        "name_en": "Share of visits seen by stationed doctors",
        "definition_zh": "派驻专家工作日志记录的门诊接诊人次 ÷ 受援机构门急诊人次 × 100%。",
        "definition_en": "Outpatients seen by stationed experts (their work logs) ÷ the host institution's "
        "visits × 100 %.",
        "programme": "two_improvements",
        "unit": "percent",
        "factor": 100,
        "numerator": {"source": "stationing", "measure": "sum:registrations"},
        "denominator": ALL_VISITS,
    },
    {
        "code": "stroke_dido_median",
        "name_zh": "卒中转运入门-出门时间中位数",
        "name_en": "Stroke door-in-door-out (median)",
        "definition_zh": "绿色通道卒中病例在转出医院的入门至出门时间（分钟）中位数，计入转出医院。",
        "definition_en": "Median minutes from door-in to door-out at the sending hospital for green-channel "
        "stroke cases, counted at the sending hospital.",
        "programme": "consortium",
        "unit": "minutes",
        "factor": 1,
        "direction": "lower_better",
        "target": 120,
        "numerator": {"source": "green", "measure": "median:stroke.dido", "side": "sender"},
    },
    {
        "code": "stroke_door_to_puncture_median",
        "name_zh": "卒中入院-穿刺时间中位数",
        "name_en": "Stroke door-to-puncture (median)",
        "definition_zh": "绿色通道卒中病例到达接收医院至股动脉穿刺的时间（分钟）中位数，计入接收医院。",
        "definition_en": "Median minutes from arrival to groin puncture for green-channel stroke cases, counted "
        "at the receiving hospital.",
        "programme": "consortium",
        "unit": "minutes",
        "factor": 1,
        "direction": "lower_better",
        "target": 90,
        "numerator": {"source": "green", "measure": "median:stroke.door_to_puncture", "side": "receiver"},
    },
    {
        "code": "stemi_door_to_balloon_median",
        "name_zh": "STEMI 入门-球囊时间中位数",
        "name_en": "STEMI door-to-balloon (median)",
        "definition_zh": "绿色通道 STEMI 病例到达接收医院至球囊扩张的时间（分钟）中位数，计入接收医院。",
        "definition_en": "Median minutes from arrival to balloon for green-channel STEMI cases, counted at the "
        "receiving hospital.",
        "programme": "consortium",
        "unit": "minutes",
        "factor": 1,
        "direction": "lower_better",
        "target": 90,
        "numerator": {"source": "green", "measure": "median:stemi.door_to_balloon", "side": "receiver"},
    },
    {
        "code": "techniques_introduced",
        "name_zh": "新技术引进数",
        "name_en": "Techniques introduced",
        "definition_zh": "期内由派驻专家完成首例（技术引进）的技术数，按受援机构计（技术转移台账）。",
        "definition_en": "Techniques whose first case at the host department (performed by the expert) falls in "
        "the period, counted at the host institution (technique-transfer ledger).",
        "programme": "two_improvements",
        "unit": "techniques",
        "factor": 1,
        "numerator": {"source": "capability", "measure": "sum:techniques_introduced"},
    },
    {
        "code": "techniques_independent",
        "name_zh": "本地独立开展技术数",
        "name_en": "Techniques performed independently by local surgeons",
        "definition_zh": "期内首次有本院医师获授权并独立完成的引进技术数，按受援机构计。",
        "definition_en": "Transferred techniques that a local surgeon, holding the privilege, first performed alone "
        "in the period, counted at the host institution.",
        "programme": "two_improvements",
        "unit": "techniques",
        "factor": 1,
        "numerator": {"source": "capability", "measure": "sum:techniques_independent"},
    },
    {
        "code": "blood_making_ratio",
        "name_zh": "三四级手术本地医师主刀占比（造血率）",
        "name_en": "Level-3/4 ledger cases operated by local surgeons (blood-making ratio)",
        "definition_zh": "技术转移台账中三、四级技术病例由本院医师主刀（带教下或独立）的例数 ÷ 全部病例数 × 100%。",
        "definition_en": "Cases of level-3/4 techniques in the transfer ledgers that a local surgeon operated "
        "(supervised or alone) ÷ all their cases × 100 %.",
        "programme": "two_improvements",
        "unit": "percent",
        "factor": 100,
        "numerator": {"source": "capability", "measure": "sum:ops_34_local"},
        "denominator": {"source": "capability", "measure": "sum:ops_34_total"},
    },
    {
        "code": "teaching_hours_delivered",
        "name_zh": "带教授课学时（授出）",
        "name_en": "Teaching hours delivered",
        "definition_zh": "本机构人员主讲或主持的教学活动学时（每次活动计一次）。",
        "definition_en": "Hours of teaching activities led by the institution's staff (each activity once).",
        "programme": "two_improvements",
        "unit": "hours",
        "factor": 1,
        "numerator": {"source": "capability", "measure": "sum:teaching_hours_delivered"},
    },
    {
        "code": "teaching_hours_received",
        "name_zh": "培训学时（获得）",
        "name_en": "Teaching hours received",
        "definition_zh": "本机构人员签到参加教学活动获得的学时合计。",
        "definition_en": "Hours credited to the institution's staff for the teaching activities they signed in to.",
        "programme": "two_improvements",
        "unit": "hours",
        "factor": 1,
        "numerator": {"source": "capability", "measure": "sum:teaching_hours_received"},
    },
    {
        "code": "milestones_reached",
        "name_zh": "学员达成培养节点数",
        "name_en": "Mentee milestones reached",
        "definition_zh": "名医工作室、骨干培育学员经导师签字确认通过的培养节点数，按项目所在机构计。",
        "definition_en": "Milestones of master-doctor studio and backbone-training mentees passed and signed off "
        "by the mentor, counted at the programme's institution.",
        "programme": "two_improvements",
        "unit": "milestones",
        "factor": 1,
        "numerator": {"source": "capability", "measure": "sum:milestones_reached"},
    },
]


def _positions() -> dict[str, int]:
    """Each shipped indicator's place: tens in list order, except those added later, which carry
    their own ``position`` so that the first release's indicators keep theirs in every database."""
    out, counter = {}, 0
    for spec in DEFAULT_INDICATORS:
        if "position" in spec:
            out[spec["code"]] = int(spec["position"])
        else:
            counter += 10
            out[spec["code"]] = counter
    return out


def load_defaults(indicator_model: Any, codes: list[str] | None = None) -> int:
    """Create the shipped indicators that do not exist yet (by code), all of them or only ``codes``;
    returns how many were made. Existing ones, edited or not, are left alone.

    Takes the model class so that a data migration can pass its historical model."""
    existing = set(indicator_model.objects.values_list("code", flat=True))
    positions = _positions()
    made = 0
    for spec in DEFAULT_INDICATORS:
        if spec["code"] in existing or (codes is not None and spec["code"] not in codes):
            continue
        indicator_model.objects.create(
            position=positions[spec["code"]],
            direction=spec.get("direction", "higher_better"),
            target=spec.get("target"),
            denominator=spec.get("denominator"),
            **{k: v for k, v in spec.items() if k not in ("direction", "target", "denominator", "position")},
        )
        made += 1
    return made
