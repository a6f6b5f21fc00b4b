-- The sandbox company's support views (SQLite): filtered on agentconsole_tenant(), which exists only on run_sql's
-- own connection, so anywhere else these views fail to run. Installed by `manage.py support_sql_install --views-sql`.

DROP VIEW IF EXISTS support_tenant_overview;
CREATE VIEW support_tenant_overview AS
SELECT t.id AS tenant_id,
       t.name,
       t.plan,
       t.status,
       t.trial_ends_at,
       t.cache_version,
       t.cache_reset_at,
       t.region,
       t.created_at
FROM sandbox_tenant AS t
WHERE t.id = agentconsole_tenant();

DROP VIEW IF EXISTS support_tenant_users;
CREATE VIEW support_tenant_users AS
SELECT u.id AS user_id,
       u.tenant_id,
       u.email,
       u.role,
       u.failed_logins,
       u.locked,
       u.locked_at,
       u.last_login_at
FROM sandbox_tenant_user AS u
WHERE u.tenant_id = agentconsole_tenant();

DROP VIEW IF EXISTS support_login_attempts;
CREATE VIEW support_login_attempts AS
SELECT a.id AS attempt_id,
       a.tenant_id,
       a.user_id,
       a.email,
       a.attempted_at,
       a.success,
       a.ip_address
FROM sandbox_login_attempt AS a
WHERE a.tenant_id = agentconsole_tenant();

DROP VIEW IF EXISTS support_subscriptions;
CREATE VIEW support_subscriptions AS
SELECT s.id AS subscription_id,
       s.tenant_id,
       s.plan,
       s.status,
       s.seats,
       s.monthly_amount_cents,
       s.currency,
       s.current_period_end
FROM sandbox_subscription AS s
WHERE s.tenant_id = agentconsole_tenant();

DROP VIEW IF EXISTS support_invoices;
CREATE VIEW support_invoices AS
SELECT i.id AS invoice_id,
       i.tenant_id,
       i.number,
       i.amount_cents,
       i.currency,
       i.status,
       i.issued_at,
       i.paid_at
FROM sandbox_invoice AS i
WHERE i.tenant_id = agentconsole_tenant();

DROP VIEW IF EXISTS support_tenant_config;
CREATE VIEW support_tenant_config AS
SELECT c.tenant_id,
       c.key,
       c.value,
       c.updated_at
FROM sandbox_tenant_config AS c
WHERE c.tenant_id = agentconsole_tenant();
