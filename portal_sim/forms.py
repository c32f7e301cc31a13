"""The form files (申請書) of each procedure, e-Gov style (package-format.md §5).

Japanese element names; ``DataRoot`` with ``様式ID`` and ``様式バージョン`` first; dates as
``年号``/``年``/``月``/``日`` groups; unanswered fields present but empty; every My Number in an
element named ``個人番号`` (the applicant's, the spouse's, the children's).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta

from lxml import etree

from portal_sim.datadir import HouseholdMember
from portal_sim.population import Person, age_on
from portal_sim.procedures import WITHDRAWAL_FORM_ID, Procedure
from signature.identity import ERAS

__all__ = ["FORM_BUILDERS", "build_form", "era_group", "withdrawal_form"]

_ERA_FIRST_YEAR = {era.code: (era.first.year if era.first else 1868) for era in ERAS}
_SEX_NAMES = {"1": "男", "2": "女", "3": "不明"}

_BANKS = (("みずほ銀行", "0001"), ("三菱UFJ銀行", "0005"), ("三井住友銀行", "0009"), ("りそな銀行", "0010"),
          ("ゆうちょ銀行", "9900"), ("城南信用金庫", "1344"))
_BRANCHES = ("田町支店", "新橋支店", "赤坂支店", "六本木支店", "麻布支店", "品川支店", "青山支店")
_NURSERIES = ("港区立芝浦保育園", "港区立赤坂保育園", "港区立高輪保育園", "港区立南青山保育園", "港区立白金保育園",
              "私立みなと保育園", "私立芝公園こども園", "私立三田キッズガーデン")
_HOSPITALS = ("愛育病院", "山王病院", "東京慈恵会医科大学附属病院", "北里大学北里研究所病院",
              "みなとレディースクリニック")
_DESTINATIONS = (
    ("2110004", "神奈川県川崎市中原区新丸子東三丁目1200番地"), ("1500001", "東京都渋谷区神宮前四丁目26番18号"),
    ("2310023", "神奈川県横浜市中区山下町10番地"), ("3300063", "埼玉県さいたま市浦和区高砂三丁目15番1号"),
    ("5300001", "大阪府大阪市北区梅田一丁目2番2号"), ("8100001", "福岡県福岡市中央区天神一丁目8番1号"),
    ("1540004", "東京都世田谷区太子堂二丁目17番1号"),
)
_PURPOSES = ("勤務先への提出", "運転免許証の更新", "年金の手続", "相続の手続", "不動産登記", "自動車の登録",
             "パスポートの申請")
_EMPLOYERS = ("株式会社港商事", "芝浦精機株式会社", "港区役所", "赤坂総合法律事務所")
_WITHDRAWAL_REASONS = ("申請内容に誤りがあったため", "申請が不要になったため", "別の方法で手続を行ったため", "")


def _sub(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    """A child element; ``text=None`` leaves it empty (an unanswered field)."""
    el = etree.SubElement(parent, tag)
    if text is not None:
        el.text = text
    return el


def era_group(parent: etree._Element, tag: str, d: date | None) -> etree._Element:
    """``<tag><年号>令和</年号><年>8</年><月>11</月><日>25</日></tag>``; all four empty for ``None``."""
    group = _sub(parent, tag)
    if d is None:
        for part in ("年号", "年", "月", "日"):
            _sub(group, part)
        return group
    era = next(e for e in ERAS if e.contains(d))
    _sub(group, "年号", era.name)
    _sub(group, "年", str(d.year - _ERA_FIRST_YEAR[era.code] + 1))
    _sub(group, "月", str(d.month))
    _sub(group, "日", str(d.day))
    return group


def _root(form_id: str) -> etree._Element:
    root = etree.Element("DataRoot")
    _sub(root, "様式ID", form_id)
    _sub(root, "様式バージョン", "0001")
    return root


def _serialise(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _maybe(rng: random.Random, share: float, value: str) -> str | None:
    return value if rng.random() < share else None


def _person(parent: etree._Element, tag: str, p: Person, *, with_number: bool = True) -> etree._Element:
    el = _sub(parent, tag)
    _sub(el, "氏名", p.identity.name)
    _sub(el, "氏名フリガナ", p.identity.name_kana)
    era_group(el, "生年月日", p.identity.birth_date)
    _sub(el, "性別", _SEX_NAMES[p.identity.sex])
    if with_number:
        _sub(el, "個人番号", p.my_number)
    return el


def _member(parent: etree._Element, tag: str, m: HouseholdMember | None, relation: str | None = None) -> None:
    el = _sub(parent, tag)
    _sub(el, "氏名", m.name if m else None)
    _sub(el, "氏名フリガナ", m.name_kana if m else None)
    era_group(el, "生年月日", m.birth_date if m else None)
    if relation is not None:
        _sub(el, "続柄", relation)
    _sub(el, "個人番号", m.my_number if m else None)


def _child_relation(children: tuple[HouseholdMember, ...], child: HouseholdMember) -> str:
    same_sex = [c for c in children if c.sex == child.sex]
    order = same_sex.index(child)
    words = ("長", "二", "三", "四")
    return f"{words[min(order, 3)]}{'男' if child.sex == '1' else '女'}"


def jidoteate(p: Person, on: date, rng: random.Random) -> bytes:
    root = _root("JIDOTEATE-01")
    body = _sub(root, "児童手当認定請求書")
    era_group(body, "請求年月日", on)
    applicant = _person(body, "請求者", p)
    _sub(applicant, "郵便番号", p.postal_code)
    _sub(applicant, "住所", p.identity.address)
    _sub(applicant, "電話番号", p.phone)
    _sub(applicant, "職業", _maybe(rng, 0.6, rng.choice(("会社員", "公務員", "自営業", "パート"))))
    _sub(applicant, "加入年金", rng.choice(("厚生年金", "国民年金", "共済組合")))
    _member(body, "配偶者", p.spouse)
    children = p.children
    for child in children:
        if age_on(child.birth_date, on) < 18:
            el = _sub(body, "対象児童")
            _sub(el, "氏名", child.name)
            _sub(el, "氏名フリガナ", child.name_kana)
            era_group(el, "生年月日", child.birth_date)
            _sub(el, "続柄", _child_relation(children, child))
            _sub(el, "同別居の別", "同居")
            _sub(el, "個人番号", child.my_number)
    bank, bank_code = rng.choice(_BANKS)
    account = _sub(body, "振込先口座")
    _sub(account, "金融機関名", bank)
    _sub(account, "金融機関コード", bank_code)
    _sub(account, "支店名", rng.choice(_BRANCHES))
    _sub(account, "口座種別", "普通")
    _sub(account, "口座番号", f"{rng.randrange(10**7):07d}")
    _sub(account, "口座名義人フリガナ", p.identity.name_kana)
    _sub(body, "備考")
    return _serialise(root)


def hoiku(p: Person, on: date, rng: random.Random) -> bytes:
    root = _root("HOIKU-01")
    body = _sub(root, "保育施設等利用申込書")
    era_group(body, "申込年月日", on)
    guardian = _person(body, "保護者", p)
    _sub(guardian, "住所", p.identity.address)
    _sub(guardian, "電話番号", p.phone)
    _sub(guardian, "勤務先名称", _maybe(rng, 0.8, rng.choice(_EMPLOYERS)))
    _sub(guardian, "就労状況", rng.choice(("就労中", "求職中", "育児休業中")))
    _member(body, "配偶者", p.spouse)
    young = [c for c in p.children if age_on(c.birth_date, on) < 6]
    child = young[rng.randrange(len(young))] if young else None
    el = _sub(body, "児童")
    _sub(el, "氏名", child.name if child else None)
    _sub(el, "氏名フリガナ", child.name_kana if child else None)
    era_group(el, "生年月日", child.birth_date if child else None)
    _sub(el, "性別", _SEX_NAMES[child.sex] if child else None)
    _sub(el, "個人番号", child.my_number if child else None)
    wish = _sub(body, "利用希望")
    first_of_next = (on.replace(day=1) + timedelta(days=32)).replace(day=1)
    era_group(wish, "利用開始希望日", first_of_next)
    for rank, nursery in enumerate(rng.sample(_NURSERIES, rng.randint(1, 3)), start=1):
        _sub(wish, f"第{rank}希望施設", nursery)
    _sub(wish, "保育を必要とする事由", rng.choice(("就労", "就労", "妊娠・出産", "求職活動")))
    _sub(wish, "きょうだい同時申込", None)
    _sub(body, "備考")
    return _serialise(root)


def tenshutsu(p: Person, on: date, rng: random.Random) -> bytes:
    root = _root("TENSHUTSU-01")
    body = _sub(root, "転出届")
    era_group(body, "届出年月日", on)
    who = _person(body, "届出人", p)
    _sub(who, "電話番号", p.phone)
    _sub(body, "現住所", p.identity.address)
    postal, destination = rng.choice(_DESTINATIONS)
    moving_to = _sub(body, "転出先")
    _sub(moving_to, "郵便番号", postal)
    _sub(moving_to, "住所", destination)
    _sub(moving_to, "世帯主氏名", p.identity.name)
    era_group(body, "転出予定日", on + timedelta(days=rng.randint(1, 30)))
    movers = [(p.identity.name, p.identity.name_kana, p.identity.birth_date, p.identity.sex, "世帯主", p.my_number)]
    movers += [(m.name, m.name_kana, m.birth_date, m.sex, "妻" if m.relation == "配偶者" and m.sex == "2"
                else "夫" if m.relation == "配偶者" else "子", m.my_number) for m in p.household]
    for name, kana, birth, sex, relation, number in movers:
        el = _sub(body, "異動者")
        _sub(el, "氏名", name)
        _sub(el, "氏名フリガナ", kana)
        era_group(el, "生年月日", birth)
        _sub(el, "性別", _SEX_NAMES[sex])
        _sub(el, "続柄", relation)
        _sub(el, "個人番号", number)
    _sub(body, "マイナンバーカード継続利用", "有")
    _sub(body, "備考")
    return _serialise(root)


def juminhyo(p: Person, on: date, rng: random.Random) -> bytes:
    root = _root("JUMINHYO-01")
    body = _sub(root, "住民票の写し等交付請求書")
    era_group(body, "請求年月日", on)
    who = _person(body, "請求者", p, with_number=False)
    _sub(who, "住所", p.identity.address)
    _sub(who, "電話番号", p.phone)
    request = _sub(body, "請求内容")
    copies = rng.choice((1, 1, 1, 2, 3))
    _sub(request, "証明書の種類", rng.choice(("住民票の写し", "住民票の写し", "住民票記載事項証明書")))
    _sub(request, "通数", str(copies))
    _sub(request, "対象者", rng.choice(("本人のみ", "世帯全員")))
    listed = _sub(request, "記載事項")
    _sub(listed, "世帯主及び続柄", rng.choice(("要", "不要")))
    _sub(listed, "本籍及び筆頭者", rng.choice(("要", "不要", "不要")))
    # Whether the copy shows the My Number: never an element named 個人番号, which always holds one.
    _sub(listed, "個人番号の記載", "不要")
    _sub(listed, "住民票コード", "不要")
    _sub(body, "使用目的", rng.choice(_PURPOSES))
    send_to = _sub(body, "送付先")
    _sub(send_to, "郵便番号", p.postal_code)
    _sub(send_to, "住所", p.identity.address)
    _sub(send_to, "宛名", p.identity.name)
    fee = _sub(body, "手数料")
    _sub(fee, "金額", str(300 * copies))
    _sub(fee, "納付方法", rng.choice(("クレジットカード", "定額小為替")))
    _sub(body, "備考")
    return _serialise(root)


def ninshin(p: Person, on: date, rng: random.Random) -> bytes:
    root = _root("NINSHIN-01")
    body = _sub(root, "妊娠届出書")
    era_group(body, "届出年月日", on)
    mother = _person(body, "妊婦", p)
    _sub(mother, "住所", p.identity.address)
    _sub(mother, "電話番号", p.phone)
    _sub(mother, "職業", _maybe(rng, 0.5, rng.choice(("会社員", "公務員", "自営業"))))
    weeks = rng.randint(6, 20)
    state = _sub(body, "妊娠の状況")
    _sub(state, "妊娠週数", str(weeks))
    era_group(state, "出産予定日", on + timedelta(weeks=40 - weeks))
    _sub(state, "診断を受けた医療機関", rng.choice(_HOSPITALS))
    _sub(state, "多胎妊娠", rng.choice(("なし",) * 9 + ("双胎",)))
    _member(body, "配偶者", p.spouse)
    survey = _sub(body, "アンケート")
    _sub(survey, "初めての妊娠", "はい" if not p.children else "いいえ")
    _sub(survey, "相談したいこと")
    _sub(body, "備考")
    return _serialise(root)


FORM_BUILDERS: Mapping[str, Callable[[Person, date, random.Random], bytes]] = {
    "JIDOTEATE-01": jidoteate,
    "HOIKU-01": hoiku,
    "TENSHUTSU-01": tenshutsu,
    "JUMINHYO-01": juminhyo,
    "NINSHIN-01": ninshin,
}


def build_form(procedure: Procedure, person: Person, arrived_at: datetime, rng: random.Random) -> bytes:
    """The form of ``procedure`` filled in by ``person`` on the day of ``arrived_at``."""
    return FORM_BUILDERS[procedure.form_id](person, arrived_at.date(), rng)


def withdrawal_form(
    procedure: Procedure, person: Person, arrived_at: datetime, first_receipt_number: str, rng: random.Random
) -> bytes:
    """The 取下げ届 that withdraws the chain started by ``first_receipt_number``."""
    root = _root(WITHDRAWAL_FORM_ID)
    body = _sub(root, "取下げ届")
    era_group(body, "届出年月日", arrived_at.date())
    _sub(body, "取下げ対象受付番号", first_receipt_number)
    _sub(body, "取下げ対象手続名称", procedure.procedure_name)
    who = _sub(body, "届出人")
    _sub(who, "氏名", person.identity.name)
    _sub(who, "電話番号", person.phone)
    reason = rng.choice(_WITHDRAWAL_REASONS)
    _sub(body, "取下げ理由", reason or None)
    _sub(body, "備考")
    return _serialise(root)
