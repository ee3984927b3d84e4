"""The lists citizens choose from (issue 16), as seeded by the migration: children's age
groups, languages, and a small sample of areas marked as such (the city replaces it with its
own list in the admin). Pure data (no ORM)."""

from __future__ import annotations

from typing import Any

AGE_GROUPS: tuple[tuple[str, str], ...] = (
    ("pregnant", "妊娠中"),
    ("age-0-2", "0〜2歳"),
    ("age-3-5", "3〜5歳"),
    ("elementary", "小学生"),
    ("junior-high", "中学生"),
)

# (code, label for staff, label in the language itself)
LANGUAGES: tuple[tuple[str, str, str], ...] = (
    ("ja", "日本語", "日本語"),
    ("easy-ja", "やさしい日本語", "やさしい にほんご"),
    ("en", "英語", "English"),
    ("zh", "中国語", "中文"),
    ("ko", "韓国語", "한국어"),
    ("vi", "ベトナム語", "Tiếng Việt"),
    ("pt", "ポルトガル語", "Português"),
)

# A sample for the demo, not the city's official division: is_sample=True.
SAMPLE_AREAS: tuple[tuple[str, str], ...] = (
    ("sample-chuo", "中央地域（サンプル）"),
    ("sample-hokubu", "北部地域（サンプル）"),
    ("sample-nanbu", "南部地域（サンプル）"),
    ("sample-seibu", "西部地域（サンプル）"),
    ("sample-tobu", "東部地域（サンプル）"),
    ("sample-shonan", "沼南地域（サンプル）"),
)

ADMIN_AUDIENCE_PERMISSIONS: tuple[str, ...] = tuple(
    f"{verb}_{model}"
    for model in ("area", "agegroup", "language")
    for verb in ("view", "add", "change", "delete")
)


def seed_audiences(apps: Any) -> None:
    """Age groups, languages and the sample areas, unless there; the 管理者 group may edit
    the three lists. Works with historical models (migrations) and ``django.apps.apps``."""
    from django.contrib.auth.management import create_permissions

    from .roles import ADMIN

    app_config = apps.get_app_config("broadcasts")
    had_models = getattr(app_config, "models_module", None)
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = had_models
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name=ADMIN).first()
    if group is not None:
        group.permissions.add(
            *Permission.objects.filter(
                content_type__app_label="broadcasts", codename__in=ADMIN_AUDIENCE_PERMISSIONS
            )
        )
    AgeGroup = apps.get_model("broadcasts", "AgeGroup")
    for order, (code, label) in enumerate(AGE_GROUPS, start=1):
        AgeGroup.objects.get_or_create(code=code, defaults={"label": label, "sort_order": order})
    Language = apps.get_model("broadcasts", "Language")
    for order, (code, label, native) in enumerate(LANGUAGES, start=1):
        Language.objects.get_or_create(
            code=code, defaults={"label": label, "native_label": native, "sort_order": order}
        )
    Area = apps.get_model("broadcasts", "Area")
    if not Area.objects.exists():
        for order, (code, label) in enumerate(SAMPLE_AREAS, start=1):
            Area.objects.create(code=code, label=label, sort_order=order, is_sample=True)


# The first line of a correction (訂正) or cancellation (取消) in each seeded language; a
# correction's version keeps the placeholder until staff write the corrected content in it.
FOLLOW_UP_TEXTS: dict[str, dict[str, str]] = {
    "easy-ja": {
        "correction": "【なおします】まえに おくった おしらせに まちがいが ありました。",
        "cancellation": "【とりけし】まえに おくった おしらせは まちがいでした。"
        "この おしらせは とりけします。ごめんなさい。",
    },
    "en": {
        "correction": "[Correction] The message we sent earlier contained an error.",
        "cancellation": "[Cancelled] The message we sent earlier was sent in error. "
        "Please disregard it. We apologise.",
    },
    "zh": {
        "correction": "【更正】之前发送的通知内容有误。",
        "cancellation": "【撤销】之前发送的通知有误，现予以撤销。非常抱歉。",
    },
    "ko": {
        "correction": "【정정】앞서 보내드린 안내에 오류가 있었습니다.",
        "cancellation": "【취소】앞서 보내드린 안내는 잘못 발송되었습니다. 이 안내를 취소합니다. 죄송합니다.",
    },
    "vi": {
        "correction": "[Đính chính] Thông báo chúng tôi gửi trước đó có sai sót.",
        "cancellation": "[Hủy] Thông báo chúng tôi gửi trước đó bị gửi nhầm. "
        "Xin vui lòng bỏ qua. Chúng tôi xin lỗi.",
    },
    "pt": {
        "correction": "[Correção] A mensagem que enviamos anteriormente continha um erro.",
        "cancellation": "[Cancelamento] A mensagem que enviamos anteriormente foi enviada por "
        "engano. Por favor, desconsidere-a. Pedimos desculpas.",
    },
}
