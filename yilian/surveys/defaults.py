"""The built-in questionnaires (consortium empty), used wherever a consortium has not published
its own. Short on purpose: about ten items, answered in about a minute. The dimensions follow the
national outpatient, inpatient and staff satisfaction surveys; each version has exactly one
free-text item.

This module holds plain data and a creator that takes the model classes, so the data migration
can call it with the historical models.
"""

from __future__ import annotations

from typing import Any

Item = dict[str, Any]


def _likert(key: str, dimension: str, zh: str, en: str, *, required: bool = True) -> Item:
    return {"key": key, "dimension": dimension, "type": "likert", "zh": zh, "en": en, "required": required}


def _choice(key: str, dimension: str, type_: str, zh: str, en: str, options: list[tuple[str, str, str]]) -> Item:
    return {
        "key": key,
        "dimension": dimension,
        "type": type_,
        "zh": zh,
        "en": en,
        "options": [{"key": k, "zh": ozh, "en": oen} for k, ozh, oen in options],
        "required": False,
    }


def _comment(key: str) -> Item:
    return {
        "key": key,
        "dimension": "comment",
        "type": "text",
        "zh": "您还有什么想对我们说的吗？（选填，请勿填写姓名、电话）",
        "en": "Anything else you would like to tell us? (Optional; please do not write names or phone numbers.)",
        "required": False,
    }


_IMPROVE_OPTIONS = [
    ("a", "挂号、缴费、取药", "Registration, payment, pharmacy"),
    ("b", "等候时间", "Waiting time"),
    ("c", "医生的解释", "Doctors' explanations"),
    ("d", "护理服务", "Nursing"),
    ("e", "环境、卫生、指示牌", "Environment, cleanliness, signs"),
    ("f", "费用", "Costs"),
]

OUTPATIENT: list[Item] = [
    _likert(
        "q1", "access", "挂号、缴费、取药等手续方便吗？", "Were registration, payment and collecting medicine easy?"
    ),
    _likert("q2", "waiting", "您对这次等候看病的时间满意吗？", "Were you satisfied with how long you waited?"),
    _likert(
        "q3",
        "communication",
        "医生是否耐心听您说，并把病情和治疗讲清楚？",
        "Did the doctor listen, and explain your illness and treatment clearly?",
    ),
    _likert("q4", "nursing", "护士和其他工作人员的态度好吗？", "Were the nurses and other staff kind and helpful?"),
    _likert(
        "q5",
        "environment",
        "候诊区和卫生间干净吗？指示牌清楚吗？",
        "Were the waiting area and toilets clean, and the signs clear?",
    ),
    _likert("q6", "costs", "您觉得费用清楚、合理吗？", "Were the costs clear and reasonable?"),
    _likert("q7", "overall", "总的来说，您对这次看病满意吗？", "Overall, how satisfied are you with this visit?"),
    _likert(
        "q8",
        "recommend",
        "您愿意向亲友推荐这家医院吗？",
        "Would you recommend this hospital to family and friends?",
    ),
    _choice(
        "q9",
        "access",
        "single",
        "您这次是怎么挂号的？",
        "How did you register for this visit?",
        [
            ("a", "在窗口或自助机", "At the counter or a kiosk"),
            ("b", "手机或电话预约", "By phone or app"),
            ("c", "基层医生转诊预约", "Booked by my local doctor"),
        ],
    ),
    _comment("q10"),
]

INPATIENT: list[Item] = [
    _likert("q1", "access", "办理入院、出院手续方便吗？", "Were admission and discharge easy to arrange?"),
    _likert("q2", "waiting", "等床位、等检查的时间能接受吗？", "Was the wait for a bed and for tests acceptable?"),
    _likert(
        "q3",
        "communication",
        "医生是否把病情、治疗和出院后注意事项讲清楚？",
        "Did the doctors explain your illness, treatment and care after discharge clearly?",
    ),
    _likert(
        "q4",
        "nursing",
        "护士是否及时回应您的呼叫，照顾周到？",
        "Did the nurses come quickly when called and look after you well?",
    ),
    _likert(
        "q5",
        "environment",
        "病房安静、干净吗？饭菜满意吗？",
        "Was the ward quiet and clean, and the food satisfactory?",
    ),
    _likert("q6", "costs", "费用清单清楚、合理吗？", "Was the bill clear and reasonable?"),
    _likert("q7", "overall", "总的来说，您对这次住院满意吗？", "Overall, how satisfied are you with this stay?"),
    _likert(
        "q8",
        "recommend",
        "您愿意向亲友推荐这家医院吗？",
        "Would you recommend this hospital to family and friends?",
    ),
    _choice(
        "q9",
        "overall",
        "multiple",
        "您觉得哪些方面最需要改进？（可多选）",
        "What most needs to improve? (Choose any)",
        _IMPROVE_OPTIONS,
    ),
    _comment("q10"),
]

REFERRED: list[Item] = [
    _likert(
        "q1",
        "access",
        "转诊手续方便吗？到了以后是否不用重新排队挂号？",
        "Was the referral easy to arrange, without queueing again on arrival?",
    ),
    _likert("q2", "waiting", "从转诊到看上病的时间能接受吗？", "Was the time from referral to being seen acceptable?"),
    _likert(
        "q3",
        "communication",
        "接诊医生是否已经了解您的病情，不用您从头再讲？",
        "Did the receiving doctor already know your history, so you did not have to repeat it?",
    ),
    _likert(
        "q4",
        "communication",
        "医生是否讲清楚了回到当地以后怎么治疗、怎么复查？",
        "Did the doctors explain the treatment and check-ups back home clearly?",
    ),
    _likert("q5", "nursing", "护士和其他工作人员的态度好吗？", "Were the nurses and other staff kind and helpful?"),
    _likert(
        "q6",
        "costs",
        "有没有避免不必要的重复检查和费用？",
        "Were unnecessary repeat tests and costs avoided?",
    ),
    _likert("q7", "overall", "总的来说，您对这次转诊满意吗？", "Overall, how satisfied are you with this referral?"),
    _likert(
        "q8",
        "recommend",
        "您愿意推荐亲友通过医联体转诊吗？",
        "Would you recommend a referral through the consortium to family and friends?",
    ),
    _comment("q9"),
]

STAFF: list[Item] = [
    _choice(
        "q1",
        "collaboration",
        "single",
        "您是：",
        "You are:",
        [
            ("a", "本院职工", "Staff of this hospital"),
            ("b", "下沉（驻点）专家", "A stationed expert"),
        ],
    ),
    _likert(
        "q2",
        "collaboration",
        "下沉专家和本院人员的协作顺畅吗？",
        "Do the stationed experts and the hospital's staff work well together?",
    ),
    _likert(
        "q3",
        "training",
        "带教、查房和培训对提高本院能力有帮助吗？",
        "Do the teaching, ward rounds and training help the hospital's skills grow?",
    ),
    _likert(
        "q4",
        "communication",
        "转诊和远程会诊的沟通顺畅吗？",
        "Is communication about referrals and teleconsultations smooth?",
    ),
    _likert(
        "q5",
        "environment",
        "工作条件和设备能满足需要吗？",
        "Do the working conditions and equipment meet your needs?",
    ),
    _likert(
        "q6", "overall", "总的来说，您对医联体合作满意吗？", "Overall, how satisfied are you with the collaboration?"
    ),
    _likert(
        "q7",
        "recommend",
        "您愿意推荐同事参与医联体工作吗？",
        "Would you recommend colleagues to take part in the consortium's work?",
    ),
    _comment("q8"),
]

# kind -> (name_zh, name_en, items of version 1)
DEFAULT_QUESTIONNAIRES: dict[str, tuple[str, str, list[Item]]] = {
    "outpatient": ("门诊患者满意度调查", "Outpatient satisfaction survey", OUTPATIENT),
    "inpatient": ("住院患者满意度调查", "Inpatient satisfaction survey", INPATIENT),
    "referred": ("转诊患者满意度调查", "Referred-patient satisfaction survey", REFERRED),
    "staff": ("医务人员满意度调查", "Staff satisfaction survey", STAFF),
}


def create_default_questionnaires(questionnaire_model: Any, version_model: Any, now: Any) -> int:
    """Create the built-in questionnaires that do not exist yet, each with version 1.

    Takes the model classes (the migration passes its historical ones). Returns how many were created.
    """
    created = 0
    for kind, (name_zh, name_en, items) in DEFAULT_QUESTIONNAIRES.items():
        questionnaire, was_created = questionnaire_model.objects.get_or_create(
            consortium=None, kind=kind, defaults={"name_zh": name_zh, "name_en": name_en}
        )
        if not version_model.objects.filter(questionnaire=questionnaire).exists():
            version_model.objects.create(questionnaire=questionnaire, number=1, items=items, published_at=now)
        created += int(was_created)
    return created
