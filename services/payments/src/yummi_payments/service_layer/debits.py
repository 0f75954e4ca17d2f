"""The wallet side of the order saga for a fetched batch of `orders.order.placed` events, in one transaction.

One event is a batch of one (the consumer's single-event path, which every event of a failed batch takes).
The statements are shared by the whole batch: claim the events in the inbox, lock the buyers' wallets (in
user id order, so concurrent batches cannot deadlock), read the orders' charge rows, decide each debit in
Python with `ledger.decide_debit` against the wallet as the batch's earlier debits left it, then write every
ledger entry, balance, charge row and event with one statement. Any failure (a charge row that appeared
meanwhile, a lost connection) rolls the whole batch back; the consumer runtime then applies its events one
at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import BigInteger, DateTime, LargeBinary, Text, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from yummi.events.v1 import events_pb2 as ev
from yummi_common.db import UnitOfWork
from yummi_common.logging import get_logger
from yummi_common.messaging.consumer import InboxClaim
from yummi_common.timeutil import utcnow
from yummi_payments.adapters.tables import messaging, order_charges, wallet_transactions, wallets
from yummi_payments.domain import ledger
from yummi_payments.domain.ledger import DebitRejection, OrderChargeStatus, WalletState
from yummi_payments.service_layer.wallet import MAX_REASON, lock_wallet

log = get_logger(__name__)

_UUIDS = ARRAY(UUID(as_uuid=True))
_TEXTS = ARRAY(Text)
_INTS = ARRAY(BigInteger)


@dataclass(frozen=True)
class OrderDebit:
    """One `orders.order.placed` event to apply: its inbox claim and what it asks the wallet for."""

    claim: InboxClaim
    order_id: uuid.UUID
    user_id: uuid.UUID
    amount_minor: int
    currency: str


CLAIM = text(
    f"INSERT INTO {messaging.inbox.fullname} (event_id, consumer, event_type) "  # noqa: S608 - our table
    "SELECT unnest(:event_ids), :consumer, :event_type ON CONFLICT DO NOTHING RETURNING event_id"
).bindparams(
    bindparam("event_ids", type_=_UUIDS),
    bindparam("consumer", type_=Text),
    bindparam("event_type", type_=Text),
)
LOCK = text(
    f"SELECT user_id, balance_minor, debits_blocked, currency FROM {wallets.fullname} "  # noqa: S608
    "WHERE user_id = ANY(:user_ids) ORDER BY user_id FOR UPDATE"
).bindparams(bindparam("user_ids", type_=_UUIDS))
CHARGES = text(
    f"SELECT order_id, status FROM {order_charges.fullname} WHERE order_id = ANY(:order_ids)"  # noqa: S608
).bindparams(bindparam("order_ids", type_=_UUIDS))
WRITE = text(
    f"""
    WITH entries AS (
        INSERT INTO {wallet_transactions.fullname}
            (id, user_id, amount_minor, balance_after_minor, entry_type, cause_key, order_id, note,
             created_at)
        SELECT e.id, e.user_id, e.amount, e.after, 'debit', e.cause, e.order_id, e.note, e.at
        FROM unnest(:e_ids, :e_users, :e_amounts, :e_after, :e_causes, :e_orders, :e_notes, :e_at)
            AS e(id, user_id, amount, after, cause, order_id, note, at)
        RETURNING id
    ),
    moved AS (
        UPDATE {wallets.fullname} AS w SET balance_minor = u.balance, updated_at = :now
        FROM unnest(:w_users, :w_balances) AS u(user_id, balance)
        WHERE w.user_id = u.user_id
        RETURNING w.user_id
    ),
    charged AS (
        INSERT INTO {order_charges.fullname}
            (order_id, user_id, amount_minor, currency, status, reason, debit_transaction_id, created_at,
             updated_at)
        SELECT c.order_id, c.user_id, c.amount, c.currency, c.status, c.reason, c.entry, :now, :now
        FROM unnest(:c_orders, :c_users, :c_amounts, :c_currencies, :c_statuses, :c_reasons, :c_entries)
            AS c(order_id, user_id, amount, currency, status, reason, entry)
        RETURNING order_id
    ),
    emitted AS (
        INSERT INTO {messaging.outbox.fullname} (id, event_type, payload, headers)
        SELECT o.id, o.event_type, o.payload, o.headers::jsonb
        FROM unnest(:o_ids, :o_types, :o_payloads, :o_headers) AS o(id, event_type, payload, headers)
        RETURNING id
    )
    SELECT (SELECT count(*) FROM entries) AS entries, (SELECT count(*) FROM moved) AS wallets,
           (SELECT count(*) FROM charged) AS charges, (SELECT count(*) FROM emitted) AS events
    """  # noqa: S608 - only our own tables' names are formatted in; every value is bound
).bindparams(
    bindparam("now", type_=DateTime(timezone=True)),
    bindparam("e_ids", type_=_UUIDS),
    bindparam("e_users", type_=_UUIDS),
    bindparam("e_amounts", type_=_INTS),
    bindparam("e_after", type_=_INTS),
    bindparam("e_causes", type_=_TEXTS),
    bindparam("e_orders", type_=_UUIDS),
    bindparam("e_notes", type_=_TEXTS),
    bindparam("e_at", type_=ARRAY(DateTime(timezone=True))),
    bindparam("w_users", type_=_UUIDS),
    bindparam("w_balances", type_=_INTS),
    bindparam("c_orders", type_=_UUIDS),
    bindparam("c_users", type_=_UUIDS),
    bindparam("c_amounts", type_=_INTS),
    bindparam("c_currencies", type_=_TEXTS),
    bindparam("c_statuses", type_=_TEXTS),
    bindparam("c_reasons", type_=_TEXTS),
    bindparam("c_entries", type_=_UUIDS),
    bindparam("o_ids", type_=_UUIDS),
    bindparam("o_types", type_=_TEXTS),
    bindparam("o_payloads", type_=ARRAY(LargeBinary)),
    bindparam("o_headers", type_=_TEXTS),
)


_ENTRY_COLUMNS = ("ids", "users", "amounts", "after", "causes", "orders", "notes", "at")


@dataclass
class _Writes:
    """Every row the batch writes, column by column (the arrays `WRITE` unnests)."""

    entries: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in _ENTRY_COLUMNS})
    balances: dict[uuid.UUID, int] = field(default_factory=dict)
    charges: dict[str, list[Any]] = field(
        default_factory=lambda: {
            k: [] for k in ("orders", "users", "amounts", "currencies", "statuses", "reasons", "entries")
        }
    )
    events: list[dict[str, Any]] = field(default_factory=list)

    def charge(self, debit: OrderDebit, status: OrderChargeStatus, reason: str | None, entry: Any) -> None:
        for key, value in zip(
            ("orders", "users", "amounts", "currencies", "statuses", "reasons", "entries"),
            (debit.order_id, debit.user_id, debit.amount_minor, debit.currency, status.value, reason, entry),
            strict=True,
        ):
            self.charges[key].append(value)

    def params(self, now: datetime) -> dict[str, Any]:
        values: dict[str, Any] = {"now": now}
        values.update({f"e_{k}": v for k, v in self.entries.items()})
        values["w_users"] = list(self.balances)
        values["w_balances"] = list(self.balances.values())
        values.update({f"c_{k}": v for k, v in self.charges.items()})
        values["o_ids"] = [e["outbox_id"] for e in self.events]
        values["o_types"] = [e["outbox_event_type"] for e in self.events]
        values["o_payloads"] = [e["outbox_payload"] for e in self.events]
        values["o_headers"] = [orjson.dumps(e["outbox_headers"]).decode() for e in self.events]
        return values


async def debit_for_orders(*, uow: UnitOfWork, debits: Sequence[OrderDebit]) -> list[bool]:
    """Apply a batch of `orders.order.placed` events (the caller commits); per event, whether it was new.

    Raises when the batch cannot be written as decided (nothing is then applied: the caller rolls back).
    """
    if not debits:
        return []
    session = uow.session
    first = debits[0].claim
    claimed = set(
        (
            await session.execute(
                CLAIM,
                {
                    "event_ids": [d.claim.event_id for d in debits],
                    "consumer": first.consumer,
                    "event_type": first.event_type,
                },
            )
        ).scalars()
    )
    todo = [d for d in debits if d.claim.event_id in claimed]
    if todo:
        await _apply(uow, todo)
    return [d.claim.event_id in claimed for d in debits]


async def _apply(uow: UnitOfWork, todo: list[OrderDebit]) -> None:
    session = uow.session
    users = sorted({d.user_id for d in todo})
    state = {
        row.user_id: WalletState(row.balance_minor, row.debits_blocked, row.currency)
        for row in await session.execute(LOCK, {"user_ids": users})
    }
    for user in users:
        if user not in state:  # the user's first posting: create the wallet, then lock it
            state[user] = await lock_wallet(session, user)
    handled: dict[uuid.UUID, str] = {
        row.order_id: row.status
        for row in await session.execute(CHARGES, {"order_ids": [d.order_id for d in todo]})
    }
    writes = _Writes()
    now = utcnow()
    outcomes: list[tuple[str, OrderDebit, str]] = []
    for debit in todo:
        if debit.order_id in handled:
            log.info(
                "order already handled by the wallet",
                order_id=str(debit.order_id),
                status=handled[debit.order_id],
            )
            continue
        wallet = state[debit.user_id]
        decision = ledger.decide_debit(wallet, amount_minor=debit.amount_minor, currency=debit.currency)
        if isinstance(decision, DebitRejection):
            writes.charge(debit, OrderChargeStatus.REJECTED, decision.value, None)
            writes.events.append(
                uow.outbox_params(
                    "payments.wallet.debit_rejected",
                    ev.WalletDebitRejected(
                        order_id=str(debit.order_id),
                        user_id=str(debit.user_id),
                        amount_minor=debit.amount_minor,
                        currency=debit.currency,
                        reason=decision.value,
                        balance_minor=wallet.balance_minor,
                    ),
                )
            )
            handled[debit.order_id] = OrderChargeStatus.REJECTED.value
            outcomes.append(("order debit rejected", debit, decision.value))
            continue
        entry_id = uuid.uuid4()
        for key, value in zip(
            _ENTRY_COLUMNS,
            (
                entry_id,
                debit.user_id,
                decision.amount_minor,
                decision.wallet.balance_minor,
                ledger.debit_cause(debit.order_id),
                debit.order_id,
                f"order {debit.order_id}"[:MAX_REASON],
                # a microsecond apart: the ledger lists a wallet's entries in the order they were decided
                now + timedelta(microseconds=len(writes.entries["ids"])),
            ),
            strict=True,
        ):
            writes.entries[key].append(value)
        writes.balances[debit.user_id] = decision.wallet.balance_minor
        writes.charge(debit, OrderChargeStatus.DEBITED, None, entry_id)
        writes.events.append(
            uow.outbox_params(
                "payments.wallet.debited",
                ev.WalletDebited(
                    order_id=str(debit.order_id),
                    user_id=str(debit.user_id),
                    amount_minor=debit.amount_minor,
                    currency=debit.currency,
                    transaction_id=str(entry_id),
                    balance_minor=decision.wallet.balance_minor,
                ),
            )
        )
        state[debit.user_id] = decision.wallet
        handled[debit.order_id] = OrderChargeStatus.DEBITED.value
        outcomes.append(("order debited", debit, ""))
    if not writes.events:
        return
    written = (await session.execute(WRITE, writes.params(now))).one()
    expected = (
        len(writes.entries["ids"]),
        len(writes.balances),
        len(writes.charges["orders"]),
        len(writes.events),
    )
    if tuple(written) != expected:  # pragma: no cover - every row is unconditional; a guard, not a path
        raise RuntimeError(f"debit batch wrote {tuple(written)} rows, expected {expected}")
    for params in writes.events:
        uow.event_written(params)
    for message, debit, reason in outcomes:
        if reason:
            log.info(message, order_id=str(debit.order_id), reason=reason)
        else:
            log.info(message, order_id=str(debit.order_id), amount_minor=debit.amount_minor)
