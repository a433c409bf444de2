"""Tests for hub.intake: phone handling, file reading, template detection, staging CSV.

Every file is written for real into tmp_path; nothing is mocked.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import io
import json
import random
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hub.intake import (
    ColumnMap,
    SpreadsheetError,
    TemplateError,
    detect_columns,
    detect_kind,
    mask_national_number,
    mask_phone,
    normalise_phone,
    read_rows,
)
from hub.intake.phones import _to_e164
from hub.intake.staging import CELL_SEPARATOR, PIECE_ROWS, STAGING_COLUMNS, StagingChunk, staging_chunks

CN_HEADER = ["序号", "楼盘", "姓名", "电话"]
CN_HEADER_AREA = [*CN_HEADER, "区域"]


def write_csv(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_bytes("".join(line + "\r\n" for line in lines).encode(encoding))
    return path


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


@dataclass(frozen=True)
class Staged:
    """One line of staging CSV, read back the way Postgres' ``COPY ... (FORMAT csv)`` sees it."""

    row_number: int
    phone: str | None  # NULL when the phone is not a valid number
    repeat: bool  # an earlier row of the chunk has this phone
    name: str
    area: str
    property: str | None
    extras: dict[str, str]
    cells: list[str]  # the row as read


def parse_staging(data: bytes) -> list[Staged]:
    records = []
    for line in csv.reader(io.StringIO(data.decode("utf-8"), newline="")):
        assert len(line) == len(STAGING_COLUMNS), line
        row_number, phone, repeat, name, area, property_, extras, cells = line
        assert repeat in ("t", "f"), repeat
        records.append(
            Staged(
                row_number=int(row_number),
                phone=phone or None,
                repeat=repeat == "t",
                name=name,
                area=area,
                property=property_ or None,
                extras=json.loads(extras) if extras else {},
                cells=cells.split(CELL_SEPARATOR),
            )
        )
    return records


def stage(
    rows: Iterable[list[str]], columns: ColumnMap, *, region: str = "CN", chunk_rows: int = 1000
) -> tuple[list[Staged], list[StagingChunk]]:
    """Data rows (header excluded) through ``staging_chunks``, parsed back, and the chunks."""
    chunks = list(staging_chunks(rows, columns, region=region, chunk_rows=chunk_rows))
    records = parse_staging(b"".join(piece for chunk in chunks for piece in chunk.pieces))
    assert sum(chunk.staged for chunk in chunks) == len(records)
    return records, chunks


def import_file(
    path: Path, *, max_rows: int = 1000, mapping: dict[str, int] | None = None, chunk_rows: int = 1000
) -> tuple[ColumnMap, list[Staged], list[StagingChunk]]:
    """``read_rows`` → ``detect_columns`` → ``staging_chunks``, as the import does."""
    rows = read_rows(path, max_rows=max_rows)
    columns = detect_columns(next(rows), mapping)
    records, chunks = stage(rows, columns, chunk_rows=chunk_rows)
    return columns, records, chunks


def rows_read(chunks: list[StagingChunk]) -> int:
    return sum(chunk.rows_read for chunk in chunks)


# --- phones: examples ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("138 1234 5678", "+8613812345678"),
        ("+86-138-1234-5678", "+8613812345678"),
        ("13812345678", "+8613812345678"),
        ("8613812345678", "+8613812345678"),
        ("008613812345678", "+8613812345678"),
        ("13812345678.0", "+8613812345678"),
        ("138.1234.5678", "+8613812345678"),
        ("１３８１２３４５６７８", "+8613812345678"),
        ("＋86 138 1234 5678", "+8613812345678"),
        ("  13812345678\u00a0", "+8613812345678"),
        ("(010) 1234 5678", "+861012345678"),
        ("010-12345678", "+861012345678"),
        ("+1 415 555 2671", "+14155552671"),
    ],
)
def test_normalise_phone_accepts_common_forms(raw: str, expected: str) -> None:
    assert normalise_phone(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "12345",
        "1381234567",  # one digit short
        "138123456789",  # one digit long
        "13812345678.5",
        "1.3812345678E10",  # scientific notation loses digits; never guess
        "tel 13812345678",
        "13812345678 / 13912345678",
        "张三",
    ],
)
def test_normalise_phone_rejects_invalid(raw: str) -> None:
    assert normalise_phone(raw) is None


def test_normalise_phone_keeps_a_trailing_zero_group() -> None:
    # `.0` is only a float suffix when the digits as typed are not a number.
    assert normalise_phone("+86 1381234567.0") == "+8613812345670"


def test_normalise_phone_uses_the_region_for_national_numbers() -> None:
    assert normalise_phone("(415) 555-2671", region="US") == "+14155552671"
    # Read as a Chinese number it is a different (landline) number.
    assert normalise_phone("(415) 555-2671", region="CN") == "+864155552671"


@pytest.mark.parametrize(
    ("e164", "masked"),
    [
        ("+8613812345678", "138****5678"),
        ("+861012345678", "10****5678"),
        ("+14155552671", "41****2671"),
        ("+442071838750", "20****8750"),
    ],
)
def test_mask_phone_examples(e164: str, masked: str) -> None:
    assert mask_phone(e164) == masked


@pytest.mark.parametrize(
    ("digits", "masked"),
    [
        ("", ""),
        ("5", "*"),
        ("56", "*6"),
        ("1234567", "*****67"),
        ("12345678", "****5678"),
        ("123456789", "1****6789"),
        ("123456789012", "123*****9012"),
    ],
)
def test_mask_national_number_rule(digits: str, masked: str) -> None:
    assert mask_national_number(digits) == masked


def test_mask_phone_never_leaks_unparseable_input() -> None:
    assert mask_phone("not a phone 13812345678") == "138****5678"


# --- phones: properties ----------------------------------------------------

_TYPES = (
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
)
EXAMPLES = sorted(
    {
        phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        for region in phonenumbers.SUPPORTED_REGIONS
        for kind in _TYPES
        if (example := phonenumbers.example_number_for_type(region, kind)) is not None
    }
)


@st.composite
def valid_numbers(draw: st.DrawFn) -> phonenumbers.PhoneNumber:
    """A valid number: a CN mobile, or a regional example with its tail varied."""
    if draw(st.booleans()):
        prefix = draw(st.sampled_from(["130", "135", "138", "139", "150", "158", "186", "189"]))
        text = "+86" + prefix + draw(st.text("0123456789", min_size=8, max_size=8))
    else:
        example = draw(st.sampled_from(EXAMPLES))
        tail = draw(st.text("0123456789", min_size=0, max_size=3))
        text = example[: len(example) - len(tail)] + tail
    number = phonenumbers.parse(text, None)
    assume(phonenumbers.is_valid_number(number))
    return number


def sprinkle(draw: st.DrawFn, digits: str) -> str:
    """Insert random separators between the characters of ``digits``."""
    separators = st.sampled_from(["", "", " ", "-", ".", "  ", " - "])
    return "".join(ch + draw(separators) for ch in digits[:-1]) + digits[-1]


@given(data=st.data(), number=valid_numbers())
@settings(max_examples=300, suppress_health_check=[HealthCheck.filter_too_much])
def test_valid_numbers_round_trip_whatever_the_separators(
    data: st.DataObject, number: phonenumbers.PhoneNumber
) -> None:
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    international = "+" + sprinkle(data.draw, e164[1:])
    assert normalise_phone(international, region="CN") == e164


@given(data=st.data(), subscriber=st.text("0123456789", min_size=8, max_size=8))
def test_cn_national_forms_round_trip(data: st.DataObject, subscriber: str) -> None:
    prefix = data.draw(st.sampled_from(["138", "139", "186"]))
    e164 = "+86" + prefix + subscriber
    assert normalise_phone(sprinkle(data.draw, prefix + subscriber)) == e164
    # Not every 8 digits are a Beijing landline (010 100x xxxx and 010 800x xxxx are not).
    landline = phonenumbers.parse("+8610" + subscriber)
    expected = "+8610" + subscriber if phonenumbers.is_valid_number(landline) else None
    assert normalise_phone(sprinkle(data.draw, "010" + subscriber)) == expected


@given(number=valid_numbers())
@settings(max_examples=300, suppress_health_check=[HealthCheck.filter_too_much])
def test_mask_hides_part_of_every_valid_number(number: phonenumbers.PhoneNumber) -> None:
    national = phonenumbers.national_significant_number(number)
    masked = mask_phone(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
    assert len(masked) == len(national)
    assert national not in masked
    assert "*" in masked
    shown = [(i, ch) for i, ch in enumerate(masked) if ch != "*"]
    assert len(shown) <= 7
    assert all(national[i] == ch for i, ch in shown)


@given(digits=st.text("0123456789", max_size=20))
def test_mask_national_number_properties(digits: str) -> None:
    masked = mask_national_number(digits)
    assert len(masked) == len(digits)
    revealed = sum(ch != "*" for ch in masked)
    assert revealed <= 7
    if digits:
        assert masked != digits
        assert revealed < len(digits)
    if len(digits) >= 8:
        assert masked.count("*") >= 4
    if len(digits) <= 7:
        assert revealed <= 2


# --- reading CSV -----------------------------------------------------------

CN_ROWS = [
    "1,阳光花园,张三,138 1234 5678",
    "2,阳光花园,李四,+86-139-1234-5678",
    "3,翠湖天地,王五,(010) 1234 5678",
]


def test_utf8_csv_with_chinese_template(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "leads.csv", [",".join(CN_HEADER), *CN_ROWS])
    columns, staged, chunks = import_file(path)
    assert (columns.index, columns.property, columns.name, columns.phone, columns.area) == (0, 1, 2, 3, None)
    assert [(lead.name, lead.phone, lead.property, lead.area, lead.row_number) for lead in staged] == [
        ("张三", "+8613812345678", "阳光花园", "", 2),
        ("李四", "+8613912345678", "阳光花园", "", 3),
        ("王五", "+861012345678", "翠湖天地", "", 4),
    ]
    assert all(lead.extras == {} for lead in staged)  # the 序号 column is not an extra
    assert staged[1].cells == ["2", "阳光花园", "李四", "+86-139-1234-5678"]
    assert [(chunk.rows_read, chunk.staged) for chunk in chunks] == [(3, 3)]


def test_utf8_csv_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(codecs.BOM_UTF8 + "序号,楼盘,姓名,电话\r\n1,阳光花园,张三,13812345678\r\n".encode())
    rows = list(read_rows(path, max_rows=10))
    assert rows[0] == CN_HEADER  # no \ufeff glued to 序号
    assert detect_columns(rows[0]).index == 0


def test_gbk_csv(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "gbk.csv", [",".join(CN_HEADER_AREA), "1,阳光花园,张三,13812345678,浦东新区"], "gbk"
    )
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")
    rows = list(read_rows(path, max_rows=10))
    assert rows == [CN_HEADER_AREA, ["1", "阳光花园", "张三", "13812345678", "浦东新区"]]


def test_mixed_utf8_and_gbk_csv(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    lines = [
        ("序号,楼盘,姓名,电话\r\n", "utf-8"),
        ("1,阳光花园,张三,13812345678\r\n", "gbk"),
        ("2,翠湖天地,李四,13912345678\r\n", "utf-8"),
        ("3,滨江一号,欧阳娜娜,18612345678\r\n", "gb18030"),
    ]
    path.write_bytes(b"".join(text.encode(encoding) for text, encoding in lines))
    _, staged, chunks = import_file(path)
    assert [(lead.name, lead.property, lead.phone) for lead in staged] == [
        ("张三", "阳光花园", "+8613812345678"),
        ("李四", "翠湖天地", "+8613912345678"),
        ("欧阳娜娜", "滨江一号", "+8618612345678"),
    ]
    assert rows_read(chunks) == 3


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_delimiter_is_sniffed(tmp_path: Path, delimiter: str) -> None:
    path = write_csv(
        tmp_path / "d.csv",
        [delimiter.join(CN_HEADER), delimiter.join(["1", "阳光花园, 二期", "张三", "13812345678"])],
    )
    rows = list(read_rows(path, max_rows=10))
    assert rows[1] == ["1", "阳光花园, 二期", "张三", "13812345678"]


def test_single_column_csv(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "one.csv", ["电话", "13812345678", "13912345678"])
    _, staged, _ = import_file(path)
    assert [(lead.row_number, lead.phone, lead.name, lead.extras) for lead in staged] == [
        (2, "+8613812345678", "", {}),
        (3, "+8613912345678", "", {}),
    ]


def test_quoted_fields_with_newlines_and_commas(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "q.csv", ["姓名,电话,备注", '张三,13812345678,"想要, 三居室\n南向"'])
    _, staged, _ = import_file(path)
    (lead,) = staged
    assert lead.extras == {"备注": "想要, 三居室\n南向"}
    assert lead.cells == ["张三", "13812345678", "想要, 三居室\n南向"]


def test_utf16_tab_separated_export(tmp_path: Path) -> None:
    path = tmp_path / "unicode.txt"
    path.write_bytes("姓名\t电话\r\n张三\t13812345678\r\n".encode("utf-16"))
    assert list(read_rows(path, max_rows=10)) == [["姓名", "电话"], ["张三", "13812345678"]]


def test_xlsx_named_file_that_is_really_csv(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "leads.xlsx", [",".join(CN_HEADER), *CN_ROWS])
    assert detect_kind(path) == "csv"
    _, staged, _ = import_file(path)
    assert [(lead.name, lead.phone) for lead in staged] == [
        ("张三", "+8613812345678"),
        ("李四", "+8613912345678"),
        ("王五", "+861012345678"),
    ]


def test_csv_is_read_lazily(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "big.csv", ["电话", *(f"138{n:08d}" for n in range(5))])
    rows = read_rows(path, max_rows=3)
    assert next(rows) == ["电话"]
    assert [next(rows) for _ in range(3)] == [["13800000000"], ["13800000001"], ["13800000002"]]
    with pytest.raises(SpreadsheetError) as caught:
        next(rows)
    assert caught.value.code == "too_many_rows"
    assert "3" in caught.value.message


def test_too_many_rows_ignores_blank_rows_and_allows_the_limit(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "rows.csv", ["电话", "13812345678", "", ",", "13912345678"])
    assert len(list(read_rows(path, max_rows=2))) == 5
    with pytest.raises(SpreadsheetError) as caught:
        list(read_rows(path, max_rows=1))
    assert caught.value.code == "too_many_rows"


# --- reading XLSX ----------------------------------------------------------


def test_xlsx_with_chinese_template_area_and_formula(tmp_path: Path) -> None:
    path = write_xlsx(
        tmp_path / "leads.xlsx",
        [
            [*CN_HEADER_AREA, "备注", "来访日期"],
            [1, "阳光花园", "张三", 13812345678, "浦东", "=1+1", datetime.date(2024, 5, 1)],
            [2, "翠湖天地", "李四", "139-1234-5678", "徐汇", "老客户", None],
            [3, "滨江一号", "王五", 1012345678, None, None, datetime.datetime(2024, 5, 2, 14, 30)],
        ],
    )
    assert detect_kind(path) == "xlsx"
    rows = list(read_rows(path, max_rows=10))
    assert rows[1][3] == "13812345678"  # not 1.3812345678E10 nor 13812345678.0
    assert rows[1][0] == "1"
    assert rows[1][5] != "2"  # the formula was not evaluated
    assert rows[1][6] == "2024-05-01" or rows[1][6].startswith("2024-05-01T00:00")

    columns, staged, chunks = import_file(path)
    assert (columns.property, columns.name, columns.phone, columns.area) == (1, 2, 3, 4)
    first, second, third = staged
    assert (first.name, first.phone, first.area, first.property) == (
        "张三",
        "+8613812345678",
        "浦东",
        "阳光花园",
    )
    assert first.extras.get("备注") != "2"
    assert first.extras["来访日期"] == rows[1][6]
    assert first.cells == rows[1]
    assert second.extras == {"备注": "老客户"}
    assert second.phone == "+8613912345678"
    # A landline typed as a number loses its trunk 0; it is still the same number.
    assert third.phone == "+861012345678"
    assert third.area == ""
    assert third.extras == {"来访日期": "2024-05-02T14:30:00"}
    assert [lead.row_number for lead in staged] == [2, 3, 4]
    assert rows_read(chunks) == 3


def test_xlsx_named_csv_is_read_as_workbook(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "export.csv", [["Name", "Phone"], ["Ann", "13812345678"]])
    assert detect_kind(path) == "xlsx"
    assert list(read_rows(path, max_rows=10)) == [["Name", "Phone"], ["Ann", "13812345678"]]


def test_xlsx_too_many_rows(tmp_path: Path) -> None:
    path = write_xlsx(tmp_path / "big.xlsx", [["电话"], *([f"13{n:09d}"] for n in range(8))])
    assert len(list(read_rows(path, max_rows=8))) == 9
    with pytest.raises(SpreadsheetError) as caught:
        list(read_rows(path, max_rows=7))
    assert caught.value.code == "too_many_rows"


def test_xlsx_header_only_and_empty_workbook(tmp_path: Path) -> None:
    header_only = write_xlsx(tmp_path / "header.xlsx", [CN_HEADER])
    _, staged, chunks = import_file(header_only)
    assert staged == []
    assert [(chunk.rows_read, chunk.staged) for chunk in chunks] == [(0, 0)]

    empty = write_xlsx(tmp_path / "empty.xlsx", [])
    with pytest.raises(SpreadsheetError) as caught:
        read_rows(empty, max_rows=10)
    assert caught.value.code == "empty_file"


# --- files that are not spreadsheets ---------------------------------------

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(SpreadsheetError) as caught:
        read_rows(path, max_rows=10)
    assert caught.value.code == "empty_file"
    assert caught.value.message


def test_blank_lines_only_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_bytes(codecs.BOM_UTF8 + b"\r\n  \r\n,,\r\n")
    with pytest.raises(SpreadsheetError) as caught:
        read_rows(path, max_rows=10)
    assert caught.value.code == "empty_file"


def test_header_only_csv(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "header.csv", [",".join(CN_HEADER)])
    _, staged, chunks = import_file(path)
    assert staged == []
    assert [(chunk.rows_read, chunk.staged) for chunk in chunks] == [(0, 0)]
    assert b"".join(chunks[0].pieces) == b""


def test_png_renamed_csv(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(PNG)
    with pytest.raises(SpreadsheetError) as caught:
        read_rows(path, max_rows=10)
    assert caught.value.code == "not_a_spreadsheet"
    assert "PNG" in caught.value.message


def test_random_binary_renamed_csv(tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_bytes(random.Random(1234).randbytes(4096))
    with pytest.raises(SpreadsheetError) as caught:
        read_rows(path, max_rows=10)
    assert caught.value.code == "not_a_spreadsheet"


def test_binary_without_nul_bytes(tmp_path: Path) -> None:
    data = bytes(b for b in random.Random(99).randbytes(4096) if b)
    path = tmp_path / "noise.csv"
    path.write_bytes(data)
    with pytest.raises(SpreadsheetError) as caught:
        read_rows(path, max_rows=10)
    assert caught.value.code == "not_a_spreadsheet"


def test_nul_byte_after_the_sniffed_head(tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    body = "".join(f"13{n:09d}\r\n" for n in range(10_000)).encode()
    path.write_bytes(b"phone\r\n" + body + b"\x00\x01\x02\r\n")
    rows = read_rows(path, max_rows=100_000)
    with pytest.raises(SpreadsheetError) as caught:
        list(rows)
    assert caught.value.code == "not_a_spreadsheet"


def test_zip_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "leads.xlsx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(SpreadsheetError) as caught:
        list(read_rows(path, max_rows=10))
    assert caught.value.code == "not_a_spreadsheet"


def test_ole_file_that_is_not_a_workbook(tmp_path: Path) -> None:
    path = tmp_path / "leads.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(1024))
    assert detect_kind(path) == "xls"
    with pytest.raises(SpreadsheetError) as caught:
        list(read_rows(path, max_rows=10))
    assert caught.value.code == "not_a_spreadsheet"


# --- template detection ----------------------------------------------------


def test_english_headers_case_insensitive(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "en.csv",
        ["No.,PROJECT,Name,Phone Number,Region,Budget", "1,Sunny Garden,Ann Lee,13812345678,Pudong,3M"],
    )
    columns, staged, _ = import_file(path)
    assert (columns.index, columns.property, columns.name, columns.phone, columns.area) == (0, 1, 2, 3, 4)
    (lead,) = staged
    assert (lead.name, lead.phone, lead.area, lead.property) == (
        "Ann Lee",
        "+8613812345678",
        "Pudong",
        "Sunny Garden",
    )
    assert lead.extras == {"Budget": "3M"}


@pytest.mark.parametrize(
    ("header", "field", "column"),
    [
        (["#", "mobile"], "phone", 1),
        (["tel", "name"], "phone", 0),
        (["Index", "Area", "TEL"], "area", 1),
        (["序号", "楼盘", "姓名", "电话", "地区"], "area", 4),
        (["电话(必填)", "姓名"], "phone", 0),
        (["客户手机", "意向楼盘"], "property", 1),
        (["phone_number"], "phone", 0),
    ],
)
def test_header_variants(header: list[str], field: str, column: int) -> None:
    assert getattr(detect_columns(header), field) == column


def test_first_matching_column_wins_and_others_are_kept() -> None:
    columns = detect_columns(["手机", "电话", "", "备注", "备注"])
    assert columns.phone == 0
    assert columns.extras == {1: "电话", 2: "column_3", 3: "备注", 4: "备注 (5)"}


def test_explicit_mapping(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "m.csv", ["a,b,c,d", "x,y,张三,13812345678"])
    columns, staged, _ = import_file(path, mapping={"phone": 3, "name": 2})
    assert (columns.phone, columns.name) == (3, 2)
    (lead,) = staged
    assert (lead.name, lead.phone, lead.extras) == ("张三", "+8613812345678", {"a": "x", "b": "y"})


@pytest.mark.parametrize(
    "mapping",
    [{"phone": 9}, {"phone": -1}, {"phone": 0, "name": 0}, {"phone": 0, "email": 1}, {"name": 0}],
)
def test_bad_explicit_mapping(mapping: dict[str, int]) -> None:
    with pytest.raises(TemplateError) as caught:
        detect_columns(["a", "b"], mapping)
    assert caught.value.code in {"bad_mapping", "missing_column"}


def test_wrong_template(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "foo.csv", ["foo,bar", "1,2"])
    with pytest.raises(TemplateError) as caught:
        import_file(path)
    assert caught.value.code == "wrong_template"
    assert "'foo', 'bar'" in caught.value.message
    assert "电话" in caught.value.message


def test_missing_phone_column_message() -> None:
    with pytest.raises(TemplateError) as caught:
        detect_columns(["序号", "楼盘", "姓名"])
    assert caught.value.code == "missing_column"
    assert (
        caught.value.message
        == "no phone column: found headers '序号', '楼盘', '姓名' — expected 电话 or phone"
    )


def test_headerless_file_gets_a_hint() -> None:
    with pytest.raises(TemplateError) as caught:
        detect_columns(["张三", "13812345678"])
    assert caught.value.code == "wrong_template"
    assert "header row" in caught.value.message


# --- staging CSV -----------------------------------------------------------


def test_repeated_and_invalid_phones_are_all_staged(tmp_path: Path) -> None:
    # Python stages every non-blank row, an invalid phone as NULL, and marks repeats within its
    # chunk; repeats across chunks are Postgres' to find (tests/test_import.py).
    path = write_csv(
        tmp_path / "dups.csv",
        [
            ",".join(CN_HEADER),
            "1,阳光花园,张三,13812345678",
            "2,阳光花园,张三again,+86 138-1234-5678",  # same number, other spelling
            "3,阳光花园,李四,12345",
            ",,,",
            "4,阳光花园,王五,",
            "5,阳光花园,赵六,13912345678",
            "6,阳光花园,孙七,139 1234 5678",
        ],
    )
    _, staged, chunks = import_file(path)
    assert [(lead.row_number, lead.name, lead.phone, lead.repeat) for lead in staged] == [
        (2, "张三", "+8613812345678", False),
        (3, "张三again", "+8613812345678", True),
        (4, "李四", None, False),
        (6, "王五", None, False),
        (7, "赵六", "+8613912345678", False),
        (8, "孙七", "+8613912345678", True),
    ]
    # A new chunk starts afresh: the second row of a phone in another chunk is not a repeat here.
    _, staged, _ = import_file(path, chunk_rows=1)
    assert not any(lead.repeat for lead in staged)
    assert staged[2].cells == ["3", "阳光花园", "李四", "12345"]
    assert staged[3].cells == ["4", "阳光花园", "王五", ""]
    assert [(chunk.rows_read, chunk.staged) for chunk in chunks] == [(7, 6)]


def test_blank_rows_are_skipped_but_numbered_and_long_rows_keep_their_cells() -> None:
    columns = detect_columns(["姓名", "电话"])
    staged, chunks = stage([["  ", ""], [" 张三 ", "13812345678", "extra"], ["", "13812345678"]], columns)
    assert staged == [
        Staged(
            3,
            "+8613812345678",
            False,
            "张三",
            "",
            None,
            {"column_3": "extra"},
            [" 张三 ", "13812345678", "extra"],
        ),
        Staged(4, "+8613812345678", True, "", "", None, {}, ["", "13812345678"]),
    ]
    assert [(chunk.rows_read, chunk.staged) for chunk in chunks] == [(3, 2)]


def test_short_rows_and_blank_names() -> None:
    columns = detect_columns(CN_HEADER_AREA)
    (lead,), _ = stage([["1", "", "", "13812345678"]], columns)
    assert (lead.name, lead.area, lead.property, lead.extras) == ("", "", None, {})
    assert (lead.phone, lead.row_number, lead.cells) == ("+8613812345678", 2, ["1", "", "", "13812345678"])


def test_region_applies_to_national_numbers() -> None:
    columns = detect_columns(["phone"])
    (lead,), _ = stage([["(415) 555-2671"]], columns, region="US")
    assert lead.phone == "+14155552671"
    (lead,), _ = stage([["(415) 555-2671"]], columns, region="CN")
    assert lead.phone == "+864155552671"


def test_staging_chunks_cover_chunk_rows_file_rows_in_pieces_of_whole_lines(tmp_path: Path) -> None:
    chunk_rows = 2 * PIECE_ROWS + 200
    lines = []
    for number in range(2, chunk_rows + 102):  # file row numbers: the header is row 1
        if number % 10 == 0:
            lines.append("" if number % 20 else ",,")  # blank rows, both kinds
        else:
            note = '"第一行\n第二行"' if number % 7 == 0 else "note"  # CSV lines of two text lines
            lines.append(f"客户{number},138{number:08d},{note}")
    path = write_csv(tmp_path / "big.csv", ["姓名,电话,备注", *lines])
    _, staged, chunks = import_file(path, max_rows=10_000, chunk_rows=chunk_rows)

    assert [chunk.rows_read for chunk in chunks] == [chunk_rows, 100]
    non_blank = [number for number in range(2, chunk_rows + 102) if number % 10]
    expected = [
        [number for number in non_blank if number < chunk_rows + 2],
        [number for number in non_blank if number >= chunk_rows + 2],
    ]
    assert [chunk.staged for chunk in chunks] == [len(numbers) for numbers in expected]
    assert [lead.row_number for lead in staged] == non_blank
    assert staged[5].extras == {"备注": "第一行\n第二行"}  # row 7
    for chunk, numbers in zip(chunks, expected, strict=True):
        assert [lead.row_number for lead in parse_staging(b"".join(chunk.pieces))] == numbers
        # Each piece is whole CSV lines on its own: it parses alone and ends a line.
        assert all(piece.endswith(b"\n") for piece in chunk.pieces)
        sizes = [len(parse_staging(piece)) for piece in chunk.pieces]
        full, rest = divmod(len(numbers), PIECE_ROWS)
        assert sizes == [PIECE_ROWS] * full + ([rest] if rest else [])
    assert len(chunks[0].pieces) > 1


def test_staging_chunks_end_with_an_empty_chunk_on_a_chunk_boundary(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "even.csv", ["电话", "13812345678", "", "13912345678", "18612345678"])
    _, staged, chunks = import_file(path, chunk_rows=2)
    assert [(chunk.rows_read, chunk.staged) for chunk in chunks] == [(2, 1), (2, 2), (0, 0)]
    assert chunks[-1].pieces == []
    assert [(lead.row_number, lead.phone) for lead in staged] == [
        (2, "+8613812345678"),
        (4, "+8613912345678"),
        (5, "+8618612345678"),
    ]


# -- the fast path for Chinese mobiles agrees with phonenumbers --------------------------------


def test_cn_mobile_fast_path_agrees_with_phonenumbers_on_every_prefix():
    rng = random.Random(7)
    for prefix in range(10000, 20000):
        for _ in range(3):
            national = f"{prefix}{rng.randrange(10**6):06d}"
            for typed in (national, f"+86 {national[:3]} {national[3:7]} {national[7:]}", f"0086{national}"):
                assert normalise_phone(typed, "CN") == _to_e164(national, "CN"), typed


@given(st.from_regex(r"1[0-9]{10}", fullmatch=True), st.sampled_from(["CN", "US", "GB"]))
def test_fast_path_respects_the_default_region(national, region):
    assert normalise_phone(national, region) == _to_e164(national, region)
    assert normalise_phone("+86" + national, region) == _to_e164("+86" + national, region)


def test_a_zip_bomb_disguised_as_xlsx_is_refused_before_inflating(tmp_path):
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            chunk = b"0" * (1 << 20)
            for _ in range(450):  # 450 MB of zeros, a few hundred KB packed
                sheet.write(chunk)
    assert bomb.stat().st_size < 5 * (1 << 20)
    with pytest.raises(SpreadsheetError) as refused:
        next(read_rows(bomb, max_rows=10))
    assert refused.value.code == "not_a_spreadsheet" and "unsafe" in refused.value.message


def test_carriage_returns_and_separators_typed_into_cells_survive_staging() -> None:
    columns = detect_columns(["姓名", "电话", "备注"])
    row = ["张\r三", "13812345678", "a\x1fb"]
    (lead,), chunks = stage([row], columns)
    # A bare "\r" is quoted (Postgres refuses it unquoted); the separator inside a cell is a space.
    assert b'"\xe5\xbc\xa0\r\xe4\xb8\x89"' in chunks[0].pieces[0]
    assert (lead.name, lead.extras, lead.cells) == (
        "张\r三",
        {"备注": "a\x1fb"},
        ["张\r三", "13812345678", "a b"],
    )
