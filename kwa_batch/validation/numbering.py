"""libphonenumber's ``parse`` and ``is_valid_number``, for a whole column at once.

phonenumbers' own metadata — each region's number patterns and possible lengths, national
prefixes and their transform rules, international prefixes, the leading digits that tell
apart the regions sharing a country code — is compiled into RE2 expressions and lookup
tables, and run by pyarrow over the column, following ``parse`` and ``is_valid_number``
step by step. Nothing is hand-written: the tables come from phonenumbers (and
``_test_number_length`` itself is tabulated, per length). Rows this cannot follow exactly
are marked ``undecided`` and :mod:`kwa_batch.validation.phones` checks them one by one.

Strings here are pyarrow ``large_string`` arrays of ASCII digits, read through their
buffers with numpy where that is faster than a compute call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

__all__ = ["E164_MAX", "E164_MIN", "Reading", "international_column", "national_column"]

#: E.164's own bounds on the digits of a number, country code included.
E164_MIN, E164_MAX = 7, 15
# libphonenumber's own limits (phonenumberutil._MIN/_MAX_LENGTH_FOR_NSN).
_NSN_MIN, _NSN_MAX = 2, 17
_NSN_TYPES = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)
# One character standing for the length of a national number, so that one RE2 expression
# can test "length in this desc's possible lengths" and "matches its pattern" at once.
_LENGTH_CHARS = "ABCDEFGHIJKLMNOPQR"  # lengths 0..17


def _name_groups(pattern: str) -> tuple[str, int]:
    """``pattern`` with each capturing group named ``g1``, ``g2``… (pyarrow's
    ``extract_regex`` wants names), and how many there are."""
    out: list[str] = []
    count = 0
    escaped = in_class = False
    for position, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(" and not pattern.startswith("?", position + 1):
            count += 1
            out.append(f"(?P<g{count}>")
            continue
        out.append(char)
    return "".join(out), count


def _length_class(lengths: Iterable[int]) -> str | None:
    chars = "".join(_LENGTH_CHARS[n] for n in sorted(set(lengths)) if 0 <= n < len(_LENGTH_CHARS))
    return f"[{chars}]" if chars else None


def _desc_expression(desc: Any) -> str | None:
    """``[lengths](?:pattern)`` for a number desc, or None when it admits no number."""
    if desc is None or not desc.national_number_pattern:
        return None
    lengths = list(desc.possible_length)
    if lengths:
        chars = _length_class(n for n in lengths if n >= 0)
        if chars is None:
            return None
    else:
        chars = "."
    return f"{chars}(?:{desc.national_number_pattern})"


class _Plan:
    """One region's metadata as RE2 expressions and lookup tables."""

    def __init__(self, metadata: Any) -> None:
        from phonenumbers.phonenumberutil import ValidationResult, _test_number_length

        self.metadata = metadata
        self.country_code = str(metadata.country_code)
        general = metadata.general_desc.national_number_pattern or "(?!)"
        self.general = f"^(?:{general})$"
        expression = _desc_expression(metadata.general_desc)
        self.general_keyed = f"^{expression}$" if expression else None
        parts = [e for e in (_desc_expression(getattr(metadata, t)) for t in _NSN_TYPES) if e]
        self.types_keyed = f"^(?:{'|'.join(parts)})$" if parts else None
        self.leading_digits = (
            f"^(?:{metadata.leading_digits})" if metadata.leading_digits is not None else None
        )
        self.idd = (
            f"^(?:{metadata.international_prefix})" if metadata.international_prefix else None
        )
        prefix = metadata.national_prefix_for_parsing
        self.prefix = f"^(?:{prefix})" if prefix else None
        self.literal_prefix = prefix if prefix and prefix.isdigit() else None
        rule = metadata.national_prefix_transform_rule
        self.rule = rule or None
        self.named_prefix: str | None = None
        self.last_group: str | None = None
        # Whether the fast path can follow this region's national prefix exactly: a
        # transform applies only when the prefix's last group took part in the match, which
        # pyarrow shows as an empty capture, so that group must never match nothing.
        self.exact = True
        if prefix and self.rule:
            named, groups = _name_groups(prefix)
            if groups == 0:
                self.exact = False
            else:
                self.named_prefix = f"^(?:{named})"
                self.last_group = f"g{groups}"
                self.exact = re.fullmatch(_group_body(prefix, groups), "") is None
        # _test_number_length depends on the length alone: tabulate it with the library's
        # own function, for every length the column can hold.
        results = [_test_number_length("0" * n, metadata) for n in range(_NSN_MAX + 300)]
        refused = (
            ValidationResult.TOO_SHORT,
            ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
            ValidationResult.INVALID_LENGTH,
        )
        self.strip_allowed = np.array([r not in refused for r in results])
        self.too_long = np.array([r == ValidationResult.TOO_LONG for r in results])


def _group_body(pattern: str, group: int) -> str:
    """The text inside the ``group``-th capturing group of ``pattern``."""
    named, _ = _name_groups(pattern)
    opening = f"(?P<g{group}>"
    start = named.index(opening) + len(opening)
    depth, escaped, in_class = 1, False, False
    for position in range(start, len(named)):
        char = named[position]
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return re.sub(r"\(\?P<g\d+>", "(", named[start:position])
    return named[start:]


@cache
def _plan(country_code: int, region: str) -> _Plan | None:
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    return _Plan(metadata) if metadata is not None else None


@cache
def _region_plan(region: str) -> _Plan | None:
    metadata = PhoneMetadata.metadata_for_region(region, None)
    return _Plan(metadata) if metadata is not None else None


def _main_plan(country_code: int) -> _Plan | None:
    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if not regions:
        return None
    return _plan(country_code, regions[0])


# Country codes by their digits: _KNOWN[size][code] is True when ``code`` (of ``size``
# digits) is one (phonenumberutil._extract_country_code tries 1, 2, then 3 digits).
_KNOWN = {size: np.zeros(10**size, dtype=bool) for size in (1, 2, 3)}
for _code in COUNTRY_CODE_TO_REGION_CODE:
    _KNOWN[len(str(_code))][_code] = True


_NO_BYTES = np.zeros(1, dtype=np.uint8)


def _buffers(values: pa.Array) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The offsets and bytes of a large_string array, without copying."""
    buffers = values.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int64)[
        values.offset : values.offset + len(values) + 1
    ]
    if buffers[2] is None or buffers[2].size == 0:
        return offsets, _NO_BYTES  # every string empty: one byte, never read as text
    return offsets, np.frombuffer(buffers[2], dtype=np.uint8)


def _lengths(values: pa.Array) -> np.ndarray[Any, Any]:
    """Lengths of ASCII strings (digit strings here), from the offsets alone."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64)
    offsets, _ = _buffers(values)
    return np.diff(offsets)


def byte_at(values: pa.Array, position: int) -> np.ndarray[Any, Any]:
    """Each string's byte at ``position`` (-1 where it is shorter)."""
    offsets, data = _buffers(values)
    if len(data) == 0:
        data = np.zeros(1, np.uint8)
    at = offsets[:-1] + position
    inside = at < offsets[1:]
    return np.where(inside, data[np.minimum(at, len(data) - 1)].astype(np.int64), -1)


def digits_only(values: pa.Array) -> np.ndarray[Any, Any]:
    """Which strings are digits, with an optional leading '+' (read from the bytes)."""
    offsets, data = _buffers(values)
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=bool)
    starts, ends = offsets[:-1], offsets[1:]
    used = data[offsets[0] : offsets[-1]]
    if len(used) == 0:
        return np.zeros(n, dtype=bool)
    other = ((used < 48) | (used > 57)).view(np.uint8)
    first = starts[ends > starts] - offsets[0]
    plus_first = np.zeros(len(used), dtype=bool)
    plus_first[first] = used[first] == ord("+")
    other[plus_first] = 0
    counts = np.zeros(n, dtype=np.int64)
    filled = ends > starts
    if filled.any():
        counts[filled] = np.add.reduceat(other, starts[filled] - offsets[0])
    digits = ends - starts - plus_first[np.minimum(starts - offsets[0], len(used) - 1)]
    result: np.ndarray[Any, Any] = filled & (counts == 0) & (digits > 0)
    return result


def _country_codes(digits: pa.Array) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """The country code ``parse`` reads at the start of each digit string, and how many
    digits it has (0: none), as ``_extract_country_code`` does: 1, 2, then 3 digits."""
    offsets, data = _buffers(digits)
    starts, ends = offsets[:-1], offsets[1:]
    last = max(len(data) - 1, 0)
    digit = []
    for k in range(3):
        at = starts + k
        digit.append(np.where(at < ends, data[np.minimum(at, last)].astype(np.int64) - 48, -1))
    sizes = np.zeros(len(digits), dtype=np.int64)
    codes = np.zeros(len(digits), dtype=np.int64)
    code = np.zeros(len(digits), dtype=np.int64)
    alive = digit[0] > 0
    for size in (1, 2, 3):
        alive &= digit[size - 1] >= 0
        code = code * 10 + np.maximum(digit[size - 1], 0)
        hit = alive & (sizes == 0) & _KNOWN[size][np.clip(code, 0, 10**size - 1)]
        sizes[hit] = size
        codes[hit] = code[hit]
    return codes, sizes


def drop_prefix(values: pa.Array, counts: np.ndarray[Any, Any]) -> pa.Array:
    """Each string without its first ``counts`` bytes (ASCII digit strings), built from the
    buffers in one pass rather than one slicing call per prefix length."""
    offsets, data = _buffers(values)
    lengths = np.diff(offsets)
    counts = np.minimum(counts, lengths)
    if not counts.any():
        return values
    base = offsets[0]
    used = data[base : offsets[-1]]
    starts = offsets[:-1] - base
    total = int(counts.sum())
    within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = np.ones(len(used), dtype=bool)
    keep[np.repeat(starts, counts) + within] = False
    kept = used[keep]
    new_offsets = np.r_[0, np.cumsum(lengths - counts)].astype(np.int64)
    return pa.LargeStringArray.from_buffers(
        len(values), pa.py_buffer(new_offsets), pa.py_buffer(kept.tobytes())
    )


def match(values: pa.Array, pattern: str) -> np.ndarray[Any, Any]:
    """Which strings match ``pattern`` (RE2; null never does)."""
    if len(values) == 0:
        return np.zeros(0, dtype=bool)
    out = pc.match_substring_regex(values, pattern)
    return np.asarray(out.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def take(values: pa.Array, mask: np.ndarray[Any, Any]) -> pa.Array:
    """The strings where ``mask`` is true."""
    return values.filter(pa.array(mask))


def _strip_national_prefix(
    numbers: pa.Array, plan: _Plan, undecided: np.ndarray[Any, Any]
) -> pa.Array:
    """``_maybe_strip_national_prefix_carrier_code``, for a column. Rows this cannot follow
    exactly are marked in ``undecided``."""
    if plan.prefix is None or len(numbers) == 0:
        return numbers
    if plan.literal_prefix is not None:
        hit = np.asarray(
            pc.starts_with(numbers, plan.literal_prefix).to_numpy(zero_copy_only=False), dtype=bool
        )
    else:
        hit = match(numbers, plan.prefix)
    if not hit.any():
        return numbers
    if not plan.exact:
        undecided |= hit
        return numbers
    subset = take(numbers, hit)
    stripped = pc.replace_substring_regex(subset, plan.prefix, "", max_replacements=1)
    if plan.rule and plan.named_prefix and plan.last_group:
        groups = pc.extract_regex(subset, plan.named_prefix)
        took_part = pc.greater(pc.utf8_length(groups.field(plan.last_group)), 0)
        transformed = pc.replace_substring_regex(subset, plan.prefix, plan.rule, max_replacements=1)
        stripped = pc.if_else(took_part, transformed, stripped)
    viable_before = match(subset, plan.general)
    viable_after = match(stripped, plan.general)
    kept = pc.if_else(pa.array(viable_before & ~viable_after), subset, stripped)
    return pc.replace_with_mask(numbers, pa.array(hit), kept)


def _parse_national(numbers: pa.Array, plan: _Plan, undecided: np.ndarray[Any, Any]) -> pa.Array:
    """The end of ``parse``: strip a national prefix when what remains has a possible
    length. Returns the national significant numbers."""
    if len(numbers) == 0 or plan.prefix is None:
        return numbers
    candidate = _strip_national_prefix(numbers, plan, undecided)
    lengths = np.minimum(_lengths(candidate), len(plan.strip_allowed) - 1)
    allowed = plan.strip_allowed[lengths]
    return pc.if_else(pa.array(allowed), candidate, numbers)


def _keyed(numbers: pa.Array) -> pa.Array:
    lengths = np.clip(_lengths(numbers), 0, len(_LENGTH_CHARS) - 1)
    prefix = _LENGTH_ARRAY.take(pa.array(lengths))
    return _join(prefix, numbers)


_LENGTH_ARRAY = pa.array(list(_LENGTH_CHARS), type=pa.large_string())
_NOTHING = pa.scalar("", type=pa.large_string())


def _join(*parts: Any) -> pa.Array:
    return pc.binary_join_element_wise(*parts, _NOTHING)


def _valid_in(plan: _Plan, keyed: pa.Array) -> np.ndarray[Any, Any]:
    if plan.general_keyed is None or plan.types_keyed is None:
        return np.zeros(len(keyed), dtype=bool)
    general = match(keyed, plan.general_keyed)
    if not general.any():
        return general
    out = np.zeros(len(keyed), dtype=bool)
    out[general] = match(take(keyed, general), plan.types_keyed)
    return out


def _is_valid(
    country_code: int, nsn: pa.Array, keyed: pa.Array, lengths: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """``is_valid_number`` for numbers sharing one country code, by their NSN (and the
    NSN keyed by its length, see :func:`_keyed`)."""
    possible = (lengths >= _NSN_MIN) & (lengths <= _NSN_MAX)
    out = np.zeros(len(nsn), dtype=bool)
    if not possible.any():
        return out
    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    if len(regions) == 1:
        plan = _plan(country_code, regions[0])
        if plan is not None:
            out[possible] = _valid_in(plan, take(keyed, possible))
        return out
    # _region_code_for_number_from_list: the first region whose leading digits match, or
    # (for a region without them) where the number is valid, decides.
    undecided = possible.copy()
    for block in _region_blocks(country_code):
        if not undecided.any():
            break
        if block.any_leading is not None:
            # A run of regions with leading digits: rows that match none of them skip it.
            rows = np.flatnonzero(undecided)
            maybe = rows[match(take(nsn, undecided), block.any_leading)]
            for plan in block.plans:
                if not len(maybe):
                    break
                assert plan.leading_digits is not None
                chosen = match(nsn.take(pa.array(maybe)), plan.leading_digits)
                picked = maybe[chosen]
                out[picked] = _valid_in(plan, keyed.take(pa.array(picked)))
                undecided[picked] = False
                maybe = maybe[~chosen]
            continue
        plan = block.plans[0]
        rows = np.flatnonzero(undecided)
        picked = rows[_valid_in(plan, take(keyed, undecided))]
        out[picked] = True
        undecided[picked] = False
    return out


@dataclass
class _Block:
    """Consecutive regions of a shared country code: one without leading digits, or a run
    of regions with them (and a pattern matching any of theirs)."""

    plans: list[_Plan]
    any_leading: str | None


@cache
def _region_blocks(country_code: int) -> tuple[_Block, ...]:
    blocks: list[_Block] = []
    for region in COUNTRY_CODE_TO_REGION_CODE.get(country_code, ()):
        plan = _region_plan(region)
        if plan is None:
            continue
        if plan.leading_digits is None:
            blocks.append(_Block([plan], None))
        elif blocks and blocks[-1].any_leading is not None:
            blocks[-1].plans.append(plan)
        else:
            blocks.append(_Block([plan], ""))
    for block in blocks:
        if block.any_leading is not None:
            block.any_leading = (
                "^(?:" + "|".join(f"(?:{p.metadata.leading_digits})" for p in block.plans) + ")"
            )
    return tuple(blocks)


@dataclass
class Reading:
    """One reading of a column of digit strings.

    Attributes:
        e164: the E.164 form where valid, else null.
        valid: libphonenumber calls it valid and it has 7 to 15 digits.
        bounds: the digit count where libphonenumber calls it valid but E.164 cannot hold
            it, else 0.
        country_code: the country code read (0 when none), for reasons.
        undecided: rows this path cannot follow exactly (checked one by one instead).
    """

    e164: pa.Array
    valid: np.ndarray[Any, Any]
    bounds: np.ndarray[Any, Any]
    country_code: np.ndarray[Any, Any]
    undecided: np.ndarray[Any, Any]

    def select(self, mask: np.ndarray[Any, Any]) -> Reading:
        return Reading(
            take(self.e164, mask),
            self.valid[mask],
            self.bounds[mask],
            self.country_code[mask],
            self.undecided[mask],
        )


def null_strings(n: int) -> pa.Array:
    """``n`` missing strings."""
    return pa.nulls(n, type=pa.large_string())


def _finish(groups: list[tuple[int, np.ndarray[Any, Any], pa.Array]], reading: Reading) -> None:
    """Verdicts for groups of rows sharing a country code: (code, rows, NSNs). Lengths,
    keys and E.164 forms are computed once for all groups; only the patterns are per code."""
    if not groups:
        return
    nsn = pa.concat_arrays([g[2] for g in groups])
    rows = np.concatenate([g[1] for g in groups])
    lengths = _lengths(nsn)
    keyed = _keyed(nsn)
    sizes = np.array([len(g[1]) for g in groups])
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    ok = np.zeros(len(rows), dtype=bool)
    for (code, _, _), start, size in zip(groups, starts, sizes, strict=True):
        ok[start : start + size] = _is_valid(
            code, nsn.slice(start, size), keyed.slice(start, size), lengths[start : start + size]
        )
    ok &= ~reading.undecided[rows]
    group = np.repeat(np.arange(len(groups)), sizes)
    code_lengths = np.array([len(str(g[0])) for g in groups])
    total = code_lengths[group] + lengths
    inside = (total >= E164_MIN) & (total <= E164_MAX)
    keep = ok & inside
    reading.valid[rows[keep]] = True
    reading.bounds[rows[ok & ~inside]] = total[ok & ~inside]
    if keep.any():
        prefixes = pa.array([f"+{g[0]}" for g in groups], type=pa.large_string())
        e164 = _join(prefixes.take(pa.array(group[keep])), take(nsn, keep))
        reading.e164 = scatter(len(reading.valid), [(rows[keep], e164)])


def international_column(digits: pa.Array) -> Reading:
    """``parse("+" + digits)`` then ``is_valid_number``, for a column of digit strings."""
    n = len(digits)
    codes, sizes = _country_codes(digits)
    reading = Reading(
        null_strings(n),
        np.zeros(n, dtype=bool),
        np.zeros(n, dtype=np.int64),
        codes,
        np.zeros(n, dtype=bool),
    )
    # TOO_SHORT_AFTER_IDD: two digits or fewer after the '+' are never a number.
    parsed = (sizes > 0) & (_lengths(digits) > _NSN_MIN)
    candidates = np.flatnonzero(parsed)
    if not len(candidates):
        return reading
    # Rows grouped by country code, so that each group is a slice of one sorted column.
    order = candidates[np.argsort(codes[candidates].astype(np.int16), kind="stable")]
    ordered = codes[order]
    after_code = drop_prefix(digits.take(pa.array(order)), sizes[order])
    groups: list[tuple[int, np.ndarray[Any, Any], pa.Array]] = []
    cuts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1], True])
    for start, stop in pairwise(cuts):
        code = int(ordered[start])
        rows = order[start:stop]
        numbers = after_code.slice(start, stop - start)
        plan = _main_plan(code)
        undecided = np.zeros(len(rows), dtype=bool)
        nsn = _parse_national(numbers, plan, undecided) if plan is not None else numbers
        reading.undecided[rows] = undecided
        groups.append((code, rows, nsn))
    _finish(groups, reading)
    return reading


def national_column(digits: pa.Array, region: str) -> Reading:
    """``parse(digits, region)`` then ``is_valid_number``, for a column of digit strings."""
    n = len(digits)
    plan = _region_plan(region)
    assert plan is not None  # check_region() lets only known regions through
    code = plan.country_code
    # A number that starts with the region's international prefix is read as a country
    # code and a number after it: rare enough to leave to libphonenumber itself.
    undecided = match(digits, plan.idd) if plan.idd else np.zeros(n, dtype=bool)
    reading = Reading(
        null_strings(n),
        np.zeros(n, dtype=bool),
        np.zeros(n, dtype=np.int64),
        np.full(n, int(code), dtype=np.int64),
        undecided,
    )
    main = _main_plan(int(code))
    # _maybe_extract_country_code: a number that starts with the region's own country code
    # loses it when that makes it viable (or it was too long as it was).
    numbers = digits
    from_code = np.zeros(n, dtype=bool)
    starts = match(digits, "^" + code) & ~undecided
    if starts.any():
        rows = np.flatnonzero(starts)
        full = take(digits, starts)
        inner = np.zeros(len(rows), dtype=bool)
        rest = _strip_national_prefix(pc.utf8_slice_codeunits(full, len(code)), plan, inner)
        lengths = np.minimum(_lengths(full), len(plan.too_long) - 1)
        general = plan.general
        chosen = (~match(full, general) & match(rest, general)) | plan.too_long[lengths]
        undecided[rows[inner]] = True
        from_code[rows[chosen]] = True
        numbers = pc.replace_with_mask(numbers, pa.array(from_code), take(rest, chosen))
    nsn = numbers
    for mask, used in ((from_code, main), (~from_code, plan)):
        if used is None or not mask.any():
            continue
        inner = np.zeros(int(mask.sum()), dtype=bool)
        parsed = _parse_national(take(numbers, mask), used, inner)
        undecided[np.flatnonzero(mask)[inner]] = True
        nsn = pc.replace_with_mask(nsn, pa.array(mask), parsed)
    _finish([(int(code), np.arange(n), nsn)], reading)
    return reading


def scatter(n: int, parts: list[tuple[np.ndarray[Any, Any], pa.Array]]) -> pa.Array:
    """A column of ``n`` strings holding each part's values at its rows, null elsewhere."""
    if not parts:
        return null_strings(n)
    if len(parts) == 1 and len(parts[0][0]) == n and (parts[0][0] == np.arange(n)).all():
        return parts[0][1]
    rows = np.concatenate([p[0] for p in parts])
    values = pa.concat_arrays([*(p[1] for p in parts), null_strings(1)])
    where = np.full(n, len(rows), dtype=np.int64)
    where[rows] = np.arange(len(rows))
    return values.take(pa.array(where))
