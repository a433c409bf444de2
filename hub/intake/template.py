"""Map a lead file's header row to the fields Lineup imports.

The customer template is ``序号 | 楼盘 | 姓名 | 电话`` with an optional area
column (``区域``/``地区``); English headers are accepted too, and an explicit
``{"field": column}`` mapping can override detection entirely.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from hub.intake.phones import normalise_phone

TemplateErrorCode = Literal["wrong_template", "missing_column", "bad_mapping"]

FIELDS = ("name", "phone", "area", "property", "index")
REQUIRED_FIELDS = ("phone",)

# Normalised header text (see `_normalise_header`) → field.
_EXACT: dict[str, str] = {
    **dict.fromkeys(
        [
            "电话",
            "电话号码",
            "手机",
            "手机号",
            "手机号码",
            "联系电话",
            "联系方式",
            "客户电话",
            "号码",
            "phone",
            "phonenumber",
            "phoneno",
            "mobile",
            "mobilephone",
            "mobilenumber",
            "tel",
            "telephone",
            "cell",
            "cellphone",
        ],
        "phone",
    ),
    **dict.fromkeys(
        [
            "姓名",
            "名字",
            "客户姓名",
            "客户名称",
            "客户",
            "联系人",
            "name",
            "fullname",
            "customername",
            "contact",
        ],
        "name",
    ),
    **dict.fromkeys(["区域", "地区", "所在区域", "所在地区", "区县", "area", "region", "district"], "area"),
    **dict.fromkeys(
        [
            "楼盘",
            "楼盘名称",
            "项目",
            "项目名称",
            "小区",
            "property",
            "propertyname",
            "project",
            "projectname",
        ],
        "property",
    ),
    **dict.fromkeys(["序号", "编号", "序", "index", "no", "#", "sn", "s/n"], "index"),
}
# Second pass for headers such as 客户手机 or 意向楼盘: a keyword inside the
# header, tried only for fields that no header matched exactly.
_CONTAINS: dict[str, tuple[str, ...]] = {
    "phone": ("电话", "手机", "phone", "mobile"),
    "property": ("楼盘", "项目"),
    "area": ("区域", "地区"),
    "name": ("姓名",),
}
_BRACKETED = re.compile(r"[(\[【].*?[)\]】]")
_PUNCTUATION = re.compile(r"[\s_\-.*:：]")


class TemplateError(Exception):
    """The header row does not match any template Lineup understands.

    ``code`` is ``wrong_template`` (no recognisable column at all),
    ``missing_column`` (a required column such as phone is absent) or
    ``bad_mapping`` (an explicit mapping is invalid); ``message`` is English and
    lists the headers that were found.
    """

    def __init__(self, code: TemplateErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: TemplateErrorCode = code
        self.message = message

    def __repr__(self) -> str:
        return f"TemplateError({self.code!r}, {self.message!r})"


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Zero-based column positions of the imported fields.

    ``extras`` maps every other column (except the ignored index column) to the
    attribute key its values are stored under: the header text, or
    ``column_N`` (1-based) for a blank header.
    """

    phone: int
    name: int | None = None
    area: int | None = None
    property: int | None = None
    index: int | None = None
    extras: dict[int, str] = field(default_factory=dict)


def detect_columns(header: list[str], mapping: Mapping[str, int] | None = None) -> ColumnMap:
    """Build a :class:`ColumnMap` from a header row, or from an explicit mapping.

    Without ``mapping`` the header texts are matched case-insensitively against
    the Chinese template (``序号``, ``楼盘``, ``姓名``, ``电话``, ``区域``/``地区``)
    and English names (``name``, ``phone``/``mobile``/``tel``/``phone number``,
    ``area``/``region``, ``property``/``project``, ``index``/``no``/``#``); the
    first column matching a field wins and later ones become extras.

    ``mapping`` (e.g. ``{"phone": 3, "name": 2}``, zero-based) skips detection;
    unmapped columns become extras.

    Raises :class:`TemplateError` when no phone column can be found, when no
    header is recognisable at all, or when ``mapping`` is invalid.
    """
    positions = _from_mapping(header, mapping) if mapping is not None else _detect(header)
    if "phone" not in positions:
        if not positions:
            raise TemplateError("wrong_template", _wrong_template_message(header))
        raise TemplateError(
            "missing_column",
            f"no phone column: found headers {_describe(header)} — expected 电话 or phone",
        )
    taken = set(positions.values())
    extras: dict[int, str] = {}
    used_keys: set[str] = set()
    for column, text in enumerate(header):
        if column in taken:
            continue
        key = text.strip() or f"column_{column + 1}"
        if key in used_keys:
            key = f"{key} ({column + 1})"
        used_keys.add(key)
        extras[column] = key
    return ColumnMap(
        phone=positions["phone"],
        name=positions.get("name"),
        area=positions.get("area"),
        property=positions.get("property"),
        index=positions.get("index"),
        extras=extras,
    )


def _normalise_header(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    # `电话(必填)`, `Phone [required]`: the bracketed note is not the name.
    text = _BRACKETED.sub("", text)
    return _PUNCTUATION.sub("", text)


def _detect(header: list[str]) -> dict[str, int]:
    normalised = [_normalise_header(text) for text in header]
    positions: dict[str, int] = {}
    for column, text in enumerate(normalised):
        found = _EXACT.get(text)
        if found is not None and found not in positions:
            positions[found] = column
    taken = set(positions.values())
    for name, keywords in _CONTAINS.items():
        if name in positions:
            continue
        for column, text in enumerate(normalised):
            if column not in taken and any(keyword in text for keyword in keywords):
                positions[name] = column
                taken.add(column)
                break
    return positions


def _from_mapping(header: list[str], mapping: Mapping[str, int]) -> dict[str, int]:
    unknown = sorted(set(mapping) - set(FIELDS))
    if unknown:
        raise TemplateError(
            "bad_mapping", f"unknown field(s) {', '.join(unknown)}: expected one of {', '.join(FIELDS)}"
        )
    seen: dict[int, str] = {}
    for name, column in mapping.items():
        if isinstance(column, bool) or not isinstance(column, int) or not 0 <= column < len(header):
            raise TemplateError(
                "bad_mapping",
                f"column {column!r} for {name} is outside the {len(header)} columns {_describe(header)}",
            )
        if column in seen:
            raise TemplateError("bad_mapping", f"column {column} is mapped to both {seen[column]} and {name}")
        seen[column] = name
    if "phone" not in mapping:
        raise TemplateError(
            "missing_column",
            f"no phone column in the mapping: found headers {_describe(header)} — expected 电话 or phone",
        )
    return dict(mapping)


def _describe(header: list[str], limit: int = 12) -> str:
    if not header:
        return "(none)"
    shown = [f"'{_clip(text.strip())}'" for text in header[:limit]]
    if len(header) > limit:
        shown.append(f"… ({len(header) - limit} more)")
    return ", ".join(shown)


def _clip(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _wrong_template_message(header: list[str]) -> str:
    message = (
        f"wrong template: found headers {_describe(header)} — expected 序号, 楼盘, 姓名, 电话 "
        "(optionally 区域) or name, phone, area, property"
    )
    if any(normalise_phone(text) for text in header):
        message += "; the first row looks like data, add a header row"
    return message
