"""Request bodies (closed: unknown fields are refused) and the documented response shapes of the contract."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from yummi_common.money import MAX_MINOR

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Notes = Annotated[str, StringConstraints(max_length=1000)]
ProductRef = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
Quantity = Annotated[StrictInt, Field(ge=1, le=99)]
MAX_ORDER_LINES = 100


class Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- requests ---------------------------------------------------------------------------------------------


class OrderLineIn(Closed):
    product_id: ProductRef = Field(description="The product's id (UUID) or its retailer product_id.")
    quantity: Quantity


class PlaceOrderIn(Closed):
    retailer: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] = (
        "woolworths"
    )
    items: Annotated[list[OrderLineIn], Field(min_length=1, max_length=MAX_ORDER_LINES)]
    notes: Notes | None = None


class AckIn(Closed):
    outcome: Literal["completed", "failed"]
    notes: Notes | None = None
    retailer_reference: Annotated[str, StringConstraints(max_length=128)] | None = None


class BasketItemIn(Closed):
    quantity: Quantity


class CheckoutIn(Closed):
    notes: Notes | None = None


class InitiatePaymentIn(Closed):
    amount_minor: Annotated[StrictInt, Field(ge=1, le=MAX_MINOR)]
    currency: Literal["ZAR"] = "ZAR"


class ChatMessageIn(Closed):
    role: Literal["system", "user", "assistant"]
    content: Annotated[str, StringConstraints(min_length=1, max_length=32_000)]


class CompleteIn(Closed):
    messages: Annotated[list[ChatMessageIn], Field(min_length=1, max_length=50)]
    model: Annotated[str, StringConstraints(max_length=64)] | None = None
    max_tokens: Annotated[StrictInt, Field(ge=1, le=16_384)] | None = None
    user_key_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    stream: StrictBool = False


class CredentialIn(Closed):
    provider: Literal["openai"] = "openai"
    label: ShortText
    api_key: Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=512)]


class SuggestIn(Closed):
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
    user_key_id: Annotated[str, StringConstraints(max_length=64)] | None = None


class DatasetIn(Closed):
    name: ShortText
    version: Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)] | None = None
    notes: Notes | None = None


class CompleteDatasetIn(Closed):
    checksum_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]


class ChargebackIn(Closed):
    reason: Notes | None = None


# ---- responses (documentation: handlers send orjson bytes, not re-validated models) ----------------------


class Product(BaseModel):
    id: str
    retailer: str
    product_id: str
    catalog_ref_id: str | None
    title: str
    url: str | None
    image_url: str | None
    price_minor: int
    currency: str
    category: str | None
    available: bool
    attributes: dict[str, Any]
    dataset_version: str


class ProductPage(BaseModel):
    items: list[Product]
    next_cursor: str | None
    dataset_version: str | None


class OrderItem(BaseModel):
    product_id: str
    title: str
    quantity: int
    unit_price_minor: int
    line_total_minor: int


class OrderEvent(BaseModel):
    type: str
    payload: dict[str, Any]
    created_at: str | None


class Order(BaseModel):
    id: str
    status: Literal["pending_payment", "queued", "claimed", "completed", "failed", "rejected", "cancelled"]
    retailer: str
    items: list[OrderItem]
    total_minor: int
    currency: str
    notes: str | None
    created_at: str | None
    updated_at: str | None
    events: list[OrderEvent] | None = None
    lease_expires_at: str | None = None
    retailer_reference: str | None = None
    reason: str | None = None


class OrderPage(BaseModel):
    items: list[Order]
    next_cursor: str | None


class Lease(BaseModel):
    lease_expires_at: str | None


class BasketLine(BaseModel):
    product: Product
    quantity: int
    line_total_minor: int
    price_changed: bool
    unavailable: bool


class Basket(BaseModel):
    items: list[BasketLine]
    total_minor: int
    currency: str


class WalletTransaction(BaseModel):
    id: str
    amount_minor: int
    entry_type: str
    note: str | None
    created_at: str | None


class WalletSummary(BaseModel):
    balance_minor: int
    currency: str
    debits_blocked: bool


class Wallet(WalletSummary):
    transactions: list[WalletTransaction]
    next_cursor: str | None


class Me(BaseModel):
    id: str
    clerk_user_id: str
    email: str | None
    created_at: str | None
    is_admin: bool
    is_runner: bool
    wallet: WalletSummary | None


class Erasure(BaseModel):
    id: str
    status: Literal["erasure_requested"]


class Export(BaseModel):
    generated_at: str
    identity: dict[str, Any]
    contexts: dict[str, Any]


class InitiatePaymentOut(BaseModel):
    reference: str
    action_url: str
    fields: dict[str, str]
    mode: Literal["sandbox", "live"]


class PaymentStatus(BaseModel):
    reference: str
    status: str
    payfast_status: str | None
    amount_minor: int
    currency: str
    wallet_credited: bool
    created_at: str | None
    updated_at: str | None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    services: dict[str, Literal["ok", "down"]]
    pending_counts: dict[str, int | None]


class ImportOut(BaseModel):
    dataset_id: str
    version: str
    item_count: int
    checksum_sha256: str
    active: bool
    already_imported: bool
    skipped: list[dict[str, Any]]


class CatalogSource(BaseModel):
    source: str
    dataset_version: str | None
    item_count: int
    activated_at: str | None


class UploadTarget(BaseModel):
    method: str
    url: str
    headers: dict[str, str]


class Progress(BaseModel):
    done: int
    total: int


class Dataset(BaseModel):
    id: str
    name: str
    version: str
    status: str
    source: str | None
    notes: str | None
    item_count: int
    checksum_sha256: str | None
    size_bytes: int
    created_by: str | None
    created_at: str | None
    activated_at: str | None
    progress: Progress
    error: str | None
    upload: UploadTarget | None = None


class DatasetPage(BaseModel):
    items: list[Dataset]
    next_cursor: str | None


class UploadOut(BaseModel):
    size_bytes: int
    checksum_sha256: str


class Chargeback(BaseModel):
    reference: str
    wallet: Wallet


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class CompleteOut(BaseModel):
    id: str
    model: str
    output: str
    usage: Usage


class Credential(BaseModel):
    id: str
    provider: str
    label: str
    key_hint: str
    created_at: str | None
    last_used_at: str | None


class CredentialList(BaseModel):
    items: list[Credential]


class UsageSummary(BaseModel):
    tokens_today: int
    daily_token_limit: int
    cost_micro_usd_today: int
    requests_today: int


class Suggestion(BaseModel):
    product: Product
    quantity: int
    reason: str


class Suggestions(BaseModel):
    items: list[Suggestion]


class ProblemDetail(BaseModel):
    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


PROBLEM: dict[str, Any] = {"model": ProblemDetail, "content": {"application/problem+json": {}}}
AUTH_PROBLEMS: dict[int | str, dict[str, Any]] = {401: PROBLEM, 403: PROBLEM, 503: PROBLEM}
# Routes reading a body: 400 for malformed JSON, 413 over the body limit, 415 for another media type.
BODY_PROBLEMS: dict[int | str, dict[str, Any]] = {400: PROBLEM, 413: PROBLEM, 415: PROBLEM}
