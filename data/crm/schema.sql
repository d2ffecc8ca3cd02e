-- The sample CRM + ERP data set (PostgreSQL; agentplatform.sql transpiles it for SQLite).
-- Every row carries its tenant, and every key starts with it: one tenant's ids never meet another's rows.

CREATE TABLE accounts (
    tenant TEXT NOT NULL,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    industry TEXT NOT NULL,
    country TEXT NOT NULL,
    tier TEXT NOT NULL,
    owner TEXT NOT NULL,
    created_on DATE NOT NULL,
    PRIMARY KEY (tenant, account_id)
);

CREATE TABLE contacts (
    tenant TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    title TEXT NOT NULL,
    phone TEXT NOT NULL,
    PRIMARY KEY (tenant, contact_id),
    FOREIGN KEY (tenant, account_id) REFERENCES accounts (tenant, account_id)
);

CREATE TABLE orders (
    tenant TEXT NOT NULL,
    order_number TEXT NOT NULL,
    account_id TEXT NOT NULL,
    status TEXT NOT NULL,
    order_date DATE NOT NULL,
    currency TEXT NOT NULL,
    total_amount NUMERIC(12, 2) NOT NULL,
    PRIMARY KEY (tenant, order_number),
    FOREIGN KEY (tenant, account_id) REFERENCES accounts (tenant, account_id)
);

CREATE TABLE order_lines (
    tenant TEXT NOT NULL,
    order_number TEXT NOT NULL,
    line_no INTEGER NOT NULL,
    sku TEXT NOT NULL,
    description TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    unit_price NUMERIC(12, 2) NOT NULL,
    PRIMARY KEY (tenant, order_number, line_no),
    FOREIGN KEY (tenant, order_number) REFERENCES orders (tenant, order_number)
);

CREATE TABLE invoices (
    tenant TEXT NOT NULL,
    invoice_id TEXT NOT NULL,
    order_number TEXT NOT NULL,
    status TEXT NOT NULL,
    issued_on DATE NOT NULL,
    due_on DATE NOT NULL,
    paid_on DATE,
    amount NUMERIC(12, 2) NOT NULL,
    PRIMARY KEY (tenant, invoice_id),
    FOREIGN KEY (tenant, order_number) REFERENCES orders (tenant, order_number)
);

CREATE TABLE shipments (
    tenant TEXT NOT NULL,
    shipment_id TEXT NOT NULL,
    order_number TEXT NOT NULL,
    carrier TEXT NOT NULL,
    tracking_number TEXT NOT NULL,
    status TEXT NOT NULL,
    shipped_on DATE,
    delivered_on DATE,
    PRIMARY KEY (tenant, shipment_id),
    FOREIGN KEY (tenant, order_number) REFERENCES orders (tenant, order_number)
);

CREATE INDEX accounts_name ON accounts (tenant, name);
CREATE INDEX contacts_email ON contacts (tenant, email);
CREATE INDEX orders_account ON orders (tenant, account_id);

-- The analytics views: the only relations sql_query may read (each one keeps its tenant column).
CREATE VIEW v_orders AS
SELECT o.tenant, o.order_number, o.account_id, a.name AS account_name, a.industry, a.country, a.tier,
       o.status, o.order_date, TO_CHAR(o.order_date, 'YYYY-MM') AS order_month, o.currency, o.total_amount
FROM orders AS o
JOIN accounts AS a ON a.tenant = o.tenant AND a.account_id = o.account_id;

CREATE VIEW v_invoices AS
SELECT i.tenant, i.invoice_id, i.order_number, o.account_id, a.name AS account_name, i.status, i.issued_on,
       i.due_on, i.paid_on, i.amount, o.currency
FROM invoices AS i
JOIN orders AS o ON o.tenant = i.tenant AND o.order_number = i.order_number
JOIN accounts AS a ON a.tenant = o.tenant AND a.account_id = o.account_id;

CREATE VIEW v_revenue_by_month AS
SELECT tenant, TO_CHAR(order_date, 'YYYY-MM') AS month, currency, COUNT(*) AS orders,
       SUM(total_amount) AS revenue
FROM orders
WHERE status <> 'cancelled'
GROUP BY tenant, TO_CHAR(order_date, 'YYYY-MM'), currency;
