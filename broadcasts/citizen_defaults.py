"""What the citizen side starts with: greeting, default reply, keyword rules, rich menus.

Pure data (no ORM): used by the seed migration, by the services as fallbacks when a row is
missing, and by tests that flush the database."""

from __future__ import annotations

from typing import Any

CITY_HOMEPAGE = "https://www.city.kashiwa.lg.jp/"
CITY_PHONE = "04-7167-1111"

# Policy 5(2): automatic responses only; say so, and say where to ask instead.
NO_INDIVIDUAL_ANSWERS = (
    "このアカウントでは、自動応答を除き、個別のご質問・ご相談にはお答えしていません。\n"
    f"お問い合わせは市ホームページ（{CITY_HOMEPAGE}）の各担当課の窓口、"
    f"または柏市役所 代表電話 {CITY_PHONE}（開庁日 8:30〜17:15）へお願いします。"
)

# The greeting as it was before it linked to the policy (the migration that added the link
# updates a greeting still equal to this; one an admin has changed is left alone).
GREETING_TEXT_WITHOUT_POLICY = (
    "柏市役所の LINE 公式アカウントを友だち追加いただき、ありがとうございます。\n"
    "防災・防犯、子育て・教育、イベントなど、柏市からのお知らせをお届けします。\n\n"
    "はじめは全てのカテゴリのお知らせを受け取る設定です。"
    "メニューの「受信設定」をタップするか「受信設定」と送信すると、"
    "受け取るカテゴリを選べます。\n\n" + NO_INDIVIDUAL_ANSWERS
)


def policy_url() -> str:
    """The public policy page (policy 7), on the address citizens reach this app at."""
    from django.conf import settings

    return settings.PUBLIC_BASE_URL.rstrip("/") + "/public/policy/"


def greeting_text(url: str) -> str:
    """The greeting, linking to the operating policy (policy 2: using the account means
    agreeing to it; policy 7: it is published)."""
    return (
        GREETING_TEXT_WITHOUT_POLICY
        + f"\n\nご利用の前に、柏市公式 LINE アカウント運用ポリシーをご確認ください。\n{url}"
    )


def __getattr__(name: str) -> str:
    # GREETING_TEXT depends on a setting: computed when used, not at import.
    if name == "GREETING_TEXT":
        return greeting_text(policy_url())
    raise AttributeError(name)


DEFAULT_REPLY_TEXT = (
    "メッセージありがとうございます。\n"
    + NO_INDIVIDUAL_ANSWERS
    + "\n\n「ごみ」「休日当番医」「受信設定」などのキーワードを送信すると、ご案内を自動でお返しします。"
)

SUBSCRIPTION_KEYWORD = "受信設定"

#: codenames the 管理者 group gets on the citizen-side models
ADMIN_CITIZEN_PERMISSIONS: tuple[str, ...] = (
    *(
        f"{verb}_{model}"
        for model in ("autoreplyrule", "standardreply", "richmenu", "publicnotice")
        for verb in ("view", "add", "change", "delete")
    ),
    "view_webhookevent",
)


def text(body: str) -> dict[str, Any]:
    return {"type": "text", "text": body}


SEED_RULES: tuple[dict[str, Any], ...] = (
    {
        "name": "ごみの出し方",
        "match_type": "contains",
        "keywords": "ごみ\nゴミ\n粗大\n資源回収",
        "priority": 10,
        "messages": [
            text(
                "ごみの分け方・出し方、収集日、粗大ごみの申し込みは、"
                f"市ホームページの「ごみ・リサイクル」をご覧ください。\n{CITY_HOMEPAGE}"
            )
        ],
    },
    {
        "name": "休日当番医",
        "match_type": "contains",
        "keywords": "当番医\n休日診療\n休日当番\n急病",
        "priority": 20,
        "messages": [
            text(
                "休日・夜間に受診できる医療機関（休日当番医）は、市ホームページと広報かしわで"
                f"お知らせしています。\n{CITY_HOMEPAGE}\n\n"
                "受診を迷うときは、千葉県救急安心電話相談 #7009、"
                "こども急病電話相談 #8000 をご利用ください。\n"
                "命に関わる緊急時は迷わず 119 番へ。"
            )
        ],
    },
    {
        "name": "受信設定のご案内",
        "match_type": "contains",
        "keywords": "配信停止\n通知を止め\n届かない\nカテゴリ",
        "priority": 30,
        "messages": [
            {
                "type": "text",
                "text": "受け取るお知らせのカテゴリは「受信設定」で選べます。"
                "下のボタンをタップするか、「受信設定」と送信してください。",
                "quickReply": {
                    "items": [
                        {
                            "type": "action",
                            "action": {
                                "type": "postback",
                                "label": "受信設定",
                                "data": "action=show_subscriptions",
                                "displayText": "受信設定",
                            },
                        }
                    ]
                },
            }
        ],
    },
    {
        "name": "防災・避難",
        "match_type": "contains",
        "keywords": "避難\n災害\n防災\n地震\n台風",
        "priority": 40,
        "messages": [
            text(
                "避難情報など防災に関する情報は、市ホームページ、防災行政無線、"
                "このアカウントの「防災・防犯」「緊急情報」カテゴリでお知らせします。\n"
                f"{CITY_HOMEPAGE}\n命に関わる緊急時は 119 番・110 番へ。"
            )
        ],
    },
)


def _area(x: int, width: int, height: int, action: dict[str, Any]) -> dict[str, Any]:
    return {"bounds": {"x": x, "y": 0, "width": width, "height": height}, "action": action}


def _uri(label: str, uri: str) -> dict[str, Any]:
    return {"type": "uri", "label": label, "uri": uri}


SUBSCRIPTIONS_POSTBACK = {
    "type": "postback",
    "label": "受信設定",
    "data": "action=show_subscriptions",
    "displayText": "受信設定",
}

# Policy 4(2): 各種申請, 各種予約, the city website; and 受信設定. Four columns of 625 px.
# The URLs point at the city website; admins set the exact pages in the admin screen.
DEFAULT_MENU: dict[str, Any] = {
    "name": "通常時メニュー",
    "kind": "default",
    "size": "2500x843",
    "chat_bar_text": "メニュー",
    "areas": [
        _area(0, 625, 843, _uri("各種申請", CITY_HOMEPAGE)),
        _area(625, 625, 843, _uri("各種予約", CITY_HOMEPAGE)),
        _area(1250, 625, 843, _uri("市ホームページ", CITY_HOMEPAGE)),
        _area(1875, 625, 843, dict(SUBSCRIPTIONS_POSTBACK)),
    ],
    "colours": [(26, 79, 156), (22, 160, 133), (41, 128, 185), (230, 126, 34)],
}

DISASTER_MENU: dict[str, Any] = {
    "name": "災害時メニュー",
    "kind": "disaster",
    "size": "2500x843",
    "chat_bar_text": "災害時メニュー",
    "areas": [
        _area(0, 625, 843, _uri("災害・避難情報", CITY_HOMEPAGE)),
        _area(625, 625, 843, _uri("避難所", CITY_HOMEPAGE)),
        _area(1250, 625, 843, _uri("市ホームページ", CITY_HOMEPAGE)),
        _area(1875, 625, 843, dict(SUBSCRIPTIONS_POSTBACK)),
    ],
    "colours": [(176, 0, 32), (211, 84, 0), (44, 62, 80), (230, 126, 34)],
}


def seed_citizen_side(apps: Any) -> None:
    """Greeting, default reply, keyword rules and the two rich menus, unless already there.

    Works with historical models (migrations) and with ``django.apps.apps`` (tests)."""
    from django.contrib.auth.management import create_permissions

    from .images import png_panels
    from .roles import ADMIN

    # The admin group (DX推進課) manages the citizen side: make sure the new models'
    # permissions exist, then add them to the group.
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
                content_type__app_label="broadcasts", codename__in=ADMIN_CITIZEN_PERMISSIONS
            )
        )

    StandardReply = apps.get_model("broadcasts", "StandardReply")
    for kind, body in (
        ("greeting", greeting_text(policy_url())),
        ("default", DEFAULT_REPLY_TEXT),
    ):
        StandardReply.objects.get_or_create(kind=kind, defaults={"messages": [text(body)]})

    AutoReplyRule = apps.get_model("broadcasts", "AutoReplyRule")
    for rule in SEED_RULES:
        AutoReplyRule.objects.get_or_create(name=rule["name"], defaults=dict(rule))

    RichMenu = apps.get_model("broadcasts", "RichMenu")
    for menu in (DEFAULT_MENU, DISASTER_MENU):
        if RichMenu.objects.filter(kind=menu["kind"]).exists():
            continue
        width, height = (int(v) for v in menu["size"].split("x"))
        RichMenu.objects.create(
            name=menu["name"],
            kind=menu["kind"],
            size=menu["size"],
            chat_bar_text=menu["chat_bar_text"],
            areas=menu["areas"],
            image=png_panels(width, height, menu["colours"]),
            image_content_type="image/png",
        )
