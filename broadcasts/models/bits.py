"""Stable bit positions for the options a citizen chooses (categories, areas, age groups).

A follower's choices in each dimension are kept twice: in the choice tables (the truth,
one row per choice) and as a bit mask on the follower row (``Follower.category_bits``,
``area_bits``, ``age_group_bits``), so that a recipient count is one scan of the followers
with bit tests instead of semi-joins (bench/audiences). Each option holds one position,
0–62 (a mask is a signed 64-bit integer: PostgreSQL ``bigint``), given when the option is
created and never reused while the option exists (a retired option keeps it: citizens who
chose it still have it)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.apps import apps
from django.db import models
from django.db.models import F
from django.utils.translation import gettext_lazy as _

#: positions 0–62: bit 63 would be the sign of a signed 64-bit integer
BIT_POSITIONS = 63


class NoFreeBit(Exception):
    """Every position of a list is held: a 64th option cannot be counted."""

    def __init__(self, model: type[models.Model]) -> None:
        self.model = model
        super().__init__(no_free_bit_message(model))


def no_free_bit_message(model: type[models.Model]) -> str:
    name = model._meta.verbose_name
    return (
        f"{name}は{BIT_POSITIONS}件までしか登録できません（集計番号 0〜{BIT_POSITIONS - 1} が"
        f"すべて使われています）。追加するには、使わなくなった{name}の削除をシステム担当者に"
        "依頼してください。"
    )


def bits_free(model: type[models.Model]) -> list[int]:
    """The positions no option of ``model`` holds, lowest first."""
    held = set(model.objects.exclude(bit=None).values_list("bit", flat=True))  # type: ignore[attr-defined]
    return [b for b in range(BIT_POSITIONS) if b not in held]


def mask_of(bits: Any) -> int:
    """The mask of some positions (``None`` ignored)."""
    mask = 0
    for bit in bits:
        if bit is not None:
            mask |= 1 << bit
    return mask


class BitPositioned(models.Model):
    """An option with a stable position in its followers' mask column ``BITS_FIELD``."""

    #: the column of ``Follower`` that holds this list's mask
    BITS_FIELD: ClassVar[str] = ""

    bit = models.PositiveSmallIntegerField(
        _("集計番号"),
        null=True,
        blank=True,
        unique=True,
        editable=False,
        help_text=_(
            "人数の集計に使う番号です（自動で付き、変わりません）。一覧ごとに 0〜62 の63件まで。"
        ),
    )

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.bit is None:
            self.bit = self._bit_take()
        super().save(*args, **kwargs)

    @classmethod
    def _bit_take(cls) -> int:
        """The lowest free position. A position freed by an option deleted without the
        service (which clears it from the followers' masks) may still be set in some masks:
        it is cleared here before reuse, so a new option never inherits old choices."""
        free = bits_free(cls)
        if not free:
            raise NoFreeBit(cls)
        bit = free[0]
        mask = 1 << bit
        follower = apps.get_model("broadcasts", "Follower")
        field = cls.BITS_FIELD
        follower.objects.alias(hit=F(field).bitand(mask)).filter(hit__gt=0).update(
            **{field: F(field).bitand(~mask)}
        )
        return bit
