#!/usr/bin/env python3
"""Generate examples/docs/security/data-retention-policy.pdf.

Requires the pure-Python package fpdf2 (pip install fpdf2). Uses only the core
Helvetica font and plain ASCII text, so the PDF has a real, extractable text layer.

Usage (from the repository root or anywhere):
    python examples/docs-src/make_pdf.py
"""
from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF

OUT = Path(__file__).resolve().parent.parent / "docs" / "security" / "data-retention-policy.pdf"

TITLE = "Northwind Labs - Data Retention Policy"
META = "Policy ID: SEC-POL-07   Version 3.1   Owner: Security & Legal   Effective: 2024-07-01"

SECTIONS = [
    ("1. Purpose and scope",
     "This policy sets how long Northwind Labs keeps each kind of data and how it is "
     "deleted when that time is over. It applies to all employees, contractors and "
     "systems, including backups, logs and data held by our suppliers on our behalf. "
     "Keeping data longer than needed is a risk, not a safety net: if a record is "
     "past its retention period it must be deleted, even if it might be useful later."),
    ("2. Retention periods",
     None),
    ("3. Legal hold",
     "Legal may place a legal hold on data relevant to a dispute, audit or "
     "investigation. Data under legal hold must not be deleted, even if its retention "
     "period has passed, until Legal lifts the hold in writing. System owners are told "
     "about a hold by a ticket in the LEGAL queue and must pause automatic deletion "
     "(for example lifecycle rules on object storage buckets) for the affected data."),
    ("4. Deletion",
     "Deletion should be automatic wherever possible: lifecycle rules on object "
     "storage, log index retention settings, and scheduled jobs in databases. Deleted "
     "data may remain in backups until those backups expire; this is acceptable as "
     "long as backups are never restored to bring deleted records back into use. "
     "Laptops and disks leaving the company are wiped with a verified erase or "
     "physically destroyed, and a certificate of destruction is kept for 3 years."),
    ("5. Customer deletion requests",
     "When a customer exercises the right to erasure, the Privacy team records the "
     "request and the owning teams delete or anonymise the customer's personal data "
     "within 30 days. Payment records that we are legally required to keep are "
     "excluded from erasure but are restricted so they are only used for legal and "
     "accounting purposes."),
    ("6. Exceptions and questions",
     "Any exception to this policy needs written approval from the Security lead and "
     "Legal, is recorded in the exceptions register, and is reviewed every 12 months. "
     "Questions go to the Security team in the security channel or to the Data "
     "Protection Officer at dpo@northwindlabs.com."),
]

RETENTION = [
    ("Application and access logs", "90 days hot, 400 days archived"),
    ("Security audit logs (SIEM, Vault audit)", "2 years"),
    ("Bastion session recordings", "1 year"),
    ("Database backups (pgBackRest)", "4 full backups, about 28 days"),
    ("Payment transaction records", "10 years (bookkeeping law)"),
    ("Card data (PAN)", "never stored; tokenised at the PSP"),
    ("Customer support tickets", "3 years after closing"),
    ("Employee e-mail and chat", "3 years, then deleted"),
    ("HR records of former staff", "7 years after leaving"),
    ("CCTV footage (offices)", "28 days"),
    ("Guest Wi-Fi connection logs", "30 days"),
    ("Build artefacts (non-release)", "30 days"),
]


def build() -> None:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_title(TITLE)
    pdf.set_author("Northwind Labs Security")
    # fixed date so that regenerating gives a byte-identical file
    pdf.set_creation_date(datetime(2024, 7, 1, tzinfo=timezone.utc))
    pdf.add_page()

    pdf.set_font("Helvetica", "B", 16)
    pdf.multi_cell(0, 9, TITLE, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)
    pdf.multi_cell(0, 5, META, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)

    for heading, body in SECTIONS:
        pdf.set_font("Helvetica", "B", 12)
        pdf.multi_cell(0, 7, heading, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font("Helvetica", "", 10)
        if body is not None:
            pdf.multi_cell(0, 5, body, new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.multi_cell(0, 5, "Unless a legal hold applies (section 3), data is kept "
                           "for the following periods and then deleted:",
                           new_x="LMARGIN", new_y="NEXT")
            pdf.ln(1)
            for kind, period in RETENTION:
                pdf.set_font("Helvetica", "B", 10)
                pdf.cell(85, 6, kind)
                pdf.set_font("Helvetica", "", 10)
                pdf.cell(0, 6, period, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)

    OUT.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(OUT))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    build()
