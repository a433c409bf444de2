"""The dirty lead file of bench/import.py: what it writes, and exactly how many of each kind."""

from __future__ import annotations

import csv
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import phonenumbers

HEADER = ["序号", "楼盘", "姓名", "电话", "区域"]
INVALID_SHARE, DUPLICATE_SHARE, BLANK_SHARE = 0.05, 0.10, 0.001
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉梅鹏飞宇浩然子轩思雨欣怡"
AREAS = ["朝阳区", "海淀区", "东城区", "西城区", "丰台区", "浦东新区", "徐汇区", "天河区", "南山区", ""]
PROPERTIES = ["万科城", "碧桂园", "保利花园", "龙湖天街", "融创壹号院", "绿地中心", "华润城", "中海国际"]
# Three-digit mobile prefixes whose every number is valid (checked against phonenumbers at start).
MOBILE_PREFIXES = ["130", "131", "132", "135", "136", "137", "138", "139", "150", "151", "152", "155"]
MOBILE_PREFIXES += ["156", "157", "158", "159", "177", "180", "182", "183", "186", "187", "188", "189"]
LANDLINE_AREAS = ["10", "21", "20"]  # Beijing, Shanghai, Guangzhou: 8-digit subscriber numbers
# Spellings: (label, weight, how). Weights are shares of the rows of that kind.
MOBILE_FORMATS: list[tuple[str, int, Any]] = [
    ("13812345678", 55, lambda n: n),
    ("138 1234 5678", 14, lambda n: f"{n[:3]} {n[3:7]} {n[7:]}"),
    ("138-1234-5678", 10, lambda n: f"{n[:3]}-{n[3:7]}-{n[7:]}"),
    ("+86-138-1234-5678", 8, lambda n: f"+86-{n[:3]}-{n[3:7]}-{n[7:]}"),
    ("+86 13812345678", 5, lambda n: f"+86 {n}"),
    ("0086 138 1234 5678", 3, lambda n: f"0086 {n[:3]} {n[3:7]} {n[7:]}"),
    ("(+86) 138 1234 5678", 2, lambda n: f"(+86) {n[:3]} {n[3:7]} {n[7:]}"),
    (" 13812345678 ", 2, lambda n: f" {n} "),
    ("１３８１２３４５６７８ (full-width)", 1, lambda n: n.translate(FULL_WIDTH)),
]
LANDLINE_FORMATS: list[tuple[str, int, Any]] = [  # area code a, subscriber number s
    ("(010) 1234 5678", 4, lambda a, s: f"(0{a}) {s[:4]} {s[4:]}"),
    ("010-12345678", 3, lambda a, s: f"0{a}-{s}"),
    ("+86 10 1234 5678", 2, lambda a, s: f"+86 {a} {s[:4]} {s[4:]}"),
    ("01012345678", 1, lambda a, s: f"0{a}{s}"),
]
INVALID_FORMATS: list[tuple[str, int, Any]] = [  # random generator r, ten random digits d
    ("too short", 3, lambda r, d: f"13{d[:5]}"),
    ("one digit too many", 2, lambda r, d: f"138 {d[:4]} {d[4:9]}"),
    ("not a mobile range (110…, 120…)", 2, lambda r, d: f"1{r.choice('12')}0{d[:8]}"),
    ("letters", 1, lambda r, d: f"138-{d[:4]}-abcd"),
    ("empty", 1, lambda r, d: ""),
    ("placeholder (N/A, 无, …)", 1, lambda r, d: r.choice(["N/A", "无", "-", "暂无", "0000000000"])),
]
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@dataclass
class Written:
    """What the generator wrote, by kind: the exact counts an import of the file must report."""

    rows: int = 0  # data lines after the header, blank ones included
    blank: int = 0
    invalid: int = 0
    repeated: int = 0  # a valid phone already in an earlier row (another spelling)
    unique: int = 0  # distinct valid phones
    dnc: int = 0  # distinct phones on the do-not-call list (seeded)
    existing: int = 0  # distinct phones that are already leads (seeded)
    formats: Counter[str] = field(default_factory=Counter)

    @property
    def expected(self) -> dict[str, int]:
        return {
            "total": self.rows - self.blank,
            "inserted": self.unique - self.dnc - self.existing,
            "invalid": self.invalid,
            "duplicate": self.repeated + self.existing,
            "dnc": self.dnc,
        }


def _pick(rng: random.Random, formats: list[tuple[str, int, Any]]) -> tuple[str, Any]:
    label, _, how = rng.choices(formats, weights=[weight for _, weight, _ in formats])[0]
    return label, how


def unique_phone(j: int) -> tuple[str, str, str]:
    """The j-th distinct phone of every file: (kind, digits to spell, E.164).

    One-to-one for j below 3·10⁸: two j with the same prefix differ by a multiple of 24 (6 for
    landlines), and the multipliers are prime to 10.
    """
    if j % 40 == 3:  # 2.5 % landlines
        k = j // 40
        area = LANDLINE_AREAS[k % 3]
        # Not 8: 800… is a toll-free range, not a landline.
        subscriber = f"{'234567'[k % 6]}{(k * 7_393_913 + 2_468_135) % 10**7:07d}"
        return "landline", area + ":" + subscriber, f"+86{area}{subscriber}"
    prefix = MOBILE_PREFIXES[j % len(MOBILE_PREFIXES)]
    national = f"{prefix}{(j * 73_939_133 + 24_681_357) % 10**8:08d}"
    return "mobile", national, "+86" + national


def on_dnc_list(j: int) -> bool:
    return j % 100 == 42


def already_a_lead(j: int) -> bool:
    return j % 100 == 17


def spell(rng: random.Random, kind: str, digits: str) -> tuple[str, str]:
    """A way people type this number: (label of the spelling, the cell)."""
    if kind == "landline":
        label, how = _pick(rng, LANDLINE_FORMATS)
        return label, how(*digits.split(":"))
    label, how = _pick(rng, MOBILE_FORMATS)
    return label, how(digits)


def misspell(rng: random.Random) -> tuple[str, str]:
    """A phone cell that is not a valid number: (label, the cell)."""
    label, how = _pick(rng, INVALID_FORMATS)
    return label, how(rng, f"{rng.randrange(10**10):010d}")


def generate(path: Path, rows: int, seed: int, snapshots: tuple[int, ...] = ()) -> dict[int, Written]:
    """Write ``rows`` data lines and the header to ``path``; what was written in the first n rows for
    n in ``snapshots`` and ``rows``. One line per row (no line breaks in cells): the first n + 1 lines
    are a file of n rows, the one the same seed would give for ``rows=n``."""
    rng = random.Random(seed)
    written = Written()
    taken: dict[int, Written] = {}
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(HEADER)
        for i in range(1, rows + 1):
            out.writerow(_row(rng, written, i))
            if i in snapshots:
                taken[i] = replace(written, formats=Counter(written.formats))
    taken[rows] = written
    return taken


def _row(rng: random.Random, written: Written, i: int) -> list[object]:
    written.rows = i
    roll = rng.random()
    name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2))))
    estate = rng.choice(PROPERTIES) + rng.choice(("", "", "二期", ",三期"))  # some need quoting
    area = rng.choice(AREAS)
    if roll < BLANK_SHARE:
        written.blank += 1
        return ["", "", "", "", ""]
    if roll < BLANK_SHARE + INVALID_SHARE:
        written.invalid += 1
        label, phone = misspell(rng)
        written.formats["invalid: " + label] += 1
    elif roll < BLANK_SHARE + INVALID_SHARE + DUPLICATE_SHARE and written.unique:
        written.repeated += 1
        kind, digits, _ = unique_phone(rng.randrange(written.unique))
        label, phone = spell(rng, kind, digits)
        written.formats["repeat: " + label] += 1
    else:
        j = written.unique
        written.unique += 1
        written.dnc += on_dnc_list(j)
        written.existing += already_a_lead(j)
        kind, digits, _ = unique_phone(j)
        label, phone = spell(rng, kind, digits)
        written.formats[label] += 1
    return [i, estate, name, phone, area]


def head(source: Path, target: Path, rows: int) -> None:
    """The header and first ``rows`` rows of a generated file."""
    with source.open("rb") as f, target.open("wb") as out:
        for _, line in zip(range(rows + 1), f, strict=False):
            out.write(line)


def check_generator(samples: int = 1000) -> None:
    """The generator's claims, checked with phonenumbers itself (not with the code under test)."""
    rng = random.Random(7)
    landlines = [40 * k + 3 for k in rng.sample(range(10**6), samples)]
    for j in [*range(samples), *rng.sample(range(10**7), samples), *landlines]:
        kind, digits, expected = unique_phone(j)
        _, raw = spell(rng, kind, digits)
        assert library_e164(raw) == expected, (j, raw, expected)
    for _ in range(samples):
        _, raw = misspell(rng)
        assert library_e164(raw) is None, raw
    assert len({unique_phone(j)[2] for j in range(200_000)}) == 200_000, "unique_phone is not one-to-one"


_LETTERS = re.compile(r"[^\W\d_]")


def library_e164(raw: str) -> str | None:
    """What phonenumbers alone makes of a cell: E.164 when valid, else None."""
    # Letters are refused as the real cleaner does; phonenumbers would read them as keypad digits.
    if _LETTERS.search(raw):
        return None
    try:
        number = phonenumbers.parse(raw, "CN")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
