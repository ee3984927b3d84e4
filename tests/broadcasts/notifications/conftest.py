"""Fixtures for staff alerts: linked LINE accounts in the sandbox, staff with e-mail."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from broadcasts import roles, services
from broadcasts.models import Broadcast, Category, User
from broadcasts.services import notifications
from line_sandbox.state import synthetic_user_id
from line_sandbox.webhook import prepare_events
from tests.broadcasts.test_webhook import sign
from tests.fixtures.users import make_user

JST = dt.timezone(dt.timedelta(hours=9))
#: a Sunday night: emergencies come when nobody is at the office
NIGHT = dt.datetime(2026, 11, 29, 23, 0, tzinfo=JST)
WEBHOOK = "/line/webhook/"


def staff(username: str, role: str, *, email: bool = True) -> User:
    user = make_user(username, role)
    if email:
        user.email = f"{username}@city.kashiwa.lg.jp"
        user.save(update_fields=["email"])
    return user


def link_line(sandbox, user: User, n: int, now: dt.datetime = NIGHT) -> str:
    """``user`` links the LINE account ``synthetic_user_id(n)`` (a friend in the sandbox)."""
    line_user_id = synthetic_user_id(n)
    sandbox.state.add_followers(user_ids=[line_user_id])
    code = notifications.line_link_code_issue(user=user, now=now)
    reply = notifications.line_link_message(
        line_user_id=line_user_id, text=f"職員連携 {code}", now=now
    )
    assert reply and "連携しました" in reply[0]["text"]
    return line_user_id


def submit(
    author: User, *, drill: bool = False, emergency: bool = True, title: str = "避難指示（利根川）"
) -> Broadcast:
    broadcast = services.broadcast_create(
        author=author,
        title=title,
        categories=[Category.objects.get(code="disaster_crime" if emergency else "events")],
        messages=[
            {"type": "text", "text": "【柏市】利根川の水位上昇により、避難指示を発令しました。"}
        ],
        priority=Broadcast.Priority.EMERGENCY if emergency else Broadcast.Priority.NORMAL,
        emergency_reason="利根川が氾濫危険水位を超過" if emergency else "",
        kind=Broadcast.Kind.DRILL if drill else Broadcast.Kind.LIVE,
    )
    return services.broadcast_submit(broadcast=broadcast, actor=author)


@pytest.fixture
def night(time_machine):
    time_machine.move_to(NIGHT, tick=False)
    return NIGHT


@pytest.fixture
def team(db):
    """A drafter, two 承認者 (one without LINE), a 広報担当 and a 管理者, all with e-mail."""
    return {
        "drafter": staff("drafter", roles.DRAFTER),
        "boss": staff("boss", roles.SUPERVISOR),
        "deputy": staff("deputy", roles.SUPERVISOR),
        "reviewer": staff("reviewer", roles.REVIEWER),
        "admin": staff("admin", roles.ADMIN),
    }


@pytest.fixture
def eager(settings):
    from kashiwa.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture
def post_webhook(client, line_sandbox, django_capture_on_commit_callbacks):
    """POST events to the real webhook, signed as LINE signs them; on-commit callbacks run."""

    def _post(events):
        events = prepare_events(line_sandbox.state, events)
        payload = {"destination": line_sandbox.state.bot_user_id, "events": events}
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                WEBHOOK,
                data=body,
                content_type="application/json",
                HTTP_X_LINE_SIGNATURE=sign(body),
            )
        assert response.status_code == 200
        return response

    return _post
