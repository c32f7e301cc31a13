"""Synthetic intake data for bench_ui.py: N applications generated inside PostgreSQL (INSERT … SELECT
over generate_series), plus full detail data for a sample made in Python with the runtime's sealers.

Every application gets its chain's rows as the intake would store them: a delivery (dummy package
bytes), a verification report, one or two versions (``current`` / ``superseded``) with a masked
Japanese form that :func:`intake.applications.service.flatten_form` parses, the applicant JSON, its
status history (``status_transitions`` consistent with ``applications.status``) and forwarding
outbox rows. Only the sample gets signer identities, sealed attachments, sealed My Numbers and
linkage decisions. The random draws are seeded (``setseed``), so a given N gives the same data.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from lxml import etree
from sqlalchemy import Connection, Engine, insert, text

from intake.models import Attachment, MyNumberRow
from intake.procedures import Procedure, ProcedureCatalogue
from intake.runtime import Runtime
from signature.testing.samples import make_my_number, sample_pdf, sample_png

__all__ = [
    "BENCH_DEPT",
    "CATALOGUE",
    "NOW",
    "PROCEDURES",
    "STAFF",
    "Population",
    "populate",
]

JST = timezone(timedelta(hours=9))
#: The benchmark's "now" (the server's clock is pinned to it): data covers the two years before.
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=JST)
SPAN_DAYS = 730


@dataclass(frozen=True)
class BenchProcedure:
    id: str
    name: str
    department: str
    department_name: str
    share: float  # of all applications
    form_id: str


PROCEDURES: tuple[BenchProcedure, ...] = (
    BenchProcedure("KOSODATE-JIDOTEATE-NINTEI", "児童手当 認定請求", "kodomo", "子ども家庭支援部 子ども家庭課", 0.30,
                   "JIDOTEATE-01"),
    BenchProcedure("HOIKU-RIYO-MOSHIKOMI", "保育所等の利用申込み", "kodomo", "子ども家庭支援部 子ども家庭課", 0.20,
                   "HOIKU-01"),
    BenchProcedure("KOSEKI-SHOMEI", "戸籍証明書の請求", "kuminka", "区民課", 0.20, "KOSEKI-01"),
    BenchProcedure("JUMINHYO-SHOMEI", "住民票の写しの請求", "kuminka", "区民課", 0.15, "JUMINHYO-01"),
    BenchProcedure("KOKUHO-SHUTOKU", "国民健康保険 資格取得の届出", "hoken", "保健福祉支援部 国保年金課", 0.15,
                   "KOKUHO-01"),
)
CATALOGUE = ProcedureCatalogue({p.id: Procedure(p.id, p.name, p.department, p.department_name) for p in PROCEDURES},
                               configured=True)
#: The benchmark reviewer's department: 児童手当 + 保育 = half of all applications.
BENCH_DEPT = "kodomo"
#: Staff logins per department (審査 is assigned to them); ``kodomo-01`` is the benchmark's reviewer.
STAFF: dict[str, tuple[str, ...]] = {
    d: tuple(f"{d}-{n:02d}" for n in range(1, 5)) for d in ("kodomo", "kuminka", "hoken")}

# (氏, フリガナ): ミナト is one family name in thirty, so ``kana=ミナト`` selects ~3 %.
FAMILY = (
    ("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"), ("伊藤", "イトウ"),
    ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"), ("小林", "コバヤシ"), ("加藤", "カトウ"),
    ("吉田", "ヨシダ"), ("山田", "ヤマダ"), ("佐々木", "ササキ"), ("山口", "ヤマグチ"), ("松本", "マツモト"),
    ("井上", "イノウエ"), ("木村", "キムラ"), ("林", "ハヤシ"), ("斎藤", "サイトウ"), ("清水", "シミズ"),
    ("湊", "ミナト"), ("南", "ミナミ"), ("宮本", "ミヤモト"), ("三浦", "ミウラ"), ("港", "ミナト"),
    ("森", "モリ"), ("池田", "イケダ"), ("橋本", "ハシモト"), ("石川", "イシカワ"), ("前田", "マエダ"),
)
GIVEN = (
    ("太郎", "タロウ"), ("一郎", "イチロウ"), ("健太", "ケンタ"), ("翔太", "ショウタ"), ("大輔", "ダイスケ"),
    ("拓也", "タクヤ"), ("蓮", "レン"), ("陽翔", "ハルト"), ("悠真", "ユウマ"), ("浩", "ヒロシ"),
    ("誠", "マコト"), ("隆", "タカシ"), ("花子", "ハナコ"), ("陽子", "ヨウコ"), ("恵子", "ケイコ"),
    ("美咲", "ミサキ"), ("結衣", "ユイ"), ("陽菜", "ヒナ"), ("葵", "アオイ"), ("さくら", "サクラ"),
    ("由美", "ユミ"), ("真由美", "マユミ"), ("凛", "リン"), ("芽依", "メイ"), ("湊", "ミナト"),
)
TOWNS = ("芝公園", "芝", "海岸", "東新橋", "新橋", "虎ノ門", "赤坂", "六本木", "麻布十番", "元麻布", "西麻布",
         "南麻布", "白金", "白金台", "高輪", "三田", "港南", "台場", "南青山", "北青山", "浜松町", "芝浦")
CHILDREN = ("太郎", "花", "蓮", "結衣", "陽翔", "凛")
#: How many distinct residents apply (a resident's applications share name, address and 宛名番号).
RESIDENTS = 400_000

#: (status, has a second version) → the transitions that lead there, oldest first:
#: (action, source, target, comment). A second version arrives after a 補正依頼 (NEW_VERSION).
_CORRECTION = "添付書類の写しが不鮮明です。鮮明なものを添付して再度提出してください。"
_REJECT = "所得要件を満たしていないため、却下します。"
_A = ("accept", "到達", "受付", "")
_R = ("start_review", "受付", "審査中", "")
_C = ("request_correction", "審査中", "補正依頼", _CORRECTION)
_N = ("new_version", "補正依頼", "審査中", "")
PATHS: dict[tuple[str, bool], tuple[tuple[str, str, str, str], ...]] = {}
for _two in (False, True):
    _loop = (_C, _N) if _two else ()
    PATHS[("到達", _two)] = ()
    PATHS[("受付", _two)] = (_A,)
    PATHS[("審査中", _two)] = (_A, _R, *_loop)
    PATHS[("補正依頼", _two)] = (_A, _R, *_loop, _C)
    PATHS[("完了", _two)] = (_A, _R, *_loop, ("complete", "審査中", "完了", ""))
    PATHS[("却下", _two)] = (_A, _R, *_loop, ("reject", "審査中", "却下", _REJECT))
    PATHS[("取下げ", _two)] = (_A, ("withdraw", "受付", "取下げ", "申請者から取下げの申出がありました。"))
#: statuses whose path contains the NEW_VERSION step when the chain has a second version
_REVIEWED = ("審査中", "補正依頼", "完了", "却下")


def _sql_array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ",".join("'" + v.replace("'", "''") + "'" for v in values) + "]::text[]"


def _ts(moment: datetime) -> str:
    """A UTC timestamp literal (the schema stores naive UTC)."""
    return "timestamp '" + moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ") + "'"


def _proc_case(attr: str) -> str:
    return "CASE proc " + " ".join(f"WHEN {i} THEN '{getattr(p, attr)}'" for i, p in enumerate(PROCEDURES)) + " END"


def _forms() -> str:
    """SQL: the masked form of a version (``rem``: the 備考 text), per procedure. Empty 個人番号
    elements, as stored after extraction."""
    person = ("'<氏名>' || name || '</氏名><氏名フリガナ>' || kana_sp || '</氏名フリガナ>"
              "<生年月日><年号>' || era || '</年号><年>' || era_y || '</年><月>' || bm || '</月><日>' || bd"
              " || '</日></生年月日>'")
    addr = "'<住所>' || address || '</住所><電話番号>' || phone || '</電話番号>'"
    child = ("'<児童><氏名>' || fam || '　' || child || '</氏名><生年月日><年号>令和</年号><年>' || (1 + resident % 6)"
             " || '</年><月>' || (1 + resident % 12) || '</月><日>' || (1 + resident % 28) || '</日></生年月日>'")
    head = "'<DataRoot><様式ID>' || form_id || '</様式ID><様式バージョン>0001</様式バージョン>"
    forms = [
        head + "<児童手当認定請求書><請求者>' || " + person + " || '<個人番号/>' || " + addr
        + " || '<職業>会社員</職業></請求者>' || " + child + " || '<個人番号/><続柄>子</続柄></児童>"
        "<振込先><金融機関名>みなと銀行</金融機関名><支店名>芝支店</支店名><口座番号>'"
        " || lpad((resident % 9999999)::text, 7, '0')"
        " || '</口座番号></振込先><備考>' || rem || '</備考></児童手当認定請求書></DataRoot>'",
        head + "<保育所等利用申込書><申込者>' || " + person + " || '<個人番号/>' || " + addr
        + " || '<勤務先>株式会社みなと商事</勤務先></申込者>' || " + child
        + " || '<個人番号/></児童><希望施設><第1希望>芝公園保育園</第1希望><第2希望>三田保育園</第2希望>"
        "<第3希望/></希望施設><希望開始日>令和9年4月1日</希望開始日>"
        "<備考>' || rem || '</備考></保育所等利用申込書></DataRoot>'",
        head + "<戸籍証明書等請求書><請求者>' || " + person + " || " + addr
        + " || '</請求者><請求内容><本籍>東京都港区' || town || '一丁目1番</本籍>"
        "<筆頭者氏名>' || name || '</筆頭者氏名>"
        "<証明書の種類>戸籍全部事項証明書</証明書の種類><通数>' || (1 + resident % 3) || '</通数>"
        "<使用目的>年金の手続</使用目的></請求内容><備考>' || rem || '</備考></戸籍証明書等請求書></DataRoot>'",
        head + "<住民票の写し等請求書><請求者>' || " + person + " || " + addr
        + " || '</請求者><請求内容><対象者>世帯全員</対象者><記載事項><世帯主>記載する</世帯主><続柄>記載する</続柄>"
        "<本籍>省略</本籍><個人番号の記載>省略</個人番号の記載></記載事項><通数>1</通数><使用目的>勤務先への提出</使用目的>"
        "</請求内容><備考>' || rem || '</備考></住民票の写し等請求書></DataRoot>'",
        head + "<国民健康保険被保険者資格取得届><届出者>' || " + person + " || '<個人番号/>' || " + addr
        + " || '</届出者><資格取得日>' || to_char(created_at + interval '9 hours' - interval '10 days', 'YYYY-MM-DD')"
        " || '</資格取得日><取得理由>社会保険の資格喪失</取得理由><前の保険><保険者名>全国健康保険協会</保険者名>"
        "<資格喪失日>' || to_char(created_at + interval '9 hours' - interval '11 days', 'YYYY-MM-DD')"
        " || '</資格喪失日></前の保険><備考>' || rem || '</備考></国民健康保険被保険者資格取得届></DataRoot>'",
    ]
    return "CASE proc " + " ".join(f"WHEN {i} THEN {f}" for i, f in enumerate(forms)) + " END"


def _status_case() -> str:
    old = ("CASE WHEN r_status < 0.82 THEN '完了' WHEN r_status < 0.90 THEN '却下' WHEN r_status < 0.96 THEN '取下げ'"
           " WHEN r_status < 0.975 THEN '補正依頼' WHEN r_status < 0.99 THEN '審査中' ELSE '受付' END")
    mid = ("CASE WHEN r_status < 0.45 THEN '完了' WHEN r_status < 0.50 THEN '却下' WHEN r_status < 0.54 THEN '取下げ'"
           " WHEN r_status < 0.66 THEN '補正依頼' WHEN r_status < 0.90 THEN '審査中' WHEN r_status < 0.97 THEN '受付'"
           " ELSE '到達' END")
    new = ("CASE WHEN r_status < 0.35 THEN '到達' WHEN r_status < 0.60 THEN '受付' WHEN r_status < 0.85 THEN '審査中'"
           " WHEN r_status < 0.92 THEN '補正依頼' WHEN r_status < 0.97 THEN '完了' WHEN r_status < 0.99 THEN '却下'"
           " ELSE '取下げ' END")
    return (f"CASE WHEN age > interval '60 days' THEN {old} WHEN age > interval '14 days' THEN {mid} ELSE {new} END")


def _generation_sql(n: int) -> list[str]:
    start = NOW - timedelta(days=SPAN_DAYS)
    shares = []
    acc = 0.0
    for i, p in enumerate(PROCEDURES[:-1]):
        acc += p.share
        shares.append(f"WHEN r_proc < {acc:.4f} THEN {i}")
    proc = "CASE " + " ".join(shares) + f" ELSE {len(PROCEDURES) - 1} END"
    dept_index = "CASE proc " + " ".join(
        f"WHEN {i} THEN {list(STAFF).index(p.department) + 1}" for i, p in enumerate(PROCEDURES)) + " END"
    return [
        "SELECT setseed(0.25)",
        "DROP TABLE IF EXISTS bench_gen, bench_app, bench_ver, bench_paths",
        # one row of random draws per application (random() evaluated exactly once per column)
        f"""CREATE UNLOGGED TABLE bench_gen AS
            SELECT i::bigint AS i, random() AS r_proc, random() AS r_jit, random() AS r_status,
                   random() AS r_review, random() AS r_two, random() AS r_kind, random() AS r_link,
                   random() AS r_asg, random() AS r_ind, random() AS r_ind2, random() AS r_size
            FROM generate_series(1, {n}) AS i""",  # noqa: S608 - our own constants, no input
        f"""CREATE UNLOGGED TABLE bench_app AS
        WITH b AS (
            SELECT g.*, {_ts(start)} + ((i - 1 + r_jit) / {n}) * interval '{SPAN_DAYS} days' AS created_at,
                   (i * 2654435761) % {RESIDENTS} AS resident,
                   {proc} AS proc
            FROM bench_gen g
        ), c AS (
            SELECT b.*, {_ts(NOW)} - created_at AS age,
                   (resident % {len(FAMILY)}) + 1 AS fi, ((resident / {len(FAMILY)}) % {len(GIVEN)}) + 1 AS gi
            FROM b
        ), d AS (
            SELECT c.*, {_status_case()} AS status, r_two < 0.15 AS two,
                   least(age, interval '20 days') / 6 AS step,
                   ({_sql_array(tuple(f for f, _ in FAMILY))})[fi] AS fam,
                   ({_sql_array(tuple(k for _, k in FAMILY))})[fi] AS fam_kana,
                   ({_sql_array(tuple(g for g, _ in GIVEN))})[gi] AS giv,
                   ({_sql_array(tuple(k for _, k in GIVEN))})[gi] AS giv_kana,
                   date '1960-01-01' + ((resident * 37) % 14600)::int AS birth
            FROM c
        )
        , e AS (
        SELECT i, proc, created_at, age, resident, status, two, step, fam, giv, birth,
               {_proc_case('id')} AS procedure_id, {_proc_case('name')} AS procedure_name,
               {_proc_case('department')} AS dept, {_proc_case('form_id')} AS form_id,
               fam || '　' || giv AS name, fam_kana || '　' || giv_kana AS kana_sp, fam_kana || giv_kana AS kana,
               CASE WHEN birth < date '1989-01-08' THEN '昭和' ELSE '平成' END AS era,
               extract(year FROM birth)::int - CASE WHEN birth < date '1989-01-08' THEN 1925 ELSE 1988 END AS era_y,
               extract(month FROM birth)::int AS bm, extract(day FROM birth)::int AS bd,
               ({_sql_array(TOWNS)})[(resident % {len(TOWNS)}) + 1] AS town,
               '東京都港区' || ({_sql_array(TOWNS)})[(resident % {len(TOWNS)}) + 1]
                 || (ARRAY['一','二','三','四','五'])[((resident / 7) % 5) + 1] || '丁目'
                 || ((resident / 3) % 30 + 1) || '番' || ((resident / 11) % 40 + 1) || '号' AS address,
               '03-' || lpad(((resident * 13) % 10000)::text, 4, '0')
                 || '-' || lpad(((resident * 7) % 10000)::text, 4, '0') AS phone,
               ({_sql_array(CHILDREN)})[(resident % {len(CHILDREN)}) + 1] AS child,
               CASE WHEN status = '取下げ' THEN 'withdrawn' ELSE 'open' END AS state,
               CASE WHEN status IN ('到達', '受付') THEN true
                    WHEN status = '審査中' THEN r_review < 0.3
                    WHEN status = '補正依頼' THEN r_review < 0.1 ELSE false END AS needs_review,
               CASE WHEN r_link < 0.75 THEN 'auto' WHEN r_link < 0.80 THEN 'manual'
                    WHEN r_link < 0.97 THEN 'unresolved' ELSE 'conflict' END AS linkage_state,
               CASE WHEN r_link < 0.80 THEN '3' || lpad(resident::text, 9, '0') END AS atena_number,
               CASE WHEN status IN ('審査中', '補正依頼', '完了', '却下') OR (status = '受付' AND r_asg < 0.1)
                    THEN ({_sql_array(tuple(STAFF))})[{dept_index}] || '-' || lpad(((i * 7) % 4 + 1)::text, 2, '0')
               END AS assigned_to,
               CASE WHEN r_ind < 0.97 THEN 'PASSED' WHEN r_ind < 0.99 THEN 'FAILED' ELSE 'INDETERMINATE' END AS ind1,
               CASE WHEN r_ind2 < 0.98 THEN 'PASSED' ELSE 'FAILED' END AS ind2,
               CASE WHEN r_kind < 0.7 THEN '補正' ELSE '再申請' END AS v2_kind,
               CASE WHEN two THEN created_at + step * CASE WHEN status IN {_REVIEWED} THEN 4 ELSE 0.5 END END AS v2_at,
               upper(to_hex(1000000 + resident * 65537)) AS serial,
               80000 + (r_size * 400000)::int AS size
        FROM d)
        SELECT e.*,
               to_char(created_at + interval '9 hours', 'YYYYMMDD') || '-' || lpad(i::text, 10, '0') AS receipt1,
               CASE WHEN two THEN to_char(v2_at + interval '9 hours', 'YYYYMMDD') || '-'
                                  || lpad(({n} + i)::text, 10, '0') END AS receipt2
        FROM e""",  # noqa: S608 - our own constants, no input
        "ALTER TABLE bench_app ADD PRIMARY KEY (i)",
        # one row per version: v1 of every chain (id = i), v2 of chains with a second version (id = n + i)
        f"""CREATE UNLOGGED TABLE bench_ver AS
            SELECT i AS vid, i AS app_id, false AS is_v2, receipt1 AS receipt, '新規申請' AS kind, created_at AS stored,
                   ind1 AS ind, CASE WHEN two THEN 'superseded' ELSE 'current' END AS vstate,
                   CASE WHEN two THEN v2_at END AS superseded_at
            FROM bench_app
            UNION ALL
            SELECT {n} + i, i, true, receipt2, v2_kind, v2_at, ind2, 'current', NULL FROM bench_app WHERE two
            ORDER BY 1""",  # noqa: S608 - our own constants, no input
        "CREATE UNLOGGED TABLE bench_paths (status text, two boolean, k int, action text, source text, target text,"
        " comment text)",
    ]


def _paths_rows() -> list[dict[str, object]]:
    return [{"status": s, "two": two, "k": k, "action": a, "source": src, "target": tgt, "comment": c}
            for (s, two), steps in PATHS.items() for k, (a, src, tgt, c) in enumerate(steps, start=1)]


def _load_sql(n: int) -> list[tuple[str, str]]:
    form = _forms().replace("|| rem ||", "|| CASE WHEN is_v2 THEN '補正：' || v2_kind"
                                          " || 'により添付書類を差し替えました。' ELSE '' END ||")
    applicant = ("json_build_array(json_build_array('氏名', name), json_build_array('氏名フリガナ', kana_sp),"
                 " json_build_array('郵便番号', '105' || lpad((resident % 10000)::text, 4, '0')),"
                 " json_build_array('住所', address), json_build_array('電話番号', phone),"
                 " json_build_array('電子メールアドレス', 'resident' || resident || '@example.jp'))")
    checks = ("'[\"zip.read\", \"arrival.signature\", \"arrival.certificate_path\", \"manifest.structure\","
              " \"applicant.signature\", \"applicant.certificate_path\", \"applicant.revocation\","
              " \"files.digests\", \"files.media_types\"]'::json")
    report_cols = (
        "CASE ind WHEN 'PASSED' THEN NULL WHEN 'FAILED' THEN 'HASH_FAILURE' ELSE 'TRY_LATER' END,"
        " CASE ind WHEN 'PASSED' THEN NULL WHEN 'FAILED' THEN 'ATTACHMENT_DIGEST_MISMATCH'"
        "   ELSE 'CRL_NOT_AVAILABLE' END,"
        " CASE ind WHEN 'PASSED' THEN 'All checks passed.'"
        "   WHEN 'FAILED' THEN 'An attachment does not match its digest.'"
        "   ELSE 'No current CRL for the signing certificate.' END,"
        " CASE ind WHEN 'PASSED' THEN 'すべての検証に合格しました。'"
        "   WHEN 'FAILED' THEN '添付ファイルが署名対象と一致しません。'"
        "   ELSE '署名用電子証明書の失効情報を確認できませんでした。' END,"
        f" {checks}, true, ind <> 'INDETERMINATE', 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256'"
    )
    relay = "'{\"malware\": {\"scanner\": \"clamd\", \"infected_files\": []}}'::json"
    versions = "bench_ver v JOIN bench_app a ON a.i = v.app_id"
    routes = "CASE dept " + " ".join(f"WHEN '{d}' THEN '{d}-system'" for d in STAFF) + " END"
    return [
        ("deliveries", f"""
            INSERT INTO deliveries (id, idempotency_key, sha256, size, receipt_number, package, received_at,
                                    client_id, relay_report, malware_flagged)
            SELECT vid, 'sha256:' || h, h, size, receipt, decode(substr(h, 1, 32), 'hex'), stored, 'relay-1', {relay},
                   false
            FROM (SELECT v.vid, v.receipt, v.stored, a.size,
                         encode(sha256(convert_to('package:' || v.vid, 'UTF8')), 'hex') AS h
                  FROM {versions}) x ORDER BY vid"""),  # noqa: S608 - our own constants, no input
        ("verification_reports", f"""
            INSERT INTO verification_reports (id, delivery_id, indication, sub_indication, reason_code, reason_en,
                                              reason_ja, checks, readable, revocation_checked, signature_algorithm,
                                              validation_time)
            SELECT vid, vid, ind, {report_cols}, stored FROM {versions} ORDER BY vid"""),  # noqa: S608
        ("applications", """
            INSERT INTO applications (id, first_receipt_number, procedure_id, procedure_name, state, status,
                                      created_at, updated_at, atena_number, linkage_state, needs_review,
                                      assigned_to, applicant_kana)
            SELECT i, receipt1, procedure_id, procedure_name, state, status, created_at,
                   greatest(created_at + step * coalesce(p.steps, 0), coalesce(v2_at, created_at)),
                   atena_number, linkage_state, needs_review, assigned_to, kana
            FROM bench_app a
            LEFT JOIN (SELECT status, two, count(*) AS steps FROM bench_paths GROUP BY status, two) p
                   USING (status, two)
            ORDER BY i"""),
        ("application_versions", f"""
            INSERT INTO application_versions (id, application_id, delivery_id, receipt_number, kind, arrived_at,
                                              stored_at, state, superseded_at, indication, user_cert_serial,
                                              form_xml, form_file, applicant)
            SELECT vid, app_id, vid, receipt, kind, stored - interval '3 minutes', stored, vstate, superseded_at, ind,
                   serial, {form}, form_id || '_01.xml', {applicant}
            FROM {versions} ORDER BY vid"""),  # noqa: S608 - our own constants, no input
        ("status_transitions", """
            INSERT INTO status_transitions (application_id, at, action, source, target, actor_id, comment,
                                            receipt_number)
            SELECT a.i, a.created_at + a.step * p.k, p.action, p.source, p.target,
                   CASE WHEN p.action = 'new_version' THEN 'system'
                        ELSE coalesce(a.assigned_to, a.dept || '-01') END,
                   p.comment, CASE WHEN a.two AND p.k >= 4 THEN a.receipt2 ELSE a.receipt1 END
            FROM bench_app a JOIN bench_paths p ON p.status = a.status AND p.two = a.two
            ORDER BY a.i, p.k"""),
        ("forward_outbox", f"""
            INSERT INTO forward_outbox (version_id, route, idempotency_key, state, attempts, next_attempt_at,
                                        last_error, delivered_at)
            SELECT vid, route, receipt || ':' || route,
                   CASE WHEN failed THEN 'failed' ELSE 'delivered' END, CASE WHEN failed THEN 8 ELSE 1 END,
                   stored, CASE WHEN failed THEN 'HTTP_503: Service Unavailable' END,
                   CASE WHEN failed THEN NULL ELSE stored + interval '2 seconds' END
            FROM (SELECT v.vid, v.receipt, v.stored, {routes} AS route,
                         v.stored > {_ts(NOW - timedelta(days=3))} AND v.vid % 40 = 0 AS failed
                  FROM {versions} WHERE v.ind = 'PASSED') x
            ORDER BY vid"""),  # noqa: S608 - our own constants, no input
    ]


@dataclass
class Population:
    applications: int
    versions: int
    sample_ids: list[int]
    seconds: float
    steps: dict[str, float]
    sizes: dict[str, str]


def populate(engine: Engine, runtime: Runtime, n: int, *, sample: int, attachment_kb: int,
             log: Callable[[str], None] = print) -> Population:
    """Fill the (migrated, empty) database; returns what was made and how long it took."""
    steps: dict[str, float] = {}
    t0 = time.perf_counter()

    def step(name: str, t: float) -> None:
        steps[name] = round(time.perf_counter() - t, 1)
        log(f"  {name:<28} {steps[name]:7.1f} s")

    with engine.connect() as conn:
        conn.exec_driver_sql("SET session_replication_role = replica")  # no FK triggers while bulk loading
        conn.exec_driver_sql("SET synchronous_commit = off")
        t = time.perf_counter()
        for sql in _generation_sql(n):
            _raw(conn, sql)
        conn.execute(text("INSERT INTO bench_paths VALUES (:status, :two, :k, :action, :source, :target, :comment)"),
                     _paths_rows())
        conn.commit()
        step("staging (bench_app)", t)
        t = time.perf_counter()
        rebuild = _drop_secondary_indexes(conn)
        conn.commit()
        step(f"drop {len(rebuild)} indexes", t)
        for table, sql in _load_sql(n):
            t = time.perf_counter()
            _raw(conn, sql)
            conn.commit()
            step(table, t)
        t = time.perf_counter()
        for ddl in rebuild:
            _raw(conn, ddl)
        conn.commit()
        step(f"rebuild {len(rebuild)} indexes", t)
        t = time.perf_counter()
        for table in ("deliveries", "verification_reports", "applications", "application_versions"):
            top = f"SELECT max(id) FROM {table}"  # noqa: S608 - fixed table names
            conn.exec_driver_sql(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), ({top}))")
        conn.commit()
        versions = conn.exec_driver_sql("SELECT count(*) FROM application_versions").scalar_one()
        sample_ids = _pick_sample(conn, sample)
        _sample_sql(conn, sample_ids)
        conn.commit()
        step("sample: signer, linkage", t)
    t = time.perf_counter()
    _sample_python(engine, runtime, sample_ids, attachment_kb)
    step("sample: attachments, 個人番号", t)
    with engine.connect() as conn:
        conn.exec_driver_sql("DROP TABLE bench_gen, bench_app, bench_ver, bench_paths")
        conn.commit()
    t = time.perf_counter()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM (ANALYZE)")
    step("VACUUM (ANALYZE)", t)
    with engine.connect() as conn:
        sizes = {r[0]: r[1] for r in conn.exec_driver_sql(
            "SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class WHERE relkind = 'r'"
            " AND relnamespace = 'public'::regnamespace ORDER BY pg_total_relation_size(oid) DESC LIMIT 8")}
        sizes["database"] = conn.exec_driver_sql("SELECT pg_size_pretty(pg_database_size(current_database()))"
                                                 ).scalar_one()
    return Population(n, versions, sample_ids, round(time.perf_counter() - t0, 1), steps, sizes)


#: the tables filled in bulk: their secondary indexes and unique constraints are dropped before and
#: rebuilt after (a sorted build instead of a million random inserts), exactly as the migrations made them
BULK_TABLES = ("deliveries", "verification_reports", "applications", "application_versions", "status_transitions",
               "forward_outbox")


def _drop_secondary_indexes(conn: Connection) -> list[str]:
    """Drop every index but the primary keys of :data:`BULK_TABLES`; the DDL that recreates them."""
    tables = {"t": list(BULK_TABLES)}
    rebuild: list[str] = []
    drops: list[str] = []
    for table, name, definition in conn.exec_driver_sql(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE contype = 'u' AND conrelid::regclass::text = ANY(%(t)s)", tables):
        drops.append(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        rebuild.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for name, definition in conn.exec_driver_sql(
            "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
            " WHERE i.indrelid::regclass::text = ANY(%(t)s) AND NOT i.indisprimary"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)", tables):
        drops.append(f"DROP INDEX {name}")
        rebuild.append(definition)
    for ddl in drops:
        conn.exec_driver_sql(ddl)
    return rebuild


def _raw(conn: Connection, sql: str) -> None:
    """Run SQL without parameters (``%`` is the modulo operator here, not a placeholder)."""
    conn.exec_driver_sql(sql.replace("%", "%%"))


def _pick_sample(conn: Connection, size: int) -> list[int]:
    ids = [r[0] for r in conn.exec_driver_sql(
        "SELECT id FROM applications WHERE procedure_id = ANY(%(p)s) ORDER BY id",
        {"p": [p.id for p in PROCEDURES if p.department == BENCH_DEPT]})]
    return sorted(random.Random(7).sample(ids, min(size, len(ids))))


def _sample_sql(conn: Connection, ids: list[int]) -> None:
    """Signer identities (基本4情報 as in the applicant's certificate) for every version of the sample,
    and the linkage decision of each resolved chain."""
    run = conn.exec_driver_sql
    run("CREATE TEMP TABLE bench_sample AS SELECT unnest(%(ids)s::bigint[]) AS id", {"ids": ids})
    run("""INSERT INTO signer_identities (version_id, name, name_alt, sex, birth_date, address, address_alt,
                                          cert_serial, issuer, not_before, not_after)
           SELECT v.id, a.name, NULL, CASE WHEN mod(a.resident, 2) = 0 THEN '1' ELSE '2' END, a.birth, a.address, NULL,
                  a.serial, 'OU=Japan Agency for Local Authority Information Systems,'
                            'OU=JPKI for digital signature,O=JPKI,C=JP',
                  v.arrived_at - interval '400 days', v.arrived_at + interval '1400 days'
           FROM bench_sample s JOIN application_versions v ON v.application_id = s.id JOIN bench_app a ON a.i = s.id""")
    run("""INSERT INTO linkage_decisions (application_id, at, state, atena_number, import_id, staff_id, reason)
           SELECT a.id, a.created_at + interval '1 hour', a.linkage_state, a.atena_number, NULL,
                  CASE WHEN a.linkage_state = 'manual' THEN 'kodomo-02' END,
                  CASE WHEN a.linkage_state = 'manual' THEN '窓口で本人確認のうえ設定' END
           FROM bench_sample s JOIN applications a ON a.id = s.id WHERE a.linkage_state IN ('auto', 'manual')""")
    run("DROP TABLE bench_sample")


def _attachment_files(proc_id: str, attachment_kb: int) -> list[tuple[str, str, bytes]]:
    """(name, media type, bytes): a scanned PDF (~¾ of the size) and a photo (PNG), incompressible."""
    filler = hashlib.shake_256(proc_id.encode()).digest(max(1, attachment_kb) * 1024)
    pdf_part = len(filler) * 3 // 4
    names = {
        "KOSODATE-JIDOTEATE-NINTEI": ("健康保険証の写し.pdf", "振込先口座の写し.png"),
        "HOIKU-RIYO-MOSHIKOMI": ("就労証明書.pdf", "児童の写真.png"),
    }.get(proc_id, ("本人確認書類.pdf", "添付写真.png"))
    return [(names[0], "application/pdf", sample_pdf("scan") + filler[:pdf_part]),
            (names[1], "image/png", sample_png(8, 8) + filler[pdf_part:])]


def _sample_python(engine: Engine, runtime: Runtime, ids: list[int], attachment_kb: int) -> None:
    """Sealed attachments and 個人番号 for every version of the sample, as store_delivery seals them."""
    rng = random.Random(3)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT v.id, v.form_xml, a.procedure_id FROM application_versions v JOIN applications a"
            " ON a.id = v.application_id WHERE v.application_id = ANY(:ids) ORDER BY v.id"), {"ids": ids}).all()
        att_ids = iter(conn.execute(text("SELECT nextval(pg_get_serial_sequence('attachments', 'id'))"
                                         " FROM generate_series(1, :n)"), {"n": 2 * len(rows)}).scalars().all())
        attachments: list[dict[str, object]] = []
        numbers: list[dict[str, object]] = []
        files = {p.id: _attachment_files(p.id, attachment_kb) for p in PROCEDURES}
        for version_id, form_xml, proc_id in rows:
            for name, media, data in files[proc_id]:
                att_id = next(att_ids)
                attachments.append({
                    "id": att_id, "version_id": version_id, "name": name, "role": "attachment", "size": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(), "media_type": media, "malware_flagged": False,
                    "data": runtime.package_sealer.seal(data, aad=f"attachments:{att_id}".encode())})
            root = etree.fromstring(form_xml.encode())
            tree = root.getroottree()
            for position, el in enumerate(root.iter("個人番号")):
                numbers.append({
                    "version_id": version_id, "position": position, "path": tree.getpath(el),
                    "valid_check_digit": True, "key_id": runtime.my_number_sealer.active_key_id,
                    "ciphertext": runtime.my_number_sealer.seal(
                        make_my_number(rng).encode(), aad=f"my_numbers:{version_id}:{position}".encode())})
            if len(attachments) >= 400:
                conn.execute(insert(Attachment), attachments)
                attachments.clear()
        if attachments:
            conn.execute(insert(Attachment), attachments)
        if numbers:
            conn.execute(insert(MyNumberRow), numbers)
        conn.commit()
