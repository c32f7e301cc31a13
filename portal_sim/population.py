"""A reproducible synthetic population of 港区: people, households, card (certificate) histories.

Everything here is plain data drawn from a seeded :class:`random.Random`; no keys, no
certificates. :mod:`portal_sim.generate` turns each :class:`Card` into a real JPKI-TEST signing
certificate afterwards.

Who is simulated, and why so:

* **Applicants are adults** (18–85 at the start of the period): J-LIS issues the 署名用電子証明書
  only to residents aged 15 or more, so children appear only as household members in forms.
* **Names**: a share needs 代替文字: the 氏 or the building name contains a character outside
  JIS X 0208 (髙, 𠮷, 﨑, 濵, 德), and the certificate carries the substitute in 氏名代替文字 /
  住所代替文字 (package-format.md §4).
* **Card histories** follow a fixed pattern over the resident index (like
  :func:`signature.testing.pki.sample_residents`), so that even a handful of residents covers
  every case: one current card (from the current or the previous root generation), a card renewed
  after the old one expired, a card renewed during the period (the old one revoked as superseded),
  and a lost card (revoked before the period) with its replacement.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from portal_sim.datadir import JST, HouseholdMember
from signature.testing.pki import Resident
from signature.testing.samples import make_my_number

__all__ = [
    "Card",
    "CardHistory",
    "Person",
    "age_on",
    "fifth_birthday_after",
    "make_population",
]

# (氏, フリガナ)
_FAMILY_NAMES: tuple[tuple[str, str], ...] = (
    ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"), ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"), ("小林", "コバヤシ"), ("加藤", "カトウ"),
    ("吉田", "ヨシダ"), ("山田", "ヤマダ"), ("佐々木", "ササキ"), ("山口", "ヤマグチ"), ("松本", "マツモト"),
    ("井上", "イノウエ"), ("木村", "キムラ"), ("林", "ハヤシ"), ("斎藤", "サイトウ"), ("清水", "シミズ"),
    ("山崎", "ヤマザキ"), ("森", "モリ"), ("池田", "イケダ"), ("橋本", "ハシモト"), ("阿部", "アベ"),
    ("石川", "イシカワ"), ("山下", "ヤマシタ"), ("中島", "ナカジマ"), ("石井", "イシイ"), ("小川", "オガワ"),
    ("前田", "マエダ"), ("岡田", "オカダ"), ("長谷川", "ハセガワ"), ("藤田", "フジタ"), ("後藤", "ゴトウ"),
    ("近藤", "コンドウ"), ("村上", "ムラカミ"), ("遠藤", "エンドウ"), ("青木", "アオキ"), ("坂本", "サカモト"),
)
# (氏, 代替文字, フリガナ): the first form is outside JIS X 0208.
_VARIANT_FAMILY_NAMES: tuple[tuple[str, str, str], ...] = (
    ("髙橋", "高橋", "タカハシ"), ("𠮷田", "吉田", "ヨシダ"), ("山﨑", "山崎", "ヤマザキ"),
    ("濵田", "浜田", "ハマダ"), ("德永", "徳永", "トクナガ"), ("髙木", "高木", "タカギ"),
)
_GIVEN_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "1": (
        ("太郎", "タロウ"), ("一郎", "イチロウ"), ("健太", "ケンタ"), ("翔太", "ショウタ"), ("大輔", "ダイスケ"),
        ("拓也", "タクヤ"), ("浩", "ヒロシ"), ("誠", "マコト"), ("隆", "タカシ"), ("直樹", "ナオキ"),
        ("和也", "カズヤ"), ("雄一", "ユウイチ"), ("修", "オサム"), ("健一", "ケンイチ"), ("亮", "リョウ"),
    ),
    "2": (
        ("花子", "ハナコ"), ("陽子", "ヨウコ"), ("恵子", "ケイコ"), ("美咲", "ミサキ"), ("由美", "ユミ"),
        ("真由美", "マユミ"), ("裕子", "ユウコ"), ("智子", "トモコ"), ("彩", "アヤ"), ("麻衣", "マイ"),
        ("愛", "アイ"), ("明美", "アケミ"), ("香織", "カオリ"), ("さくら", "サクラ"), ("優子", "ユウコ"),
    ),
}
_CHILD_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "1": (("蓮", "レン"), ("陽翔", "ハルト"), ("悠真", "ユウマ"), ("湊", "ミナト"), ("蒼", "アオイ"),
          ("樹", "イツキ"), ("大和", "ヤマト"), ("悠人", "ユウト")),
    "2": (("陽菜", "ヒナ"), ("結衣", "ユイ"), ("葵", "アオイ"), ("凛", "リン"), ("芽依", "メイ"),
          ("紬", "ツムギ"), ("結菜", "ユイナ"), ("莉子", "リコ")),
}
# 港区 towns: (町名, number of 丁目, 郵便番号).
_TOWNS: tuple[tuple[str, int, str], ...] = (
    ("芝公園", 4, "1050011"), ("芝", 5, "1050014"), ("海岸", 3, "1050022"), ("東新橋", 2, "1050021"),
    ("新橋", 6, "1050004"), ("虎ノ門", 5, "1050001"), ("赤坂", 9, "1070052"), ("六本木", 7, "1060032"),
    ("麻布十番", 4, "1060045"), ("元麻布", 3, "1060046"), ("西麻布", 4, "1060031"), ("南麻布", 5, "1060047"),
    ("白金", 6, "1080072"), ("白金台", 5, "1080071"), ("高輪", 4, "1080074"), ("三田", 5, "1080073"),
    ("港南", 4, "1080075"), ("台場", 2, "1350091"), ("南青山", 7, "1070062"), ("北青山", 3, "1070061"),
    ("浜松町", 2, "1050013"), ("芝浦", 4, "1080023"),
)
_BUILDINGS: tuple[str, ...] = (
    "港南ハイツ", "芝浦レジデンス", "グランドメゾン三田", "青山コート", "パークハウス白金", "赤坂タワー",
    "六本木ヒルズレジデンス", "高輪ガーデン", "麻布コーポ", "台場ベイサイド",
)
# (建物名, 代替文字): the first form is outside JIS X 0208.
_VARIANT_BUILDINGS: tuple[tuple[str, str], ...] = (
    ("髙輪レジデンス", "高輪レジデンス"), ("𠮷野ハイツ", "吉野ハイツ"), ("﨑山マンション", "崎山マンション"),
)
_AGE_BRACKETS = ((18, 29), (30, 44), (45, 64), (65, 84))
_AGE_WEIGHTS = (20, 40, 25, 15)
_KANJI_DIGITS = ("", "一", "二", "三", "四", "五", "六", "七", "八", "九")


class CardHistory(enum.StrEnum):
    """The pattern of a resident's card generations."""

    CURRENT = "current"  # one card from the current root generation
    PREVIOUS_ROOT = "previous_root"  # one card, issued under the previous (still valid) root generation
    EXPIRED = "expired"  # the first card expired before the period; renewed afterwards
    RENEWED_IN_PERIOD = "renewed_in_period"  # renewed during the period; the old card revoked as superseded
    LOST = "lost"  # the card was revoked (lost) before the period and replaced


@dataclass(frozen=True, slots=True)
class Card:
    """One card generation: a signing certificate and a user-authentication certificate issued together.

    ``issuer_generation`` is the JPKI root generation (1 or 2) that signs the signing certificate.
    ``expires_on`` is the last day of validity (JST): the 5th birthday after issue, capped at
    ``cap`` by :func:`make_population`. ``key_label`` names the derived RSA key.
    """

    resident_id: str
    index: int
    issuer_generation: int
    issued_at: datetime
    expires_on: date
    user_serial: str
    revoked_at: datetime | None = None
    revocation_reason: str | None = None

    @property
    def key_label(self) -> str:
        return f"card/{self.resident_id}/{self.index}"

    @property
    def expires_at(self) -> datetime:
        """The certificate's notAfter: 23:59:59 JST of :attr:`expires_on`."""
        return datetime.combine(self.expires_on, time(23, 59, 59), JST)

    def usable_at(self, moment: datetime) -> bool:
        """Valid and not revoked at ``moment``."""
        return (self.issued_at <= moment <= self.expires_at
                and (self.revoked_at is None or moment < self.revoked_at))


@dataclass(frozen=True, slots=True)
class Person:
    """A simulated resident: identity, register data, household and card history."""

    index: int
    resident_id: str
    atena_number: str
    my_number: str
    identity: Resident
    postal_code: str
    phone: str
    email: str
    history: CardHistory
    cards: tuple[Card, ...]
    household: tuple[HouseholdMember, ...]

    def card_at(self, moment: datetime) -> Card | None:
        """The newest card usable at ``moment``."""
        for card in reversed(self.cards):
            if card.usable_at(moment):
                return card
        return None

    def revoked_card_before(self, moment: datetime) -> Card | None:
        """A card revoked before ``moment`` (used for the revoked-certificate defect)."""
        for card in self.cards:
            if card.revoked_at is not None and card.revoked_at < moment:
                return card
        return None

    @property
    def children(self) -> tuple[HouseholdMember, ...]:
        return tuple(m for m in self.household if m.relation == "子")

    @property
    def spouse(self) -> HouseholdMember | None:
        return next((m for m in self.household if m.relation == "配偶者"), None)


def age_on(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _birthday(year: int, birth: date) -> date:
    try:
        return birth.replace(year=year)
    except ValueError:  # 29 February in a common year
        return date(year, 2, 28)


def fifth_birthday_after(issued: date, birth: date) -> date:
    """The last day of a 署名用電子証明書 issued on ``issued`` to someone born on ``birth``."""
    first = _birthday(issued.year, birth)
    if first <= issued:
        first = _birthday(issued.year + 1, birth)
    return _birthday(first.year + 4, birth)


class _Unique:
    """Draws values until one is new (deterministic given the RNG)."""

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def draw(self, make: Callable[[], str]) -> str:
        while True:
            value = make()
            if value not in self.seen:
                self.seen.add(value)
                return value


def _history_for(index: int) -> CardHistory:
    # A fixed pattern (not a random draw) so that any population of 10 or more has every case,
    # and even 5 residents have a lost card.
    return {
        3: CardHistory.LOST,
        6: CardHistory.EXPIRED,
        8: CardHistory.RENEWED_IN_PERIOD,
        4: CardHistory.PREVIOUS_ROOT,
    }.get(index % 10, CardHistory.CURRENT)


def _at(day: date, rng: random.Random) -> datetime:
    """A moment in office hours on ``day`` (JST): when a card is issued or reported lost."""
    return datetime.combine(day, time(rng.randint(9, 16), rng.randrange(60), rng.randrange(60)), JST)


def _days(first: date, last: date, rng: random.Random) -> date:
    return date.fromordinal(rng.randint(first.toordinal(), last.toordinal()))


def _cards(
    resident_id: str,
    birth: date,
    history: CardHistory,
    rng: random.Random,
    serials: _Unique,
    start: datetime,
    end: datetime,
    g1_expiry: date,
) -> tuple[CardHistory, tuple[Card, ...]]:
    """The card generations of one resident and the history they actually follow (a pattern that
    does not fit the birth date or the period falls back to CURRENT). Every resident has one
    usable card at any moment of the period."""
    s, e = start.date(), end.date()
    g2_from = s - timedelta(days=2 * 365 - 1)  # root generation 2 is valid from start - 2 years

    def user_serial() -> str:
        return serials.draw(lambda: format(rng.randrange(1 << 62, 1 << 63), "X"))

    def card(
        index: int, generation: int, issued: datetime, revoked_at: datetime | None = None, reason: str | None = None
    ) -> Card:
        expires = fifth_birthday_after(issued.date(), birth)
        if generation == 1:
            expires = min(expires, g1_expiry)
        return Card(resident_id, index, generation, issued, expires, user_serial(), revoked_at, reason)

    if history is CardHistory.PREVIOUS_ROOT:
        # Issued under generation 1 and still valid through the whole period.
        for _ in range(50):
            issued = _days(s - timedelta(days=4 * 365), g2_from - timedelta(days=1), rng)
            if min(fifth_birthday_after(issued, birth), g1_expiry) > e:
                return history, (card(0, 1, _at(issued, rng)),)
        history = CardHistory.CURRENT
    if history is CardHistory.EXPIRED:
        for _ in range(50):
            old_issued = _days(s - timedelta(days=7 * 365), s - timedelta(days=5 * 365), rng)
            old_expiry = fifth_birthday_after(old_issued, birth)
            new_issued = old_expiry + timedelta(days=rng.randint(1, 60))
            if g2_from <= new_issued < s:
                return history, (card(0, 1, _at(old_issued, rng)), card(1, 2, _at(new_issued, rng)))
        history = CardHistory.CURRENT
    if history is CardHistory.LOST:
        old_issued = _days(g2_from, s - timedelta(days=120), rng)
        lost = _days(old_issued + timedelta(days=30), s - timedelta(days=30), rng)
        revoked = _at(lost, rng)
        old = card(0, 2, _at(old_issued, rng), revoked, "lost")
        new_issued = _days(lost + timedelta(days=5), min(lost + timedelta(days=25), s - timedelta(days=1)), rng)
        return history, (old, card(1, 2, _at(new_issued, rng)))
    if history is CardHistory.RENEWED_IN_PERIOD and (end - start) >= timedelta(days=2):
        old_issued = _days(g2_from, s - timedelta(days=30), rng)
        # Renewal somewhere in the middle of the period: applications before it use the old card.
        span = (end - start).total_seconds()
        renewal = start + timedelta(seconds=int(span * rng.uniform(0.25, 0.75)))
        renewal = renewal.replace(microsecond=0)
        old = card(0, 2, _at(old_issued, rng), renewal, "superseded")
        return history, (old, card(1, 2, renewal))
    issued = _days(g2_from, s - timedelta(days=7), rng)
    return CardHistory.CURRENT, (card(0, 2, _at(issued, rng)),)


def _address(index: int, rng: random.Random) -> tuple[str, str | None, str]:
    """(住所, 住所代替文字 or None, 郵便番号)."""
    town, chome_max, postal = rng.choice(_TOWNS)
    chome = _KANJI_DIGITS[rng.randint(1, chome_max)]
    street = f"東京都港区{town}{chome}丁目{rng.randint(1, 30)}番{rng.randint(1, 40)}号"
    room = f"{rng.randint(1, 15)}{rng.randint(1, 9):02d}"
    if index % 7 == 5:
        building, building_alt = rng.choice(_VARIANT_BUILDINGS)
        return f"{street}　{building}{room}", f"{street}　{building_alt}{room}", postal
    if rng.random() < 0.5:
        return f"{street}　{rng.choice(_BUILDINGS)}{room}", None, postal
    return street, None, postal


def _household(
    family: str, family_kana: str, sex: str, birth: date, start: date, rng: random.Random, numbers: _Unique,
) -> tuple[HouseholdMember, ...]:
    members: list[HouseholdMember] = []
    age = age_on(birth, start)
    if age >= 24 and rng.random() < 0.6:
        spouse_sex = "2" if sex == "1" else "1"
        given, given_kana = rng.choice(_GIVEN_NAMES[spouse_sex])
        spouse_birth = birth + timedelta(days=rng.randint(-5 * 365, 5 * 365))
        if age_on(spouse_birth, start) < 18:
            spouse_birth = birth
        members.append(HouseholdMember("配偶者", f"{family}　{given}", f"{family_kana}　{given_kana}", spouse_sex,
                                       spouse_birth, numbers.draw(lambda: make_my_number(rng))))
    if 22 <= age <= 52 and rng.random() < 0.7:
        # Children born when the parent was 22 or older, one to four years apart, the youngest
        # possibly a newborn; only those still under 18 are simulated (the ones forms name).
        earliest = max(_birthday(birth.year + 22, birth), start - timedelta(days=17 * 365))
        latest = start - timedelta(days=20)
        child_birth = earliest if earliest > latest else _days(earliest, latest, rng)
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            if child_birth > latest:
                break
            child_sex = rng.choice(("1", "2"))
            given, given_kana = rng.choice(_CHILD_NAMES[child_sex])
            members.append(HouseholdMember("子", f"{family}　{given}", f"{family_kana}　{given_kana}", child_sex,
                                           child_birth, numbers.draw(lambda: make_my_number(rng))))
            child_birth += timedelta(days=rng.randint(365, 4 * 365))
    members.sort(key=lambda m: (m.relation != "配偶者", m.birth_date))
    return tuple(members)


def make_population(
    rng: random.Random, n: int, *, start: datetime, end: datetime, g1_expiry: date
) -> list[Person]:
    """``n`` residents for the period [``start``, ``end``); deterministic given ``rng``'s state.

    ``g1_expiry`` is the last day of the previous JPKI root generation: certificates it issued end
    no later.
    """
    my_numbers, atena_numbers, serials = _Unique(), _Unique(), _Unique()
    people = []
    for i in range(n):
        resident_id = f"R{i + 1:06d}"
        sex = rng.choice(("1", "2"))
        given, given_kana = rng.choice(_GIVEN_NAMES[sex])
        name_alt: str | None = None
        if i % 6 == 2:
            family, family_alt, family_kana = rng.choice(_VARIANT_FAMILY_NAMES)
            name_alt = f"{family_alt}　{given}"
        else:
            family, family_kana = rng.choice(_FAMILY_NAMES)
        address, address_alt, postal = _address(i, rng)
        # Adults only (18–85 at the start of the period, see the module docstring), most of them of
        # working and parenting age, like the people who use online procedures.
        s = start.date()
        youngest, oldest = rng.choices(_AGE_BRACKETS, weights=_AGE_WEIGHTS)[0]
        birth = _days(s - timedelta(days=oldest * 365 + 364), s - timedelta(days=youngest * 365 + 5), rng)
        identity = Resident(
            name=f"{family}　{given}", name_kana=f"{family_kana}　{given_kana}", sex=sex, birth_date=birth,
            address=address, name_alt=name_alt, address_alt=address_alt,
        )
        atena = atena_numbers.draw(lambda: f"{rng.randrange(10**10):010d}")
        my_number = my_numbers.draw(lambda: make_my_number(rng))
        phone = f"0{rng.choice((70, 80, 90))}-{rng.randrange(10000):04d}-{rng.randrange(10000):04d}"
        history, cards = _cards(resident_id, birth, _history_for(i), rng, serials, start, end, g1_expiry)
        household = _household(family, family_kana, sex, birth, s, rng, my_numbers)
        people.append(Person(
            index=i, resident_id=resident_id, atena_number=atena, my_number=my_number, identity=identity,
            postal_code=postal, phone=phone, email=f"resident{i + 1:06d}@example.jp", history=history,
            cards=cards, household=household,
        ))
    return people
