"""`erp_order_status`: one of the tenant's sales orders by number, with its lines, shipments and invoices."""

from __future__ import annotations

from typing import Any

from agentplatform.tools import ToolTrigger
from functions.tools.registry import ToolContext, ToolFailed, ToolSpec
from functions.tools.sql_support import PASSAGES_SCHEMA, database, record_passage, records, run

_ORDER = """
SELECT o.order_number, o.status, o.order_date, o.currency, o.total_amount, o.account_id, a.name AS account_name
FROM orders AS o
JOIN accounts AS a ON a.tenant = o.tenant AND a.account_id = o.account_id
WHERE o.tenant = :tenant AND o.order_number = :order_number
"""
_PARTS = {
    "lines": "SELECT line_no, sku, description, quantity, unit_price FROM order_lines "
    "WHERE tenant = :tenant AND order_number = :order_number ORDER BY line_no LIMIT 200",
    "shipments": "SELECT shipment_id, carrier, tracking_number, status, shipped_on, delivered_on FROM shipments "
    "WHERE tenant = :tenant AND order_number = :order_number ORDER BY shipment_id LIMIT 50",
    "invoices": "SELECT invoice_id, status, issued_on, due_on, paid_on, amount FROM invoices "
    "WHERE tenant = :tenant AND order_number = :order_number ORDER BY invoice_id LIMIT 50",
}


def run_status(arguments: dict[str, Any], ctx: ToolContext) -> dict[str, Any]:
    db = database(ctx, "erp_order_status")
    number = arguments["order_number"].strip().upper()
    params = {"tenant": ctx.tenant, "order_number": number}
    found = records(run(db, _ORDER, params, max_rows=1))
    if not found:
        # Another tenant's order reads the same as a missing one: nothing about it leaks.
        raise ToolFailed(f"no order {number} in this organization's ERP; check the number (like SO-10042)")
    order = found[0]
    for part, statement in _PARTS.items():
        order[part] = records(run(db, statement, params, max_rows=200))
    title = f"ERP order {order['order_number']}"
    return {"order": order, "passages": [record_passage("erp", "orders", order["order_number"], title, _text(order))]}


def _text(order: dict[str, Any]) -> str:
    """The order in sentences, each fact once, as the answer may quote it."""
    out = [
        f"Order {order['order_number']} for {order['account_name']} ({order['account_id']}) was placed on "
        f"{order['order_date']}; its status is {order['status']} and its total is {order['total_amount']} "
        f"{order['currency']}."
    ]
    for line in order["lines"]:
        out.append(
            f"Line {line['line_no']}: {line['quantity']} x {line['sku']} ({line['description']}) at "
            f"{line['unit_price']} each."
        )
    for ship in order["shipments"]:
        delivered = f", delivered on {ship['delivered_on']}" if ship.get("delivered_on") else ""
        out.append(
            f"Shipment {ship['shipment_id']} by {ship['carrier']} (tracking number {ship['tracking_number']}) is "
            f"{ship['status']}, shipped on {ship['shipped_on']}{delivered}."
        )
    for invoice in order["invoices"]:
        paid = f", paid on {invoice['paid_on']}" if invoice.get("paid_on") else ""
        out.append(
            f"Invoice {invoice['invoice_id']} of {invoice['amount']} {order['currency']} is {invoice['status']}, "
            f"issued on {invoice['issued_on']} and due on {invoice['due_on']}{paid}."
        )
    if not order["shipments"]:
        out.append(f"Order {order['order_number']} has not shipped yet.")
    return " ".join(out)


SPEC = ToolSpec(
    name="erp_order_status",
    description="Look up a sales order in the organization's ERP by its number (like SO-10042): status, date, "
    "total, customer account, order lines, shipments (carrier, tracking number, delivery) and invoices (paid, "
    "open or overdue).",
    parameters={
        "type": "object",
        "properties": {
            "order_number": {
                "type": "string",
                "pattern": "^\\s*[Ss][Oo]-[0-9]{3,10}\\s*$",
                "description": "The order number, e.g. SO-10042.",
            }
        },
        "required": ["order_number"],
        "additionalProperties": False,
    },
    result_schema={
        "type": "object",
        "properties": {
            "order": {
                "type": "object",
                "properties": {
                    "order_number": {"type": "string"},
                    "status": {"type": "string"},
                    "lines": {"type": "array"},
                    "shipments": {"type": "array"},
                    "invoices": {"type": "array"},
                },
                "required": ["order_number", "status", "lines", "shipments", "invoices"],
            },
            "passages": PASSAGES_SCHEMA,
        },
        "required": ["order", "passages"],
    },
    run=run_status,
    timeout_s=10.0,
    needs=("sql_database",),
    triggers=(ToolTrigger(pattern=r"\b[Ss][Oo]-[0-9]{3,10}\b", argument="order_number"),),
)
