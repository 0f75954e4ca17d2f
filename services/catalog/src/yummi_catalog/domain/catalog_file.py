"""Parsing a catalog.json into the items a dataset version holds, with the index and reason of every bad item.

A catalog.json is a JSON array of items or an object `{"items": [...], ...metadata}` (metadata is ignored).
An item must have `product_id`, `title` and `price` (rand, a number or a numeric string); it may have
`retailer` (default `woolworths`), `catalog_ref_id`, `url`, `image_url`, `category`, `available` (a JSON
boolean, default true) and `currency` (only `ZAR`); every other key is kept as an attribute. A JSON `null` in
an optional standard field means "missing". Limits (each refusal names the item's index and the reason):

- the file: valid UTF-8 JSON (a leading BOM is tolerated), at most `MAX_ITEMS` items, at least one;
- `product_id`: a string or a non-negative integer, 1..64 characters of `A-Z a-z 0-9 . _ : -`;
- `retailer`: lower-cased, 1..64 characters of `a-z 0-9 . _ -`;
- `title`: 1..500 characters after trimming; `category`: up to 200; `catalog_ref_id`: up to 64;
  none of them may hold control characters;
- `url`, `image_url`: up to 2,000 characters, `http(s)://` (a scheme-relative `//host/...` becomes https);
- `price`: 0 .. R10 billion, at most 2 decimals after rounding half-up to cents;
- attributes: at most 64 keys, nesting depth at most 8, at most 256 entries in any nested object or list,
  keys up to 128 characters, strings up to 2,000 characters, no NUL characters (Postgres cannot store
  them), and at most 16 KiB once serialised;
- a (retailer, product_id) pair appears once per file; a repeat is refused naming the first item's index.

`parse_catalog` reads a document already in memory (a direct import, at most 25 MB). `CatalogStream` reads an
uploaded file of any size from a binary stream, item by item, so memory holds one batch rather than the file;
there, one value (an item, or metadata) may take at most `MAX_VALUE_BYTES` of the file.

Nothing here does I/O beyond reading the stream it is given: the service decides whether bad items refuse
the whole import or are skipped.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from typing import Any, BinaryIO

import ijson  # type: ignore[import-untyped]
import orjson

from yummi_common.money import rand_to_minor

# Product ids are name-based UUIDs of (retailer, product_id): the same product has the same id in every
# dataset version, so ids kept by clients (baskets, favourites) survive a catalog update.
PRODUCT_ID_NAMESPACE = uuid.UUID("d7fe3170-5b1c-4467-a8d9-d15d9a9903de")
DEFAULT_RETAILER = "woolworths"
CURRENCY = "ZAR"

MAX_ITEMS = 1_000_000
MAX_PRODUCT_ID = 64
MAX_RETAILER = 64
MAX_TITLE = 500
MAX_CATEGORY = 200
MAX_REF_ID = 64
MAX_URL = 2_000
MAX_STRING = 2_000
MAX_KEY = 128
MAX_ATTRIBUTE_KEYS = 64
MAX_ATTRIBUTE_DEPTH = 8
MAX_CONTAINER_ENTRIES = 256
MAX_ATTRIBUTES_BYTES = 16 * 1024
MAX_VALUE_BYTES = 1024 * 1024  # streaming: the most one item (or metadata value) may take of the file
MAX_JSON_DEPTH = 64  # streaming: the deepest nesting of the whole document
_READ_BYTES = 256 * 1024

STANDARD_FIELDS = frozenset(
    {
        "product_id",
        "title",
        "price",
        "retailer",
        "catalog_ref_id",
        "url",
        "image_url",
        "category",
        "available",
        "currency",
    }
)

_PRODUCT_ID = re.compile(r"[A-Za-z0-9._:\-]+")
_RETAILER = re.compile(r"[a-z0-9][a-z0-9._\-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class CatalogItem:
    """One valid item, normalised: what a products row holds."""

    index: int
    retailer: str
    product_id: str
    title: str
    price_minor: int
    catalog_ref_id: str = ""
    url: str = ""
    image_url: str = ""
    category: str = ""
    available: bool = True
    attributes_json: str = "{}"


@dataclass(frozen=True, slots=True)
class ItemProblem:
    """Why the item at `index` was refused."""

    index: int
    reason: str
    product_id: str = ""

    def as_error(self) -> dict[str, Any]:
        """The problem as a validation error (`index`, `product_id`, `reason`, plus `field`/`message`)."""
        return {
            "field": f"items[{self.index}]",
            "message": self.reason,
            "index": self.index,
            "product_id": self.product_id,
            "reason": self.reason,
        }


class CatalogFileError(ValueError):
    """The file as a whole cannot be a catalog (not JSON, wrong shape, no items)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ParsedCatalog:
    """The valid items of a file, the refused ones, and the file's identity."""

    items: list[CatalogItem]
    problems: list[ItemProblem]
    total: int
    checksum_sha256: str
    size_bytes: int


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def product_uuid(retailer: str, product_id: str) -> uuid.UUID:
    """The product's id in every version: a UUIDv5 of `retailer:product_id` (retailers hold no colon).

    Exactly `uuid.uuid5(PRODUCT_ID_NAMESPACE, ...)`, computed the same way (SHA-1, version and variant bits)
    but without `UUID.__init__`'s argument checks: a load computes one per item, and this halves its cost.
    """
    digest = hashlib.sha1(_NAMESPACE_BYTES + f"{retailer}:{product_id}".encode()).digest()  # noqa: S324
    value = int.from_bytes(digest[:16], "big") & _UUID5_MASK | _UUID5_BITS
    product = _new_uuid(uuid.UUID)
    _set_slot(product, "int", value)
    _set_slot(product, "is_safe", uuid.SafeUUID.unknown)
    return product


_NAMESPACE_BYTES = PRODUCT_ID_NAMESPACE.bytes
_UUID5_MASK = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)  # clears the version and variant bits
_UUID5_BITS = (5 << 76) | (0x8000 << 48)  # version 5, RFC 4122 variant
_new_uuid = object.__new__
_set_slot = object.__setattr__  # UUID is immutable: its own constructor sets its slots this way


def checksum_sha256(content: bytes) -> str:
    """The hex SHA-256 of the file's exact bytes: a dataset's identity."""
    return hashlib.sha256(content).hexdigest()


def load_items(content: bytes, *, max_items: int = MAX_ITEMS) -> list[Any]:
    """Decode the document and return its raw item list, or raise CatalogFileError."""
    content = content.removeprefix(_UTF8_BOM)
    if not content.strip():
        raise CatalogFileError("the catalog is empty")
    try:
        document = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise CatalogFileError(f"the catalog is not valid JSON: {exc}") from None
    if isinstance(document, dict):
        if "items" not in document:
            raise CatalogFileError('a catalog object must have an "items" list')
        items = document["items"]
        if not isinstance(items, list):
            raise CatalogFileError('"items" must be a list')
    elif isinstance(document, list):
        items = document
    else:
        raise CatalogFileError('a catalog must be a JSON array of items or an object with an "items" list')
    if not items:
        raise CatalogFileError("the catalog has no items")
    if len(items) > max_items:
        raise CatalogFileError(f"the catalog has {len(items)} items; at most {max_items} are allowed")
    return items


def parse_catalog(content: bytes, *, max_items: int = MAX_ITEMS) -> ParsedCatalog:
    """Validate every item of a catalog.json; file-level faults raise CatalogFileError."""
    checker = ItemChecker()
    items = [
        item for raw in load_items(content, max_items=max_items) if (item := checker.check(raw)) is not None
    ]
    return ParsedCatalog(
        items=items,
        problems=checker.problems,
        total=checker.total,
        checksum_sha256=checksum_sha256(content),
        size_bytes=len(content),
    )


class ItemChecker:
    """Validates raw items in file order, keeping every problem; a repeated (retailer, product_id) is one."""

    def __init__(self) -> None:
        self.problems: list[ItemProblem] = []
        self.total = 0
        self._first_index: dict[tuple[str, str], int] = {}

    def check(self, raw: Any) -> CatalogItem | None:
        """The next item normalised, or None (and a recorded problem) when it is refused."""
        index = self.total
        self.total += 1
        try:
            item = validate_item(index, raw)
        except _Refused as refused:
            self.problems.append(
                ItemProblem(index=index, reason=refused.reason, product_id=_raw_product_id(raw))
            )
            return None
        first = self._first_index.setdefault((item.retailer, item.product_id), index)
        if first != index:
            self.problems.append(
                ItemProblem(
                    index=index,
                    reason=f"duplicate of the item at index {first} (same retailer and product_id)",
                    product_id=item.product_id,
                )
            )
            return None
        return item


class CatalogStream:
    """A catalog.json read from a binary stream in batches of valid items, hashing its exact bytes on the way.

    `batches` raises CatalogFileError for file-level faults. Bad items are kept in `checker.problems`; after
    the first one no more batches come out (such a file cannot become a version), but the rest is still
    checked so the problems are all counted. `checksum_sha256` and `size_bytes` cover the whole stream once
    `batches` is exhausted.
    """

    def __init__(self, stream: BinaryIO, *, max_bytes: int, max_items: int = MAX_ITEMS) -> None:
        self.checker = ItemChecker()
        self._reader = _HashingReader(stream, max_bytes=max_bytes)
        self._max_items = max_items

    @property
    def checksum_sha256(self) -> str:
        return self._reader.digest.hexdigest()

    @property
    def size_bytes(self) -> int:
        """The bytes read so far: the file's size once `batches` is exhausted."""
        return self._reader.size

    def batches(self, size: int) -> Iterator[list[CatalogItem]]:
        """Valid items in file order, `size` at a time."""
        checker = self.checker
        prefix = "items.item" if self._reader.start() == b"{" else "item"
        batch: list[CatalogItem] = []
        try:
            for raw in ijson.items(self._reader, prefix, use_float=True, buf_size=_READ_BYTES):
                if checker.total >= self._max_items:
                    raise CatalogFileError(f"the catalog has more than {self._max_items} items")
                item = checker.check(raw)
                self._reader.mark()
                if item is None or checker.problems:
                    continue
                batch.append(item)
                if len(batch) >= size:
                    yield batch
                    batch = []
        except ijson.JSONError as exc:
            raise CatalogFileError(f"the catalog is not valid JSON: {_json_error(exc)}") from None
        self._reader.drain()
        if checker.total == 0:
            raise CatalogFileError(
                "the catalog has no items"
                + (' (an object needs an "items" list)' if prefix != "item" else "")
            )
        if batch:
            yield batch


class _HashingReader:
    """The file-like object ijson reads: hashes and counts every byte, skips a BOM, bounds depth and sizes.

    The bounds are checked before ijson sees a chunk: its memory grows with the square of the nesting depth,
    so a few hundred KB of `[[[[...` would exhaust it.
    """

    def __init__(self, stream: BinaryIO, *, max_bytes: int) -> None:
        self.digest = hashlib.sha256()
        self.size = 0
        self._stream = stream
        self._max_bytes = max_bytes
        self._pending = b""
        self._marked = 0
        self._depth = _DepthGuard()

    def start(self) -> bytes:
        """Read up to the first significant byte and return it (b"[" or b"{"); refuse anything else."""
        head = b""
        while len(head) <= MAX_VALUE_BYTES and not head.removeprefix(_UTF8_BOM).strip():
            chunk = self._next(_READ_BYTES)
            if not chunk:
                break
            head += chunk
        self._pending = head.removeprefix(_UTF8_BOM).lstrip()
        first = self._pending[:1]
        if not first:
            raise CatalogFileError("the catalog is empty")
        if first in (b"[", b"{"):
            return first
        if first in b'"-0123456789tfn':
            raise CatalogFileError(
                'a catalog must be a JSON array of items or an object with an "items" list'
            )
        raise CatalogFileError("the catalog is not valid JSON")

    def mark(self) -> None:
        """An item ended about here: the next value is measured from this point."""
        self._marked = self.size

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson asks for nothing first, to learn whether the stream gives bytes or text
            return b""
        if self._pending:
            chunk, self._pending = self._pending, b""
        else:
            if self.size - self._marked > MAX_VALUE_BYTES + _READ_BYTES:
                limit = MAX_VALUE_BYTES // 1024
                raise CatalogFileError(
                    f"a value in the catalog is larger than {limit} KiB (near byte {self.size})"
                )
            chunk = self._next(size if size > 0 else _READ_BYTES)
        self._depth.feed(chunk)
        return chunk

    def drain(self) -> None:
        """Read to the end, so the checksum covers every byte."""
        while self._next(_READ_BYTES):
            pass

    def _next(self, size: int) -> bytes:
        chunk = bytes(self._stream.read(size))
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise CatalogFileError(f"the catalog is larger than {self._max_bytes} bytes")
        self.digest.update(chunk)
        return chunk


class _DepthGuard:
    """Follows the nesting depth of JSON text fed in chunks (brackets inside strings do not count)."""

    def __init__(self) -> None:
        self.depth = 0
        self._in_string = False
        self._carry = b""

    def feed(self, chunk: bytes) -> None:
        """Refuse the document (CatalogFileError) once it nests deeper than MAX_JSON_DEPTH."""
        chunk = self._carry + chunk
        self._carry = b""
        if b"\\" in chunk:
            chunk = _ESCAPE.sub(b"", chunk)  # escaped quotes must not end a string
            if chunk.endswith(b"\\"):  # an escape cut in two by the chunk boundary
                chunk, self._carry = chunk[:-1], b"\\"
        parts = chunk.split(b'"')
        outside = parts[1::2] if self._in_string else parts[::2]
        self._in_string ^= len(parts) % 2 == 0
        brackets = b"".join(outside).translate(None, _NOT_BRACKETS)
        if not brackets:
            return
        levels = list(accumulate(map(_BRACKET_STEP.__getitem__, brackets), initial=self.depth))
        self.depth = levels[-1]
        if max(levels) > MAX_JSON_DEPTH:
            raise CatalogFileError(f"the catalog nests values more than {MAX_JSON_DEPTH} levels deep")


_ESCAPE = re.compile(rb"\\.", re.DOTALL)
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_BRACKET_STEP = [{ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}.get(byte, 0) for byte in range(256)]


def _json_error(exc: Exception) -> str:
    """The first line of the parser's message (the lines after it quote the text around the fault)."""
    message = exc.args[0] if exc.args else ""
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    lines = str(message).strip().splitlines()
    return lines[0][:200] if lines else "unexpected input"


def validate_item(index: int, raw: Any) -> CatalogItem:
    """One item normalised, or _Refused with the reason."""
    if not isinstance(raw, dict):
        raise _Refused("an item must be a JSON object")
    product_id = _product_id(raw.get("product_id"))
    title = _text(raw.get("title"), "title", MAX_TITLE, required=True)
    if "price" not in raw or raw["price"] is None:
        raise _Refused("price is required")
    try:
        price_minor = rand_to_minor(raw["price"])
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise _Refused(f"price {_short(raw['price'])} is not valid: {exc}") from None
    retailer = _retailer(raw.get("retailer"))
    currency = raw.get("currency")
    if currency is not None and (not isinstance(currency, str) or currency.strip().upper() != CURRENCY):
        raise _Refused(f"currency must be {CURRENCY}")
    available = raw.get("available")
    if available is None:
        available = True
    elif not isinstance(available, bool):
        raise _Refused("available must be true or false")
    return CatalogItem(
        index=index,
        retailer=retailer,
        product_id=product_id,
        title=title,
        price_minor=price_minor,
        catalog_ref_id=_ref_id(raw.get("catalog_ref_id")),
        url=_url(raw.get("url"), "url"),
        image_url=_url(raw.get("image_url"), "image_url"),
        category=_text(raw.get("category"), "category", MAX_CATEGORY),
        available=available,
        attributes_json=_attributes({k: v for k, v in raw.items() if k not in STANDARD_FIELDS}),
    )


def _product_id(value: Any) -> str:
    if value is None:
        raise _Refused("product_id is required")
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise _Refused("product_id must not be negative")
        value = str(value)
    if not isinstance(value, str):
        raise _Refused("product_id must be a string or an integer")
    text: str = value.strip()
    if not text:
        raise _Refused("product_id must not be empty")
    if len(text) > MAX_PRODUCT_ID:
        raise _Refused(f"product_id is longer than {MAX_PRODUCT_ID} characters")
    if not _PRODUCT_ID.fullmatch(text):
        raise _Refused("product_id may only hold letters, digits and . _ : -")
    return text


def _retailer(value: Any) -> str:
    if value is None:
        return DEFAULT_RETAILER
    if not isinstance(value, str):
        raise _Refused("retailer must be a string")
    text: str = value.strip().lower()
    if not text:
        return DEFAULT_RETAILER
    if len(text) > MAX_RETAILER or not _RETAILER.fullmatch(text):
        raise _Refused(f"retailer must be 1..{MAX_RETAILER} characters of a-z, 0-9 and . _ -")
    return text


def _ref_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return _text(value, "catalog_ref_id", MAX_REF_ID)


def _text(value: Any, name: str, limit: int, *, required: bool = False) -> str:
    if value is None:
        if required:
            raise _Refused(f"{name} is required")
        return ""
    if not isinstance(value, str):
        raise _Refused(f"{name} must be a string")
    text: str = value.strip()
    if required and not text:
        raise _Refused(f"{name} must not be empty")
    if len(text) > limit:
        raise _Refused(f"{name} is longer than {limit} characters")
    if _CONTROL.search(text):
        raise _Refused(f"{name} must not contain control characters")
    return text


def _url(value: Any, name: str) -> str:
    url = _text(value, name, MAX_URL)
    if not url:
        return ""
    if url.startswith("//"):
        url = "https:" + url
    if not url[:8].lower().startswith(("http://", "https://")) or len(url) > MAX_URL:
        raise _Refused(f"{name} must be an http(s) URL of at most {MAX_URL} characters")
    return url


def _attributes(attributes: dict[str, Any]) -> str:
    if not attributes:
        return "{}"
    blob = orjson.dumps(attributes)
    if len(blob) <= MAX_KEY and b"\\u0000" not in blob and _brackets(blob) <= MAX_ATTRIBUTE_DEPTH:
        # Short, so within every limit: no key or string can be longer than the text, no container can
        # have more entries, and even if every bracket nested the next, the depth would be within bounds.
        return blob.decode()
    if len(attributes) > MAX_ATTRIBUTE_KEYS:
        raise _Refused(f"an item may have at most {MAX_ATTRIBUTE_KEYS} extra fields")
    for key, value in attributes.items():
        _check_key(key, key)
        _check_value(value, 1, key)
    if len(blob) > MAX_ATTRIBUTES_BYTES:
        raise _Refused(f"the item's extra fields exceed {MAX_ATTRIBUTES_BYTES // 1024} KiB")
    return blob.decode()


def _brackets(blob: bytes) -> int:
    """How many containers the JSON text could open (brackets inside strings count too: an upper bound)."""
    return blob.count(b"[") + blob.count(b"{") - 1  # the attributes object itself is not nested


def _check_key(key: str, path: str) -> None:
    if len(key) > MAX_KEY:
        raise _Refused(f"field name {_short(key)} is longer than {MAX_KEY} characters")
    if "\x00" in key:
        raise _Refused(f"field name at {_short(path)} contains a NUL character")


def _check_value(value: Any, depth: int, path: str) -> None:
    """Strings bounded and NUL-free; containers bounded in depth and size (paths built only to descend)."""
    if isinstance(value, str):
        if len(value) > MAX_STRING:
            raise _Refused(f"field {_short(path)} is longer than {MAX_STRING} characters")
        if "\x00" in value:
            raise _Refused(f"field {_short(path)} contains a NUL character")
        return
    if not isinstance(value, dict | list):
        return
    if depth > MAX_ATTRIBUTE_DEPTH:
        raise _Refused(f"field {_short(path)} is nested deeper than {MAX_ATTRIBUTE_DEPTH} levels")
    if len(value) > MAX_CONTAINER_ENTRIES:
        raise _Refused(f"field {_short(path)} has more than {MAX_CONTAINER_ENTRIES} entries")
    if isinstance(value, dict):
        for key, inner in value.items():
            _check_key(key, path)
            if isinstance(inner, str | dict | list):
                _check_value(inner, depth + 1, f"{path}.{key}")
    else:
        for position, inner in enumerate(value):
            if isinstance(inner, str | dict | list):
                _check_value(inner, depth + 1, f"{path}[{position}]")


def _raw_product_id(raw: Any) -> str:
    if not isinstance(raw, dict):
        return ""
    value = raw.get("product_id")
    if isinstance(value, bool):
        return ""
    if isinstance(value, str | int):
        return str(value)[:MAX_PRODUCT_ID]
    return ""


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return repr(text if len(text) <= limit else text[:limit] + "…")
