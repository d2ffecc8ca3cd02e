"""Builds the golden set's DOCX and PDF documents (python-docx, fpdf2): `python eval/golden/build_docs.py`.

The generated files are committed; this script is how they were made and how to change them. Each document is
a title plus (heading, paragraphs) sections; a PDF starts each section on the page flow, and the manual puts its
chapters on their own pages so that answers cite a page.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from docx import Document
from fpdf import FPDF

DOCS = Path(__file__).parent / "docs"

Sections = list[tuple[str, list[str]]]
# A fixed date: rebuilding an unchanged document gives the same metadata.
BUILT = datetime(2026, 1, 15, tzinfo=UTC)

TRAVEL_US: Sections = [
    (
        "Scope",
        [
            "This policy applies to employees of Northwind Systems Inc. based in the United States. Employees "
            "based in the European Union follow the EU version of this policy."
        ],
    ),
    (
        "Flights",
        [
            "Economy class is required for flights under 6 hours. Business class may be booked for flights of "
            "6 hours or longer with the approval of a vice president. Book all flights through Navan at least "
            "14 days before departure."
        ],
    ),
    (
        "Hotels",
        [
            "The nightly hotel limit is USD 250 in New York, San Francisco and Boston, and USD 180 in all other "
            "US cities. Rooms above the limit need a written justification attached to the expense report."
        ],
    ),
    (
        "Meals and per diem",
        [
            "Meals are reimbursed at a per diem of USD 75 per day for domestic travel. Alcohol is not "
            "reimbursable. Client dinners are reimbursed at actual cost up to USD 120 per person."
        ],
    ),
    (
        "Mileage and ground transport",
        [
            "Use of a personal car is reimbursed at USD 0.67 per mile. Ride-hailing is allowed; economy options "
            "(UberX, Lyft Standard) only."
        ],
    ),
    (
        "Submitting expenses",
        [
            "Submit expense reports in Concur within 30 days of returning from the trip. Receipts are required for "
            "every expense over USD 25. Reports are reimbursed in the next payroll run after approval."
        ],
    ),
]

TRAVEL_EU: Sections = [
    (
        "Scope",
        [
            "This policy applies to employees of Northwind Systems B.V. and its subsidiaries based in the European "
            "Union. Employees based in the United States follow the US version of this policy."
        ],
    ),
    (
        "Flights and trains",
        [
            "Trains must be used for journeys under 4 hours when a direct connection exists. Economy class is "
            "required for flights under 8 hours; business class needs the approval of a managing director. Book "
            "through Navan at least 21 days before departure."
        ],
    ),
    (
        "Hotels",
        [
            "The nightly hotel limit is EUR 200 in London, Paris and Amsterdam, and EUR 150 in all other cities. "
            "Rooms above the limit need a written justification attached to the expense report."
        ],
    ),
    (
        "Meals and per diem",
        [
            "Meals are reimbursed at a per diem of EUR 60 per day. Client dinners are reimbursed at actual cost up "
            "to EUR 90 per person, with the names of all attendees on the receipt."
        ],
    ),
    (
        "Mileage and ground transport",
        [
            "Use of a personal car is reimbursed at EUR 0.30 per kilometre. Taxis are allowed when public "
            "transport is not reasonably available."
        ],
    ),
    (
        "Submitting expenses",
        [
            "Submit expense claims in Concur within 60 days of returning from the trip. Receipts are required for "
            "every expense over EUR 20. VAT receipts must show the company's VAT number."
        ],
    ),
]

PASSWORDS: Sections = [
    (
        "Purpose",
        [
            "This standard sets the rules for passwords and multi-factor authentication on every Northwind "
            "system that holds company or customer data."
        ],
    ),
    (
        "Password rules",
        [
            "Passwords must be at least 14 characters long. Passphrases of four or more random words are "
            "encouraged. Passwords are not rotated on a schedule; they are changed only when a compromise is "
            "suspected. The last 10 passwords cannot be reused."
        ],
    ),
    (
        "Multi-factor authentication",
        [
            "Multi-factor authentication is mandatory for every account. Okta Verify push or a FIDO2 security key "
            "is allowed; SMS codes are not accepted. Administrators of production systems must use a hardware "
            "security key (YubiKey 5 series), which IT issues on request."
        ],
    ),
    (
        "Password manager",
        [
            "The approved password manager is 1Password Business. Storing work passwords in a browser's built-in "
            "password store is not allowed. Shared service credentials live in a 1Password vault owned by the team."
        ],
    ),
    (
        "Service accounts",
        [
            "Service account secrets are stored in AWS Secrets Manager and rotated every 90 days. Secrets must "
            "never be committed to a Git repository; the pre-commit hook gitleaks blocks such commits."
        ],
    ),
]

MANUAL: Sections = [
    (
        "1. Overview",
        [
            "The BR-220 is a hydraulic disc brake kit for light electric utility vehicles up to 450 kg gross "
            "weight. This manual covers installation, maintenance and spare parts.",
            "Safety: only trained technicians may install the brake system. Always test the brakes at walking "
            "speed before returning the vehicle to service.",
        ],
    ),
    (
        "2. Installation",
        [
            "Mount the caliper with the two M6 bolts supplied and tighten them to a torque of 9 Nm. Use thread "
            "locker of medium strength. The rotor bolts (T25 Torx) are tightened to 6 Nm in a star pattern.",
            "Fill the system only with mineral oil, part number OIL-MN-100. Never use DOT brake fluid: it "
            "destroys the seals.",
        ],
    ),
    (
        "3. Maintenance",
        [
            "Inspect the brake pads every 1,000 km or every 3 months, whichever comes first. Replace the pads when "
            "the friction material is thinner than 1.5 mm.",
            "Bleed the hydraulic system once a year, or whenever the lever feels soft. The bleed kit has part "
            "number BLD-KIT-07.",
        ],
    ),
    (
        "4. Spare parts",
        [
            "Standard sintered brake pads: part number BRK-220-S. Organic brake pads for quieter operation: part "
            "number BRK-220-O. Rotor, 180 mm: part number ROT-180-X. Caliper seal kit: part number SEAL-220.",
            "Spare parts are ordered through the dealer portal; the minimum order is 10 units per part number.",
        ],
    ),
    (
        "5. Troubleshooting",
        [
            "Squealing brakes usually mean contaminated pads: replace the pads and clean the rotor with isopropyl "
            "alcohol. A lever that reaches the handlebar means air in the system: bleed the brakes.",
            "Error light code F3 on the vehicle display means the brake wear sensor is disconnected; check the "
            "sensor cable at the caliper.",
        ],
    ),
]

WARRANTY: Sections = [
    (
        "Warranty period",
        [
            "Northwind hardware products carry a limited warranty of 24 months from the date of delivery. "
            "Batteries are covered for 12 months or 500 charge cycles, whichever comes first."
        ],
    ),
    (
        "What is not covered",
        [
            "The warranty does not cover wear parts such as brake pads, tyres and cables, damage caused by "
            "accidents, or products that were repaired by anyone other than an authorised service partner."
        ],
    ),
    (
        "Making a claim",
        [
            "Register the claim in the service portal with the serial number and the proof of purchase. An "
            "authorised service partner inspects the product within 10 business days, and an approved claim is "
            "repaired or replaced free of charge.",
            "Extended warranty: customers can buy an extension of 12 months for 15% of the product's list price "
            "within 60 days of delivery.",
        ],
    ),
]


def write_docx(path: Path, title: str, sections: Sections) -> None:
    doc = Document()
    doc.core_properties.title = title
    doc.add_heading(title, level=1)
    for heading, paragraphs in sections:
        doc.add_heading(heading, level=2)
        for text in paragraphs:
            doc.add_paragraph(text)
    doc.core_properties.created = BUILT
    doc.core_properties.modified = BUILT
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(str(path))


def write_pdf(path: Path, title: str, sections: Sections, *, page_per_section: bool) -> None:
    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_creation_date(BUILT)
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 10, title, new_x="LMARGIN", new_y="NEXT")
    for i, (heading, paragraphs) in enumerate(sections):
        if page_per_section and i > 0:
            pdf.add_page()
        pdf.set_font("Helvetica", "B", 13)
        pdf.ln(4)
        pdf.multi_cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 11)
        for text in paragraphs:
            pdf.multi_cell(0, 6, text, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(2)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))


def main() -> None:
    write_docx(DOCS / "finance/travel-expense-policy-us.docx", "Travel and Expense Policy (US)", TRAVEL_US)
    write_docx(DOCS / "finance/travel-expense-policy-eu.docx", "Travel and Expense Policy (EU)", TRAVEL_EU)
    write_docx(DOCS / "it/password-standard.docx", "Password and MFA Standard", PASSWORDS)
    write_pdf(DOCS / "products/br-220-brake-kit-manual.pdf", "BR-220 Brake Kit Manual", MANUAL, page_per_section=True)
    write_pdf(DOCS / "products/warranty-terms.pdf", "Hardware Warranty Terms", WARRANTY, page_per_section=False)


if __name__ == "__main__":
    main()
