"""Writes the sample CRM + ERP data set (data/crm/seed/*.csv) for the local tenants acme, globex and demo.

Deterministic (a fixed seed): run it again and the files do not change. `python data/crm/generate.py`.
The schema is data/crm/schema.sql; local/crm_db.py loads these files into the local SQLite database.
"""

from __future__ import annotations

import csv
import random
from datetime import date, timedelta
from pathlib import Path

SEED_DIR = Path(__file__).resolve().parent / "seed"
TENANTS = {"acme": ("USD", 24, 10_000), "globex": ("EUR", 18, 20_000), "demo": ("USD", 8, 30_000)}
TODAY = date(2026, 11, 30)  # the data set's "now": statuses follow from it

_COMPANY_A = [
    "Northwind",
    "Bluewater",
    "Summit",
    "Ironbridge",
    "Crescent",
    "Redwood",
    "Silverline",
    "Harbor",
    "Granite",
    "Evergreen",
    "Falcon",
    "Meridian",
    "Orchid",
    "Pioneer",
    "Quarry",
    "Riverside",
    "Sterling",
    "Tidewater",
    "Vantage",
    "Willow",
    "Keystone",
    "Lakeshore",
    "Copperfield",
    "Brightpath",
]
_COMPANY_B = [
    "Logistics",
    "Manufacturing",
    "Health",
    "Foods",
    "Energy",
    "Analytics",
    "Retail",
    "Robotics",
    "Pharma",
    "Textiles",
    "Aerospace",
    "Media",
]
_SUFFIX = ["Inc.", "LLC", "GmbH", "Ltd", "AG", "S.A.", "Corp."]
_COUNTRIES = ["US", "DE", "GB", "FR", "NL", "CA", "ES", "SE", "IT", "JP"]
_TIERS = ["strategic", "enterprise", "mid-market", "smb"]
_FIRST = [
    "Ada",
    "Ben",
    "Chloe",
    "Diego",
    "Elena",
    "Farah",
    "Gustav",
    "Hana",
    "Ivan",
    "Julia",
    "Kofi",
    "Lena",
    "Marco",
    "Nina",
    "Omar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vera",
    "Wei",
    "Yara",
    "Zoe",
]
_LAST = [
    "Andersen",
    "Baker",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Hughes",
    "Ito",
    "Jansen",
    "Kowalski",
    "Larsen",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Ueda",
    "Varga",
    "Weber",
    "Young",
    "Zimmer",
]
_TITLES = [
    "Head of Procurement",
    "CFO",
    "IT Director",
    "Operations Manager",
    "Buyer",
    "VP Engineering",
    "Accounts Payable Lead",
    "Facilities Manager",
]
_PRODUCTS = [
    ("SKU-1001", "Industrial sensor kit", 249.0),
    ("SKU-1002", "Gateway appliance", 1190.0),
    ("SKU-1003", "Annual support plan", 4800.0),
    ("SKU-1004", "Replacement filter pack", 39.5),
    ("SKU-1005", "Installation service (day)", 950.0),
    ("SKU-1006", "Edge compute module", 610.0),
    ("SKU-1007", "Training seat", 320.0),
    ("SKU-1008", "Spare battery", 18.75),
]
_CARRIERS = [("DHL", "JD01"), ("UPS", "1Z"), ("FedEx", "78"), ("DB Schenker", "DBS")]
_OWNERS = ["Maria Lopez", "Tom Becker", "Aisha Khan", "Jonas Berg"]


def generate() -> dict[str, list[dict[str, object]]]:
    rng = random.Random(14)  # noqa: S311 (sample data, deterministic on purpose)
    tables: dict[str, list[dict[str, object]]] = {
        t: [] for t in ("accounts", "contacts", "orders", "order_lines", "invoices", "shipments")
    }
    for tenant, (currency, n_accounts, first_order) in TENANTS.items():
        names = rng.sample([f"{a} {b}" for a in _COMPANY_A for b in _COMPANY_B], n_accounts)
        order_no, invoice_no, shipment_no, contact_no = first_order, first_order, first_order, 1
        for i, base in enumerate(names):
            account_id = f"ACC-{1001 + i}"
            name = f"{base} {rng.choice(_SUFFIX)}"
            domain = base.lower().replace(" ", "") + ".example"
            tables["accounts"].append(
                {
                    "tenant": tenant,
                    "account_id": account_id,
                    "name": name,
                    "industry": base.split()[1].lower(),
                    "country": rng.choice(_COUNTRIES),
                    "tier": rng.choice(_TIERS),
                    "owner": rng.choice(_OWNERS),
                    "created_on": (date(2021, 1, 4) + timedelta(days=rng.randrange(1500))).isoformat(),
                }
            )
            for first, last in {(rng.choice(_FIRST), rng.choice(_LAST)) for _ in range(rng.randint(1, 3))}:
                tables["contacts"].append(
                    {
                        "tenant": tenant,
                        "contact_id": f"CON-{contact_no:05d}",
                        "account_id": account_id,
                        "name": f"{first} {last}",
                        "email": f"{first}.{last}@{domain}".lower(),
                        "title": rng.choice(_TITLES),
                        "phone": f"+1-555-{rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}",
                    }
                )
                contact_no += 1
            for _ in range(rng.randint(1, 6)):
                order_no += 1
                number = f"SO-{order_no}"
                ordered = TODAY - timedelta(days=rng.randrange(3, 420))
                age = (TODAY - ordered).days
                status = (
                    "cancelled"
                    if rng.random() < 0.06
                    else "open"
                    if age < 7
                    else "shipped"
                    if age < 20
                    else "delivered"
                )
                lines = []
                for line_no, (sku, desc, price) in enumerate(rng.sample(_PRODUCTS, rng.randint(1, 4)), start=1):
                    quantity = rng.randint(1, 25)
                    lines.append(
                        {
                            "tenant": tenant,
                            "order_number": number,
                            "line_no": line_no,
                            "sku": sku,
                            "description": desc,
                            "quantity": quantity,
                            "unit_price": f"{price:.2f}",
                        }
                    )
                total = round(sum(float(line["unit_price"]) * int(line["quantity"]) for line in lines), 2)
                tables["order_lines"].extend(lines)
                tables["orders"].append(
                    {
                        "tenant": tenant,
                        "order_number": number,
                        "account_id": account_id,
                        "status": status,
                        "order_date": ordered.isoformat(),
                        "currency": currency,
                        "total_amount": f"{total:.2f}",
                    }
                )
                if status in ("shipped", "delivered"):
                    shipment_no += 1
                    carrier, prefix = rng.choice(_CARRIERS)
                    shipped = ordered + timedelta(days=rng.randint(1, 5))
                    delivered = shipped + timedelta(days=rng.randint(2, 9)) if status == "delivered" else None
                    tables["shipments"].append(
                        {
                            "tenant": tenant,
                            "shipment_id": f"SH-{shipment_no}",
                            "order_number": number,
                            "carrier": carrier,
                            "tracking_number": f"{prefix}{rng.randrange(10**9, 10**10)}",
                            "status": "delivered" if delivered else "in_transit",
                            "shipped_on": shipped.isoformat(),
                            "delivered_on": delivered.isoformat() if delivered else "",
                        }
                    )
                    invoice_no += 1
                    issued = shipped
                    due = issued + timedelta(days=30)
                    paid = issued + timedelta(days=rng.randint(5, 45)) if rng.random() < 0.75 else None
                    paid = paid if paid and paid <= TODAY else None
                    tables["invoices"].append(
                        {
                            "tenant": tenant,
                            "invoice_id": f"INV-{issued.year}-{invoice_no}",
                            "order_number": number,
                            "status": "paid" if paid else ("overdue" if due < TODAY else "open"),
                            "issued_on": issued.isoformat(),
                            "due_on": due.isoformat(),
                            "paid_on": paid.isoformat() if paid else "",
                            "amount": f"{total:.2f}",
                        }
                    )
    return tables


def main() -> None:
    SEED_DIR.mkdir(exist_ok=True)
    for table, rows in generate().items():
        with (SEED_DIR / f"{table}.csv").open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        print(f"{table}: {len(rows)} rows")


if __name__ == "__main__":
    main()
