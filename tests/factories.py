"""factory-boy factories for the broadcasts app.

Categories and role groups are seeded by data migrations: factories look them up rather than
creating new ones. ``BroadcastFactory`` writes rows directly (no service, no audit row); use
the services when a test is about the lifecycle itself.

    broadcast = BroadcastFactory(author=drafter, categories=["childcare_education"])
    BroadcastFactory(status=Broadcast.Status.SENT, sent_at=timezone.now())
"""

from __future__ import annotations

import factory
from django.contrib.auth.models import Group
from django.utils import timezone

from broadcasts import roles
from broadcasts.models import (
    AllowedDomain,
    Broadcast,
    BroadcastEvent,
    Category,
    Delivery,
    Division,
    Follower,
    MessageTemplate,
    User,
)
from broadcasts.models.bits import mask_of
from tests.fixtures.users import PASSWORD


def text_message(text: str = "柏市からのお知らせです。") -> dict:
    return {"type": "text", "text": text}


def image_message(
    url: str = "https://www.city.kashiwa.lg.jp/images/photo.jpg",
    preview: str = "https://www.city.kashiwa.lg.jp/images/photo_s.jpg",
) -> dict:
    return {"type": "image", "originalContentUrl": url, "previewImageUrl": preview}


def sticker_message(package_id: str = "446", sticker_id: str = "1988") -> dict:
    return {"type": "sticker", "packageId": package_id, "stickerId": sticker_id}


def card_message(
    *,
    title: str = "子育て支援のご案内",
    text: str = "詳しくはホームページをご覧ください。",
    actions: list[tuple[str, str]] | None = None,
    thumbnail: str = "",
) -> dict:
    actions = actions or [("ホームページ", "https://www.city.kashiwa.lg.jp/kosodate/index.html")]
    template: dict = {
        "type": "buttons",
        "text": text,
        "actions": [{"type": "uri", "label": label, "uri": uri} for label, uri in actions],
    }
    if title:
        template["title"] = title
    if thumbnail:
        template["thumbnailImageUrl"] = thumbnail
    return {"type": "template", "altText": title or text, "template": template}


def _set_categories(obj, create: bool, extracted, **kwargs) -> None:
    """``categories=["childcare_education", ...]`` (codes) or Category objects."""
    if not create:
        return
    codes = extracted if extracted is not None else ["childcare_education"]
    categories = [c if isinstance(c, Category) else Category.objects.get(code=c) for c in codes]
    obj.categories.set(categories)


class DivisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Division
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"テスト課{n}")


class UserFactory(factory.django.DjangoModelFactory):
    """A staff user; ``role=roles.REVIEWER`` (default 起案者) puts them in that group."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    last_name = factory.Sequence(lambda n: f"職員{n}")
    division = factory.SubFactory(DivisionFactory)
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def role(obj, create, extracted, **kwargs):
        if not create:
            return
        role = extracted if extracted is not None else roles.DRAFTER
        if role:
            obj.groups.add(Group.objects.get(name=role))
        obj.save()


class FollowerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Follower
        skip_postgeneration_save = True

    line_user_id = factory.Sequence(lambda n: f"U{n:032x}")
    is_staff_test_recipient = False

    @factory.post_generation
    def categories(obj, create, extracted, **kwargs):
        if create and extracted:
            categories = [
                c if isinstance(c, Category) else Category.objects.get(code=c) for c in extracted
            ]
            obj.categories.set(categories)
            # the follower row's own copy, as the services keep it (models/bits.py)
            obj.category_bits = mask_of(c.bit for c in categories)
            obj.save(update_fields=["category_bits"])


class BroadcastFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Broadcast
        skip_postgeneration_save = True

    title = factory.Sequence(lambda n: f"テスト配信 {n}")
    messages = factory.LazyFunction(lambda: [text_message()])
    author = factory.SubFactory(UserFactory)
    division = factory.LazyAttribute(lambda o: o.author.division)
    audience = Broadcast.Audience.ALL
    status = Broadcast.Status.DRAFT
    categories = factory.PostGeneration(_set_categories)

    @factory.post_generation
    def hashed(obj, create, extracted, **kwargs):
        """Keep ``content_hash`` what the services would store (after categories are set)."""
        if not create:
            return
        from broadcasts.services import compute_hash

        obj.content_hash = compute_hash(obj)
        obj.save(update_fields=["content_hash"])


class SentBroadcastFactory(BroadcastFactory):
    status = Broadcast.Status.SENT
    approved_by = factory.SubFactory(UserFactory, role=roles.REVIEWER)
    approved_at = factory.LazyFunction(timezone.now)
    scheduled_for = factory.LazyFunction(timezone.now)
    sent_at = factory.LazyFunction(timezone.now)


class BroadcastEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BroadcastEvent

    broadcast = factory.SubFactory(BroadcastFactory)
    actor = factory.LazyAttribute(lambda o: o.broadcast.author)
    verb = "create"


class DeliveryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Delivery

    broadcast = factory.SubFactory(BroadcastFactory)
    seq = factory.Sequence(lambda n: n)
    kind = Delivery.Kind.BROADCAST


class MessageTemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MessageTemplate
        skip_postgeneration_save = True

    name = "広報かしわ発行のお知らせ"
    messages = factory.LazyFunction(
        lambda: [text_message("広報かしわ 最新号を発行しました。"), card_message()]
    )
    categories = factory.PostGeneration(_set_categories)


class AllowedDomainFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AllowedDomain
        django_get_or_create = ("domain",)

    domain = factory.Sequence(lambda n: f"example{n}.lg.jp")
