"""Policy 6 (禁止事項) as data: the fifteen items in the policy's own words, the rules that flag
citizens' messages at first, and the word lists the pre-send checklist starts with.

Pure data (no ORM) plus the seed function used by the data migration and by tests that flush
the database. Admins edit the rules and word lists afterwards (Django admin)."""

from __future__ import annotations

from typing import Any

#: (number, short label for staff screens, the policy's wording)
ITEMS: tuple[tuple[int, str, str], ...] = (
    (1, "法令違反", "法令等に違反するもの又は違反する恐れがあるもの"),
    (2, "誹謗中傷", "特定の個人、団体等を誹謗中傷するもの"),
    (3, "政治・宗教活動", "政治、宗教活動を目的とするもの"),
    (
        4,
        "知的所有権の侵害",
        "著作権、商標権、肖像権その他の市又は第三者の知的所有権を侵害するもの",
    ),
    (5, "広告・営利目的", "広告、宣伝、勧誘、営業活動その他営利を目的とするもの"),
    (6, "差別", "人種、思想、信条等の差別又は差別を助長させるもの"),
    (7, "公序良俗違反", "公の秩序又は善良の風俗に反するもの"),
    (8, "虚偽・うわさ", "虚偽や事実と異なる内容及び単なるうわさやうわさを助長させるもの"),
    (
        9,
        "プライバシーの侵害",
        "本人の承諾なく個人情報や特定、開示又は漏えいする等プライバシーを侵害するもの",
    ),
    (10, "有害なプログラム", "有害なプログラム等"),
    (11, "わいせつ・不適切", "わいせつな表現等を含む不適切なもの"),
    (12, "なりすまし", "他のアカウント等の第三者になりすますもの"),
    (13, "推奨・助長", "前各号に掲げるいずれかに該当する内容を推奨し又は助長するもの"),
    (
        14,
        "不適切な情報・リンク",
        "その他市が不適切と判断した情報及びこれらの内容を含むホームページ等へのリンク",
    ),
    (15, "LINE 利用規約違反", "LINE 株式会社が決める利用規約に反するもの"),
)

# Personal data (policy 6(9), policy 10): phone numbers, e-mail addresses, 12-digit numbers
# shaped like a マイナンバー, postal addresses with a 丁目/番地. Also used to mask lists.
PHONE_PATTERN = r"(?<![\d-])0\d{1,4}-\d{1,4}-\d{3,4}(?![\d-])|(?<!\d)0\d{9,10}(?!\d)"
EMAIL_PATTERN = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"
MY_NUMBER_PATTERN = r"(?<![\d-])(?:\d{12}|\d{4}[- ]\d{4}[- ]\d{4})(?![\d-])"
ADDRESS_PATTERN = r"\d+丁目\d+(?:番地?|-)\d+(?:号)?"
PERSONAL_DATA_PATTERNS = (PHONE_PATTERN, EMAIL_PATTERN, MY_NUMBER_PATTERN, ADDRESS_PATTERN)

CITY_DOMAINS = "city.kashiwa.lg.jp\nkashiwa.lg.jp\nline.me"

#: rules for citizens' messages: (name, kind, item number, patterns)
SEED_RULES: tuple[tuple[str, str, int, str], ...] = (
    ("誹謗中傷・脅迫の語句", "keyword", 2, "死ね\n殺す\nころす\n無能\nクズ\n税金泥棒\nバカ\n馬鹿"),
    (
        "選挙・政治活動の語句",
        "keyword",
        3,
        "投票してください\n投票をお願い\n清き一票\n後援会\n党に入",
    ),
    ("宗教の勧誘の語句", "keyword", 3, "入信\n信者になり\n布教\nお祈りしませんか"),
    (
        "広告・勧誘の語句",
        "keyword",
        5,
        "副業\n稼げる\n儲かる\n限定価格\n今だけ無料\nクーポン\nご購入はこちら\n友だち追加して",
    ),
    ("差別の語句", "keyword", 6, "外国人は出て行け\n出ていけ\n差別して当然"),
    ("わいせつな語句", "keyword", 11, "出会い系\nアダルト\nエロ"),
    ("なりすましの語句", "keyword", 12, "柏市役所の公式\n市長です\n市の職員です"),
    ("許可ドメイン以外へのリンク", "url", 14, CITY_DOMAINS),
    (
        "個人情報（電話番号・メール・マイナンバー・住所）",
        "pattern",
        9,
        "\n".join(PERSONAL_DATA_PATTERNS),
    ),
)

#: word lists for the city's own drafts: (name, item number, words)
SEED_DRAFT_WORD_LISTS: tuple[tuple[str, int, str], ...] = (
    (
        "選挙・政治活動",
        3,
        "投票してください\n投票をお願い\n清き一票\n支持をお願い\nご支援をお願い\n"
        "後援会\n自民党\n立憲民主党\n公明党\n日本維新の会\n共産党\n国民民主党\nれいわ新選組\n"
        "参政党\n社民党\n党の政策\n党員\n候補者を応援\n当選",
    ),
    (
        "宗教の勧誘・宣伝",
        3,
        "入信\n布教\n信者になり\n信仰しましょう\n教団\nご利益\nお祈りしませんか\n献金",
    ),
    (
        "民間事業者の商業的宣伝",
        5,
        "セール\n大売り出し\n割引\n%オフ\n％オフ\n限定価格\nご購入はこちら\nお買い得\n"
        "特売\nキャンペーン価格\n今だけ\n当店\n弊社",
    ),
    (
        "差別・誹謗中傷の表現",
        2,
        "無能\nクズ\nバカ\n馬鹿\n税金泥棒\n詐欺師\n犯罪者予備軍\n外国人は出て行け\n"
        "障害者のくせに\n女のくせに",
    ),
)

#: codenames the 管理者 group gets: it edits rules, word lists, settings and policy versions
ADMIN_PERMISSIONS: tuple[str, ...] = (
    "view_citizenmessage",
    "moderate_citizenmessage",
    "view_moderationmeasure",
    "view_replysuppression",
    "view_prohibiteditem",
    *(
        f"{verb}_{model}"
        for model in ("moderationrule", "draftriskwordlist", "policyversion")
        for verb in ("view", "add", "change", "delete")
    ),
    "view_moderationsettings",
    "change_moderationsettings",
)
#: codenames 広報担当 (and so 承認者) get: the moderation inbox
REVIEWER_PERMISSIONS: tuple[str, ...] = (
    "view_citizenmessage",
    "moderate_citizenmessage",
    "view_prohibiteditem",
)


def seed_moderation_policy(apps: Any) -> None:
    """The fifteen items, the settings row, the rules, the word lists, the first policy
    version and the groups' permissions, unless already there. Works with historical models
    (migrations) and with ``django.apps.apps`` (tests)."""
    import datetime as dt

    from django.contrib.auth.management import create_permissions

    from ..roles import ADMIN, REVIEWER, SUPERVISOR
    from . import POLICY_FILE

    app_config = apps.get_app_config("broadcasts")
    had_models = getattr(app_config, "models_module", None)
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = had_models
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in (
        (ADMIN, ADMIN_PERMISSIONS),
        (REVIEWER, REVIEWER_PERMISSIONS),
        (SUPERVISOR, REVIEWER_PERMISSIONS),
    ):
        group = Group.objects.filter(name=group_name).first()
        if group is not None:
            group.permissions.add(
                *Permission.objects.filter(
                    content_type__app_label="broadcasts", codename__in=codenames
                )
            )

    ProhibitedItem = apps.get_model("broadcasts", "ProhibitedItem")
    items = {}
    for number, label, text in ITEMS:
        items[number], _ = ProhibitedItem.objects.get_or_create(
            number=number, defaults={"label": label, "text": text}
        )
    apps.get_model("broadcasts", "ModerationSettings").objects.get_or_create(pk=1)
    ModerationRule = apps.get_model("broadcasts", "ModerationRule")
    if not ModerationRule.objects.exists():
        for name, kind, number, patterns in SEED_RULES:
            ModerationRule.objects.create(
                name=name, kind=kind, item=items[number], patterns=patterns
            )
    DraftRiskWordList = apps.get_model("broadcasts", "DraftRiskWordList")
    if not DraftRiskWordList.objects.exists():
        for name, number, words in SEED_DRAFT_WORD_LISTS:
            DraftRiskWordList.objects.create(name=name, item=items[number], words=words)
    PolicyVersion = apps.get_model("broadcasts", "PolicyVersion")
    if not PolicyVersion.objects.exists():
        PolicyVersion.objects.create(
            body=POLICY_FILE.read_text(encoding="utf-8").strip(),
            enacted_on=dt.date(2021, 8, 15),
            amended_on=None,
            effective_on=dt.date(2023, 3, 17),
            summary="令和3年8月15日に制定し、令和5年3月17日から施行している現行のポリシー",
            status="published",
        )
